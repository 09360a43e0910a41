"""The Ray driver: a child process of the engine that holds the Ray connection.

Ray's client ends its own process when the cluster's head stays unreachable for a minute, and
logs from C++ as it retries: a cluster lost mid-run must not take the user's run with it. So the
engine never imports Ray; it starts this process (execute/ray_cluster.py), sends it tasks and
items over a pipe (execute/wire.py), and reads back outcomes. If this process dies or hangs, the
engine runs what is left on its own machine.

Scheduling: each item is one Ray task (`cpus` CPUs, or `gpus` GPUs, spread over the nodes), retried
by Ray on another worker when its worker or node dies (MAX_RETRIES). No more tasks are in
flight than the cluster has slots, so each starts about when it is submitted and is bounded in
time from there: past `task.timeout_s(item)` (plus the time to ship its files) it is cancelled
and reported failed. Every WAIT_SLICE_S the head is checked to answer; twice silent, the cluster
is reported lost.

Files: a worker first checks that each file the item reads is at the same path with the same
content fingerprint (a shared folder), or already in its folder of shipped files (an earlier
task or run brought it). When one is neither, the task answers `Missing` and the file
goes to Ray's object store once per run (in SHIP_BLOCK pieces, so neither side holds it whole
in memory); the worker writes it to its own folder of shipped files, named by fingerprint, and
runs the item on that copy. That folder is kept under MONTAGE_SHIPPED_KEEP_GB (set on the node),
the copies used longest ago removed first, none used in the last SHIPPED_IN_USE_S.

Messages to the engine: ("ready", where) or ("error", text) after ("init", address); for each
("map", task, items): ("outcome", index, result, node, seconds), ("failed", index, why),
("note", text), ("shipped", bytes), ("alive",) while waiting, ("lost", why), then ("done",).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import Task
from .ray_cluster import CLIENT_SCHEME, answers, host_port, our_packages
from .wire import Reader, send

MAX_RETRIES = 3
SHIP_BLOCK = 64 * 1024 * 1024      # bytes per object-store piece of a shipped file
SHIP_BYTES_PER_S = 20e6            # the slowest transfer the time bound allows for (a 1 GB file: 50 s more)
SHIPPED_DIR = "montage-ai-shipped"  # under the worker's temporary folder
SHIPPED_KEEP_ENV = "MONTAGE_SHIPPED_KEEP_GB"   # on a node: how much of its shipped copies it keeps
SHIPPED_KEEP_GB = 50.0
SHIPPED_IN_USE_S = 6 * 3600.0      # a copy used this recently is never trimmed: a task may be reading it
WAIT_SLICE_S = 5.0                 # how often the driver checks the head answers and tells the engine it lives
HEAD_CHECK_TIMEOUT_S = 3.0
CLIENT_JOIN_TRIES = 3              # Ray Client's proxy at times fails to start a new client's server
CLIENT_JOIN_PAUSE_S = 1.0


@dataclass(frozen=True)
class Missing:
    """A worker's answer when it cannot see some of the item's files."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Ran:
    result: Any
    node: str
    seconds: float


# --------------------------------------------------------------------------- on the workers


def run_remote(task: Task, item: Any, files: dict[Path, str], shipped: dict[Path, list]) -> Missing | Ran:
    """On the worker: fetch what was shipped, check the rest is visible, run the item."""
    import ray

    from ..cache_trim import mark_used
    from ..media.fingerprint import same_file

    moved: dict[Path, Path] = {}
    missing = []
    for p, fp in files.items():
        if p in shipped or same_file(p, fp):
            continue
        copy = shipped_copy(fp, p.suffix)         # shipped to this node by an earlier task or run
        if same_file(copy, fp):
            mark_used(copy)
            moved[p] = copy
        else:
            missing.append(p)
    if missing:
        return Missing(tuple(missing))
    from ..resources import TASK_CPUS_ENV

    given = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    os.environ[TASK_CPUS_ENV] = str(max(1, int(given)))     # a worker runs one task at a time
    t0 = time.perf_counter()
    moved.update({p: _materialize(files[p], p.suffix, refs) for p, refs in shipped.items()})
    if moved:
        item = task.relocate(item, moved)
    result = task.run(item)
    return Ran(result, ray.get_runtime_context().get_node_id(), time.perf_counter() - t0)


def shipped_copy(fp: str, suffix: str) -> Path:
    """Where this node keeps a shipped file: named by fingerprint (the suffix only helps probing)."""
    return Path(tempfile.gettempdir()) / SHIPPED_DIR / f"{fp}{suffix[:16] if suffix.isascii() else ''}"


def _materialize(fp: str, suffix: str, refs: list) -> Path:
    """The shipped file as a file on this worker (kept by fingerprint: written once per node)."""
    import ray

    from ..atomic import atomic_path
    from ..cache_trim import mark_used, trim_to
    from ..media.fingerprint import same_file

    keep = shipped_keep_bytes()
    path = shipped_copy(fp, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    if same_file(path, fp):
        mark_used(path)
        return path
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for ref in refs:
            f.write(ray.get(ref))
    trim_to(path.parent, keep, SHIPPED_IN_USE_S)
    return path


def shipped_keep_bytes() -> int:
    """The node's MONTAGE_SHIPPED_KEEP_GB (set where `ray start` runs), else SHIPPED_KEEP_GB.
    A bad value fails the task with its name: the run says so and runs the item here."""
    text = os.environ.get(SHIPPED_KEEP_ENV, "").strip()
    try:
        gb = float(text) if text else SHIPPED_KEEP_GB
    except ValueError:
        gb = -1.0
    if not 0 <= gb < float("inf"):
        raise ValueError(f"{SHIPPED_KEEP_ENV}={text!r} on this node: not a size in GB")
    return int(gb * 1e9)


# --------------------------------------------------------------------------- in the driver


@dataclass
class _Flight:
    index: int
    item: Any
    files: dict[Path, str]
    shipped: dict[Path, list]
    deadline: float


class Driver:
    def __init__(self, address: str, emit: Callable[[Any], None]) -> None:
        import ray

        self.ray, self.emit = ray, emit
        join(lambda: ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR",
                              configure_logging=False, runtime_env={"py_modules": our_packages()}), address)
        self.head = _head_address(ray, address)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.where = f"Ray at {address} ({len(nodes)} node{'s' if len(nodes) != 1 else ''})"
        self.remote = ray.remote(max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")(run_remote)
        self.shipped: dict[str, list] = {}      # fingerprint -> object refs of its pieces, for this run

    def cpus(self, task: Task) -> int:
        """The CPUs each task asks for: its threads, but no more than the largest node has
        (a request no node can meet would wait for ever)."""
        if task.gpus:
            return 0
        largest = max((n.get("Resources", {}).get("CPU", 0) for n in self.ray.nodes() if n.get("Alive")), default=1)
        return max(1, min(task.cpus, int(largest)))

    def slots(self, task: Task, cpus: int) -> int:
        """Tasks the cluster can run at once (0: it has no GPU for a GPU task)."""
        resources = self.ray.cluster_resources()
        return int(resources.get("GPU", 0) // task.gpus) if task.gpus else max(1, int(resources.get("CPU", 1) // cpus))

    def map(self, task: Task, items: Sequence[Any]) -> None:
        ray, emit = self.ray, self.emit
        _travel_by_value(task)
        pending = deque(range(len(items)))
        flights: dict[Any, _Flight] = {}
        instead = "ran it here" if task.here_on_failure else "left it to the next way"

        def give_up(index: int, why: str, quiet: bool = False) -> None:
            emit(("failed", index, why))
            if not quiet:
                emit(("note", f"{task.name}: {why}: {instead}"))

        cpus = self.cpus(task)
        slots = self.slots(task, cpus)
        if slots == 0:
            emit(("note", f"{task.name}: the Ray cluster has no GPU: {len(items)} task(s) "
                          f"{'ran here' if task.here_on_failure else 'left to the next way'}"))
            for i in pending:
                give_up(i, "the Ray cluster has no GPU", quiet=True)
            return
        remote = self.remote.options(num_cpus=cpus, num_gpus=task.gpus)
        fn_ref = ray.put(task)
        silent = 0

        def submit(f: _Flight) -> None:
            ship_s = sum(os.path.getsize(p) for p in f.shipped) / SHIP_BYTES_PER_S
            f.deadline = time.monotonic() + task.timeout_s(f.item) + ship_s
            flights[remote.remote(fn_ref, f.item, f.files, f.shipped)] = f

        try:
            while pending or flights:
                while pending and len(flights) < slots:
                    i = pending.popleft()
                    try:
                        files = task.files(items[i])
                    except OSError as exc:      # unreadable here: the engine runs it and says why
                        give_up(i, f"cannot read {exc.filename}", quiet=True)
                        continue
                    submit(_Flight(i, items[i], files, {}, 0.0))
                if not flights:
                    continue
                wait_s = min(WAIT_SLICE_S, max(0.0, min(f.deadline for f in flights.values()) - time.monotonic()))
                ready, _ = ray.wait(list(flights), num_returns=1, timeout=wait_s)
                if not ready:
                    emit(("alive",))
                    silent = 0 if not answers(*self.head, HEAD_CHECK_TIMEOUT_S) else silent + 1
                    if silent >= 2:
                        raise ConnectionError(f"the head {self.head[0]}:{self.head[1]} stopped answering")
                    now = time.monotonic()
                    for ref, f in list(flights.items()):
                        if f.deadline <= now:
                            del flights[ref]
                            ray.cancel(ref, force=True)
                            give_up(f.index, f"a task ran past {task.timeout_s(f.item):.0f} s on the Ray cluster "
                                             "and was cancelled")
                    continue
                f = flights.pop(ready[0])
                try:
                    got = ray.get(ready[0])
                except ray.exceptions.RayTaskError as exc:
                    # the task's own error, after Ray's retries: run here, it is raised with its message
                    give_up(f.index, f"a task failed on the Ray cluster ({short(exc.cause or exc)})")
                    continue
                except ray.exceptions.RayError as exc:
                    give_up(f.index, f"a task could not run on the Ray cluster ({short(exc)})")
                    continue
                if isinstance(got, Missing):
                    try:
                        f.shipped = {p: self._ship(p, f.files[p]) for p in got.paths}
                    except OSError as exc:
                        give_up(f.index, f"cannot read {exc.filename}", quiet=True)
                        continue
                    submit(f)
                    continue
                emit(("outcome", f.index, got.result, got.node, got.seconds))
        except Exception as exc:     # the cluster is gone (head lost, connection closed)
            left = [f.index for f in flights.values()] + list(pending)
            flights.clear()
            emit(("lost", short(exc)))
            for i in left:
                give_up(i, f"the Ray cluster was lost ({short(exc)})", quiet=True)
        finally:
            for ref in flights:
                try:
                    ray.cancel(ref, force=True)
                except Exception:   # the cluster may be gone too: nothing left to cancel
                    pass

    def _ship(self, path: Path, fp: str) -> list:
        """The file's pieces in the object store, put there once per run."""
        if fp not in self.shipped:
            refs = []
            with open(path, "rb") as f:
                while block := f.read(SHIP_BLOCK):
                    refs.append(self.ray.put(block))
                    self.emit(("alive",))       # a large file takes a while: the engine must not take it for a hang
            self.shipped[fp] = refs
            self.emit(("shipped", os.path.getsize(path)))
        return self.shipped[fp]


def join(init: Callable[[], Any], address: str, tries: int = CLIENT_JOIN_TRIES,
         pause_s: float = CLIENT_JOIN_PAUSE_S) -> None:
    """Run `init` (ray.init for `address`), again when a Ray Client proxy answers that the server
    it starts for each new client failed to start: seen on a loaded machine, where the proxy's
    child process dies at birth; the next connection gets a new one. Anything else is raised."""
    for attempt in range(1, tries + 1):
        try:
            init()
            return
        except ConnectionAbortedError as exc:
            transient = address.startswith(CLIENT_SCHEME) and "Initialization failure from server" in str(exc)
            if not transient or attempt == tries:
                raise
        time.sleep(pause_s * attempt)


def _travel_by_value(task: Task) -> None:
    """Functions from outside the engine's packages (a script's own task) go to the workers by
    value: the workers have only the engine's packages."""
    from ray import cloudpickle

    for fn in (task.run, task.files, task.relocate, task.timeout_s):
        module = sys.modules.get(getattr(fn, "__module__", "") or "")
        if module is not None and not module.__name__.startswith(("montage_ai", "montage_otio", "builtins")):
            cloudpickle.register_pickle_by_value(module)


def _head_address(ray: Any, address: str) -> tuple[str, int]:
    """host and port to check the cluster still answers: the client server for a ray:// address
    (the cluster's own GCS address is inside its network), else the cluster's GCS."""
    if not address.startswith(CLIENT_SCHEME):
        try:
            address = ray.get_runtime_context().gcs_address
        except Exception:   # older Ray: the address given (not "auto")
            pass
    return host_port(address) or ("127.0.0.1", 6379)


def short(exc: BaseException) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(exc))
    return f"{type(exc).__name__}: {' '.join(text.split())[:160]}"


def main() -> int:
    """Serve the engine on stdin/stdout; everything else this process prints goes to stderr."""
    wire_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    reader = Reader(sys.stdin.buffer)

    def emit(message: Any) -> None:
        send(wire_out, message)

    try:
        _, address = reader.recv(None)
        driver = Driver(address, emit)
    except Exception as exc:    # Ray missing, the cluster refuses us: one line for the engine
        emit(("error", short(exc)))
        return 2
    emit(("ready", driver.where))
    while True:
        try:
            message = reader.recv(None)
        except EOFError:
            return 0
        if message[0] == "map":
            driver.map(message[1], message[2])
            emit(("done",))


if __name__ == "__main__":
    sys.exit(main())
