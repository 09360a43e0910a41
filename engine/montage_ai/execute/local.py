"""The default executor: threads on this machine."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from . import Outcome, StageUse, Task


class LocalExecutor:
    remote = False

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.where = f"local ({self.workers} thread{'s' if self.workers > 1 else ''})"
        self.use: dict[str, StageUse] = {}

    def map(self, task: Task, items: Sequence[Any]) -> Iterator[Outcome]:
        use = self.use.setdefault(task.name, StageUse(where=self.where))

        def timed(index: int, item: Any) -> Outcome:
            t0 = time.perf_counter()
            return Outcome(index, task.run(item), "local", time.perf_counter() - t0)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(timed, i, item) for i, item in enumerate(items)]
            try:
                for future in as_completed(futures):
                    outcome = future.result()
                    use.add(outcome)
                    yield outcome
            finally:
                for f in futures:
                    f.cancel()

    def close(self) -> None:
        pass
