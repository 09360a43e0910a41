"""The Ray executor: the same tasks as Ray tasks on a cluster.

Each item is one task (one CPU, or `gpus` GPUs, spread over the nodes), retried by Ray on
another worker when its worker or node dies (MAX_RETRIES). No more tasks are in flight than the
cluster has slots, so each one starts about when it is submitted and is bounded in time from
there: past `task.timeout_s(item)` (plus the time to ship its files) it is cancelled. A task that
fails, times out or cannot be placed, and every task once the cluster is lost, runs here instead,
and the notes say which and why: the run never depends on the cluster to finish.

Files: a worker first checks that each file the item reads is at the same path with the same
content fingerprint (a shared folder). When one is not, the task answers `Missing` and the file
goes to Ray's object store once per run (in SHIP_BLOCK pieces, so neither side holds it whole
in memory); the worker writes it to its own folder of shipped files, named by fingerprint, and
runs the item on that copy.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MontageError
from . import Executor, Failed, Outcome, StageUse, Task

MAX_RETRIES = 3
PREFLIGHT_TIMEOUT_S = 5.0          # a TCP connect to the cluster's address, before Ray's own client tries
SHIP_BLOCK = 64 * 1024 * 1024      # bytes per object-store piece of a shipped file
SHIP_BYTES_PER_S = 20e6            # the slowest transfer the time bound allows for (a 1 GB file: 50 s more)
SHIPPED_DIR = "montage-ai-shipped"  # under the worker's temporary folder


@dataclass(frozen=True)
class Missing:
    """A worker's answer when it cannot see some of the item's files."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Ran:
    result: Any
    node: str
    seconds: float


def _run_remote(task: Task, item: Any, files: dict[Path, str], shipped: dict[Path, list]) -> Missing | Ran:
    """On the worker: fetch what was shipped, check the rest is visible, run the item."""
    import ray

    from ..media.fingerprint import same_file

    missing = tuple(p for p, fp in files.items() if p not in shipped and not same_file(p, fp))
    if missing:
        return Missing(missing)
    t0 = time.perf_counter()
    if shipped:
        item = task.relocate(item, {p: _materialize(files[p], p.suffix, refs) for p, refs in shipped.items()})
    result = task.run(item)
    return Ran(result, ray.get_runtime_context().get_node_id(), time.perf_counter() - t0)


def _materialize(fp: str, suffix: str, refs: list) -> Path:
    """The shipped file as a file on this worker (kept by fingerprint: written once per node)."""
    import ray

    from ..atomic import atomic_path
    from ..media.fingerprint import same_file

    folder = Path(tempfile.gettempdir()) / SHIPPED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{fp}{suffix[:16] if suffix.isascii() else ''}"
    if same_file(path, fp):
        return path
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for ref in refs:
            f.write(ray.get(ref))
    return path


@dataclass
class _Flight:
    index: int
    item: Any
    files: dict[Path, str]
    shipped: dict[Path, list]
    deadline: float


class RayExecutor:
    remote = True

    def __init__(self, address: str, notes: list[str], fallback: Executor) -> None:
        try:
            import ray
        except ImportError as exc:
            raise MontageError(f"RAY_ADDRESS {address}: Ray is not installed here "
                               f"(pip install 'montage-ai[ray]'): {exc}") from exc
        self.ray, self.notes, self.fallback = ray, notes, fallback
        self.use: dict[str, StageUse] = {}
        self.lost = ""                              # why the cluster is no longer used, once it is not
        self._shipped: dict[str, list] = {}         # fingerprint -> object refs of its pieces, for this run
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
        self._remote = ray.remote(max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")(_run_remote)

    def slots(self, task: Task) -> int:
        """Tasks the cluster can run at once (0: it has no GPU for a GPU task)."""
        resources = self.ray.cluster_resources()
        return int(resources.get("GPU", 0) // task.gpus) if task.gpus else max(1, int(resources.get("CPU", 1)))

    def map(self, task: Task, items: Sequence[Any]) -> Iterator[Outcome]:
        use = self.use.setdefault(task.name, StageUse())
        here: dict[int, str] = {}                   # items the cluster could not do, and why
        if self.lost:
            here = dict.fromkeys(range(len(items)), f"the Ray cluster was lost earlier ({self.lost})")
        else:
            yield from self._on_cluster(task, items, use, here)
        if not here:
            return
        if not task.here_on_failure:
            for i, why in here.items():
                yield Outcome(i, Failed(why), "", 0.0)
            return
        use.ran_here += len(here)
        order = list(here)
        for outcome in self.fallback.map(task, [items[i] for i in order]):
            outcome = outcome._replace(index=order[outcome.index])
            use.add(outcome)
            yield outcome

    def _on_cluster(self, task: Task, items: Sequence[Any], use: StageUse, here: dict[int, str]) -> Iterator[Outcome]:
        ray = self.ray
        pending = deque(range(len(items)))
        flights: dict[Any, _Flight] = {}
        instead = "ran it here" if task.here_on_failure else "left it to the next way"

        def give_up(index: int, why: str) -> None:
            here[index] = why
            self.notes.append(f"{task.name}: {why}: {instead}")

        try:
            slots = self.slots(task)
            if slots == 0:
                for i in pending:
                    here[i] = "the Ray cluster has no GPU"
                self.notes.append(f"{task.name}: the Ray cluster has no GPU: {len(items)} task(s) "
                                  f"{'ran here' if task.here_on_failure else 'left to the next way'}")
                return
            remote = self._remote.options(num_cpus=0 if task.gpus else 1, num_gpus=task.gpus)
            fn_ref = ray.put(task)

            def submit(f: _Flight) -> None:
                ship_s = sum(os.path.getsize(p) for p in f.shipped) / SHIP_BYTES_PER_S
                f.deadline = time.monotonic() + task.timeout_s(f.item) + ship_s
                flights[remote.remote(fn_ref, f.item, f.files, f.shipped)] = f

            while pending or flights:
                while pending and len(flights) < slots:
                    i = pending.popleft()
                    try:
                        files = task.files(items[i])
                    except OSError as exc:      # unreadable here: running it here says why, naming the file
                        here[i] = f"cannot read {exc.filename}"
                        continue
                    submit(_Flight(i, items[i], files, {}, 0.0))
                if not flights:
                    continue
                wait_s = max(0.0, min(f.deadline for f in flights.values()) - time.monotonic())
                ready, _ = ray.wait(list(flights), num_returns=1, timeout=wait_s)
                if not ready:
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
                    give_up(f.index, f"a task failed on the Ray cluster ({_short(exc)})")
                    continue
                except ray.exceptions.RayError as exc:
                    give_up(f.index, f"a task could not run on the Ray cluster ({_short(exc)})")
                    continue
                if isinstance(got, Missing):
                    try:
                        f.shipped = {p: self._ship(p, f.files[p], use) for p in got.paths}
                    except OSError as exc:
                        here[f.index] = f"cannot read {exc.filename}"
                        continue
                    submit(f)
                    continue
                outcome = Outcome(f.index, got.result, got.node, got.seconds)
                use.add(outcome)
                yield outcome
        except Exception as exc:     # the cluster is gone (GCS lost, connection closed): finish here
            self.lost = _short(exc)
            left = [f.index for f in flights.values()] + list(pending)
            flights.clear()
            for i in left:
                here[i] = f"the Ray cluster was lost ({self.lost})"
            self.notes.append(f"the Ray cluster was lost ({self.lost}): {len(left)} {task.name} task(s) and "
                              "all later work ran here")
        finally:
            for ref in flights:     # interrupted (Ctrl-C, SIGTERM, a task's error raised here)
                try:
                    ray.cancel(ref, force=True)
                except Exception:   # the cluster may be gone too: nothing left to cancel
                    pass

    def _ship(self, path: Path, fp: str, use: StageUse) -> list:
        """The file's pieces in the object store, put there once per run."""
        if fp not in self._shipped:
            refs = []
            with open(path, "rb") as f:
                while block := f.read(SHIP_BLOCK):
                    refs.append(self.ray.put(block))
            self._shipped[fp] = refs
            use.shipped_bytes += os.path.getsize(path)
        return self._shipped[fp]

    def close(self) -> None:
        self._shipped.clear()
        try:
            self.ray.shutdown()
        except Exception:   # shutting down a lost connection: nothing left to release
            pass


def reachable(address: str) -> None:
    """A host:port address must accept a TCP connection within PREFLIGHT_TIMEOUT_S: Ray's own
    client waits minutes for a cluster that is not there, logging from C++ as it waits."""
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
