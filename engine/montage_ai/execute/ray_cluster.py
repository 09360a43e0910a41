"""The Ray executor: the same tasks as Ray tasks on a cluster.

Each item is one task (one CPU, spread over the nodes), retried by Ray on another worker when
its worker or node dies (MAX_RETRIES). A task Ray cannot run (it keeps failing, the cluster is
lost) runs here instead, and the summary says which and why: the run never depends on the
cluster to finish. Results come back in the items' order.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import MontageError
from . import Executor, Outcome

MAX_RETRIES = 3
PREFLIGHT_TIMEOUT_S = 5.0          # a TCP connect to the cluster's address, before Ray's own client tries


def _run(fn: Callable[[Any], Any], item: Any) -> Outcome:
    import ray

    t0 = time.perf_counter()
    result = fn(item)
    return Outcome(result, ray.get_runtime_context().get_node_id(), time.perf_counter() - t0)


class RayExecutor:
    def __init__(self, address: str, notes: list[str], fallback: Executor) -> None:
        try:
            import ray
        except ImportError as exc:
            raise MontageError(f"RAY_ADDRESS {address}: Ray is not installed here "
                               f"(pip install 'montage-ai[ray]'): {exc}") from exc
        self.ray, self.notes, self.fallback = ray, notes, fallback
        reachable(address)
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     logging_level="ERROR", configure_logging=False,
                     runtime_env={"py_modules": _our_packages()})
        except Exception as exc:    # ConnectionError, ray's own: the address is the user's setting
            raise MontageError(f"RAY_ADDRESS {address}: cannot join the Ray cluster "
                               f"({' '.join(str(exc).split())[:200]})") from exc
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.where = f"Ray at {address} ({len(nodes)} node{'s' if len(nodes) != 1 else ''})"
        self.task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")(_run)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Outcome]:
        ray = self.ray
        try:
            fn_ref = ray.put(fn)
            refs = [self.task.remote(fn_ref, item) for item in items]
        except Exception as exc:        # the cluster is gone before anything ran
            self.notes.append(f"Ray cluster unavailable ({_short(exc)}): ran {len(items)} task(s) here")
            yield from self.fallback.map(fn, items)
            return
        for item, ref in zip(items, refs):
            try:
                yield ray.get(ref)
            except ray.exceptions.RayError as exc:
                # retried MAX_RETRIES times by Ray, or the cluster was lost: this one runs here
                self.notes.append(f"a task failed on the Ray cluster ({_short(exc)}): ran it here")
                yield from self.fallback.map(fn, [item])

    def close(self) -> None:
        try:
            self.ray.shutdown()
        except Exception:   # shutting down a lost connection: nothing left to release
            pass


def reachable(address: str) -> None:
    """A host:port address must accept a TCP connection within PREFLIGHT_TIMEOUT_S: Ray's own client waits minutes for a cluster that is not there, logging
    from C++ as it waits."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise MontageError(f"RAY_ADDRESS {address}: not host:port, auto, or ray://host:port")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=PREFLIGHT_TIMEOUT_S).close()
    except OSError as exc:
        raise MontageError(f"RAY_ADDRESS {address}: no Ray cluster answers there "
                           f"({exc.strerror or type(exc).__name__})") from exc


def _our_packages() -> list:
    """This engine's own packages, shipped to every worker with the tasks (Ray's py_modules),
    so workers run the code the driver runs; their dependencies must be installed on each node."""
    import montage_ai
    import montage_otio

    return [montage_ai, montage_otio]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _short(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc))
    return f"{type(exc).__name__}: {' '.join(text.split())[:160]}"
