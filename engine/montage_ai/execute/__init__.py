"""Where the work that is already parallel runs: one seam, two places.

The default is this machine: threads within MAX_PARALLEL_JOBS (decoding, the text detector and
the encoders release the GIL). With RAY_ADDRESS (or `--ray ADDRESS`; `auto` for a cluster
already started on this machine) the same tasks go to a Ray cluster as Ray tasks, retried
elsewhere when a worker dies, bounded in time, and run here when the cluster cannot take them.
Ray is an optional extra (`pip install 'montage-ai[ray]'`), imported only on that path.

A Task is a plain function of one item that relies on nothing in this process (a Ray worker is
another process, maybe another machine), plus what moving it needs: the files the item reads
(by content fingerprint, so a worker that cannot see them gets them through Ray's object store),
how to point the item at copies of them, and how long it may take. Results come back as values;
only this process writes outputs and caches (docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel


def no_files(item: Any) -> dict[Path, str]:
    return {}


def same_item(item: Any, moved: dict[Path, Path]) -> Any:
    return item


def ten_minutes(item: Any) -> float:
    return 600.0


@dataclass(frozen=True)
class Task:
    """What an executor runs on each item, and how to move it to another machine."""

    name: str                                               # "analysis", "render": for notes and the summary
    run: Callable[[Any], Any]
    files: Callable[[Any], dict[Path, str]] = no_files      # path -> fingerprint of each file the item reads
    relocate: Callable[[Any, dict[Path, Path]], Any] = same_item    # the item reading copies at other paths
    timeout_s: Callable[[Any], float] = ten_minutes      # how long one item may run remotely
    gpus: int = 0                                           # GPUs one item needs
    cpus: int = 1                                           # CPUs one item keeps busy (its threads)
    here_on_failure: bool = True        # False: an item the cluster could not do comes back as Failed


class Failed(NamedTuple):
    """The result of an item the cluster could not do, for a task that has its own fallback."""

    reason: str


class Outcome(NamedTuple):
    """One task's result, which item it was and where it ran."""

    index: int
    result: Any
    node: str               # "local", or the Ray node's id
    seconds: float


class StageUse(BaseModel):
    """Where one kind of task ran in this run (the summary's `placement`): items per node
    ("local": this machine), task seconds, bytes of sources shipped, items the cluster could not take."""

    where: str
    items: dict[str, int] = {}
    seconds: float = 0.0
    shipped_bytes: int = 0
    ran_here: int = 0

    def add(self, outcome: Outcome) -> None:
        self.items[outcome.node] = self.items.get(outcome.node, 0) + 1
        self.seconds += outcome.seconds

    def line(self, name: str) -> str:
        remote = {k: v for k, v in self.items.items() if k != "local"}
        counts = ", ".join(str(n) for n in sorted(remote.values(), reverse=True))
        text = (f"{name}: {sum(self.items.values())} task(s) on {self.where}: {len(remote)} node(s) ran them"
                f"{f' ({counts})' if remote else ''}, {self.seconds:.1f} s of task time")
        if self.shipped_bytes:
            text += f", {self.shipped_bytes / 1e6:.1f} MB of sources shipped through the object store"
        if self.ran_here:
            text += f"; {self.ran_here} ran here instead"
        return text


class Executor(Protocol):
    where: str              # for the summary: "local (2 threads)", "Ray at 127.0.0.1:6379 (2 nodes)"
    remote: bool            # tasks run in other processes: results must come back as values
    use: dict[str, StageUse]

    def map(self, task: Task, items: Sequence[Any]) -> Iterator[Outcome]:
        """task.run(item) for every item, as they finish (Outcome.index says which)."""
        ...

    def close(self) -> None:
        ...


def executor_for(ray_address: str, workers: int, notes: list[str] | None = None) -> Executor:
    """The Ray executor when an address is given, else the local one."""
    from .local import LocalExecutor

    if ray_address:
        from .ray_cluster import RayExecutor

        return RayExecutor(ray_address, notes if notes is not None else [], fallback=LocalExecutor(workers))
    return LocalExecutor(workers)


def placement_lines(executor: Executor) -> list[str]:
    """One summary line per kind of task: where it ran and how long it took."""
    return [use.line(name) for name, use in executor.use.items() if use.items]
