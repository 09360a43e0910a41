"""The machine's resources as the engine sees them: the resident memory of the engine and every
ffmpeg it starts, sampled from /proc (what MEMORY_LIMIT_GB is about; used by the benchmark and
the memory-limit test), and the cores this process may use."""

from __future__ import annotations

import os
import threading


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * page
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


class PeakMemory:
    """Samples the engine's process tree every 50 ms: the figure MEMORY_LIMIT_GB is about."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            self._stop.wait(0.05)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


TASK_CPUS_ENV = "MONTAGE_TASK_CPUS"     # set by the Ray driver's task wrapper: the CPUs Ray gave the task


def usable_cpus() -> int:
    """The cores this process may use: its CPU affinity, and in a Ray task the CPUs Ray gave it
    (a node runs one task per CPU, so a task that took every core would oversubscribe it)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    given = os.environ.get(TASK_CPUS_ENV, "")
    return max(1, min(cores, int(given))) if given.isdigit() and int(given) > 0 else cores
