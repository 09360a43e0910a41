"""A Ray worker node in a process of its own, made as Ray's `Cluster.add_node` makes one (every
address on loopback), for tests that need a node where the test process is not: in a mount
namespace that hides folders. `python ray_node.py GCS_ADDRESS [CPUS]` (one CPU unless given);
SIGTERM stops the node."""

from __future__ import annotations

import os
import signal
import sys
import time

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"       # loopback only, read when ray is imported

from ray._private.node import Node  # noqa: E402
from ray._private.parameter import RayParams  # noqa: E402


def main(address: str, cpus: int) -> None:
    params = RayParams(num_cpus=cpus, num_gpus=0, object_store_memory=150 * 1024 * 1024, min_worker_port=0,
                       max_worker_port=0, redis_address=address, gcs_address=address, include_log_monitor=False,
                       node_manager_port=0)
    params.dashboard_agent_listen_port = None
    Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))      # exit runs Node's shutdown: its processes stop
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
