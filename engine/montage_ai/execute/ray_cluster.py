"""The Ray executor: the same tasks as Ray tasks on a cluster, through a driver process.

The engine never imports Ray. It starts `ray_driver.py` as a child process (its own process
group, dying with the engine), which joins the cluster and runs the tasks; items go down a pipe
and outcomes come back as they finish. Whatever the cluster cannot do comes back failed and runs
here (or, for a task with its own fallback, is handed back as `Failed`). If the driver dies
(Ray ends its process when the head is gone for a minute), stops talking for SILENCE_S, or the
cluster is reported lost, this run stops using the cluster and finishes here, and the notes say
why: the run never depends on the cluster to finish. An interrupted run kills the driver, and
Ray cancels the tasks of a driver that is gone.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from .. import procs
from ..errors import MontageError
from . import Executor, Failed, Outcome, StageUse, Task
from .wire import Reader, send

PREFLIGHT_TIMEOUT_S = 5.0          # a TCP connect to the cluster's address, before Ray's own client tries
START_TIMEOUT_S = 120.0            # the driver joins the cluster and uploads the engine's packages
SILENCE_S = 60.0                   # the driver says it lives every few seconds; this long silent, it is hung
STDERR_TAIL = 2000


class RayExecutor:
    remote = True

    def __init__(self, address: str, notes: list[str], fallback: Executor) -> None:
        if importlib.util.find_spec("ray") is None:
            raise MontageError(f"RAY_ADDRESS {address}: Ray is not installed here (pip install 'montage-ai[ray]')")
        reachable(address)
        self.notes, self.fallback = notes, fallback
        self.use: dict[str, StageUse] = {}
        self.lost = ""                              # why the cluster is no longer used, once it is not
        self._log = tempfile.TemporaryFile()        # the driver's stderr: Ray's own logging
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = procs.spawn([sys.executable, "-m", "montage_ai.execute.ray_driver"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=self._log, env=env)
        self._reader = Reader(self._proc.stdout)
        try:
            send(self._proc.stdin, ("init", address))
            reply = self._reader.recv(START_TIMEOUT_S)
        except (OSError, EOFError, TimeoutError) as exc:
            reply = ("error", self._why(exc))
        if reply[0] != "ready":
            self.close()
            raise MontageError(f"RAY_ADDRESS {address}: cannot join the Ray cluster ({reply[1]})")
        self.where = reply[1]

    def map(self, task: Task, items: Sequence[Any]) -> Iterator[Outcome]:
        use = self.use.setdefault(task.name, StageUse(where=self.where))
        here: dict[int, str] = {}                   # items the cluster did not do, and why
        if self.lost:
            here = dict.fromkeys(range(len(items)), f"the Ray cluster was lost earlier ({self.lost})")
        elif items:
            yield from self._on_cluster(task, items, use, here)
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
        done: set[int] = set()
        finished = False
        try:
            send(self._proc.stdin, ("map", task, list(items)))
            while True:
                message = self._reader.recv(SILENCE_S)
                kind = message[0]
                if kind == "outcome":
                    outcome = Outcome(*message[1:])
                    done.add(outcome.index)
                    use.add(outcome)
                    yield outcome
                elif kind == "failed":
                    done.add(message[1])
                    here[message[1]] = message[2]
                elif kind == "note":
                    self.notes.append(message[1])
                elif kind == "shipped":
                    use.shipped_bytes += message[1]
                elif kind == "lost":
                    self.lost = message[1]
                    self.notes.append(f"the Ray cluster was lost ({self.lost}): the rest of the run ran here")
                elif kind == "done":
                    finished = True
                    return
        except (OSError, EOFError, TimeoutError) as exc:    # the driver died or hangs: finish here
            self.lost = self._why(exc)
            self.notes.append(f"the Ray driver stopped ({self.lost}): the rest of the run ran here")
            for i in range(len(items)):
                if i not in done:
                    here[i] = f"the Ray driver stopped ({self.lost})"
        finally:
            if not finished:        # interrupted, or the driver is gone: it is of no more use
                self.lost = self.lost or "the run was interrupted"
                self._stop_driver()

    def _why(self, exc: BaseException) -> str:
        """What went wrong with the driver, in one line: its last words, else the exception."""
        if isinstance(exc, TimeoutError):
            return f"no word from it for {SILENCE_S:.0f} s"
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - STDERR_TAIL))
        lines = [ln for ln in self._log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return " ".join(lines[-1].split())[:200] if lines else f"{type(exc).__name__}: {exc}"

    def _stop_driver(self) -> None:
        if self._proc.poll() is None:
            procs.kill_tree(self._proc)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        procs.release(self._proc)

    def close(self) -> None:
        """End the driver: closing its input ends it, and Ray's connection with it."""
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._stop_driver()
        self._reader.close()
        self._log.close()


CLIENT_SCHEME = "ray://"            # Ray Client: the driver joins through the head's client server


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a host:port or ray://host:port address; None for `auto`. Raises
    MontageError naming the address when it is neither."""
    if address == "auto":
        return None
    rest = address[len(CLIENT_SCHEME):] if address.startswith(CLIENT_SCHEME) else address
    host, sep, port = rest.rpartition(":")
    if not sep or "/" in rest or not port.isdigit() or not 0 < int(port) < 65536:
        raise MontageError(f"RAY_ADDRESS {address}: not host:port, auto, or ray://host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def answers(host: str, port: int, timeout_s: float) -> str:
    """"" when a TCP connection to host:port opens within timeout_s, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return ""
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def reachable(address: str) -> None:
    """A host:port or ray:// address must accept a TCP connection within PREFLIGHT_TIMEOUT_S:
    Ray's own client waits minutes for a cluster that is not there, logging from C++ as it waits."""
    target = host_port(address)
    if target is None:
        return
    why = answers(*target, PREFLIGHT_TIMEOUT_S)
    if why:
        raise MontageError(f"RAY_ADDRESS {address}: no Ray cluster answers there ({why})")


def our_packages() -> list[str]:
    """This engine's own packages, shipped to every worker with the tasks (Ray's py_modules),
    so workers run the code the driver runs; their dependencies must be installed on each node.
    Folders, not module objects: Ray Client sends the runtime environment to the cluster
    pickled, and uploads the folders from here."""
    import montage_ai
    import montage_otio

    return [os.path.dirname(m.__file__) for m in (montage_ai, montage_otio)]
