"""Where the work that is already parallel runs: one seam, two places.

The default is this machine: threads within MAX_PARALLEL_JOBS (decoding and the text detector
release the GIL). With RAY_ADDRESS (or `--ray ADDRESS`; `auto` for a cluster already started
on this machine) the same tasks go to a Ray cluster as Ray tasks, retried elsewhere when a
worker dies and run here when the cluster cannot take them. Ray is an optional extra
(`pip install 'montage-ai[ray]'`), imported only on that path.

A task is a plain function of one item; it must not rely on state of this process other than
what it is given (a Ray worker is another process, maybe another machine), and it reads and
writes files through paths every worker can see (a shared folder: docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol


class Outcome(NamedTuple):
    """One task's result and where it ran."""

    result: Any
    node: str               # "local", or the Ray node's id
    seconds: float


class Executor(Protocol):
    where: str              # for the summary: "local (2 threads)", "Ray at 127.0.0.1:6379 (2 nodes)"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Outcome]:
        """fn(item) for every item, results in the items' order."""
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
