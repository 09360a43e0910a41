"""The default executor: threads on this machine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import Outcome


class LocalExecutor:
    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.where = f"local ({self.workers} thread{'s' if self.workers > 1 else ''})"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Outcome]:
        def timed(item: Any) -> Outcome:
            t0 = time.perf_counter()
            return Outcome(fn(item), "local", time.perf_counter() - t0)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            yield from pool.map(timed, items)

    def close(self) -> None:
        pass
