"""Scale-out: clip analysis as tasks on a real multi-node Ray cluster started on this machine
(Ray's own ray.cluster_utils.Cluster: a head and a second node, one CPU each, on loopback).

The analysis from the cluster is the analysis made here, clip for clip; both nodes ran tasks;
a worker node killed mid-analysis changes nothing in the result; a whole run with --ray makes
the same MP4 frame for frame; and the default path never imports Ray."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray_tasks
from hostile import live_processes

from media_tools import decode_frames
from montage_ai.execute import Task
from montage_ai.execute.local import LocalExecutor
from montage_ai.media.ffmpeg import run_ffmpeg
from montage_ai.media.probe import probe
from montage_ai.pipeline import analyze_clips

# Ray's switch for loopback-only clusters, read when ray is imported: every node, the GCS and the
# object store listen on 127.0.0.1 only
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'montage-ai[ray]')")
from ray.cluster_utils import Cluster  # noqa: E402

from montage_ai.execute.ray_cluster import RayExecutor  # noqa: E402
from montage_ai.execute.ray_driver import shipped_copy  # noqa: E402
from montage_ai.media.fingerprint import fingerprint, same_file  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each, every address on loopback; the head serves
    Ray Client too (`c.client_address`, ray://)."""
    port = _free_port()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                      "ray_client_server_port": port})
    c.client_address = f"ray://127.0.0.1:{port}"
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


SEED = {"mandelbrot": "", "life": ":seed=5", "cellauto": ":seed=5"}  # the same pictures every run


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Six 4-second clips with cuts in them, different content each."""
    folder = tmp_path_factory.mktemp("ray-clips")
    out = []
    for k, (a, b) in enumerate([("mandelbrot", "life"), ("cellauto", "mandelbrot"), ("life", "cellauto"),
                                ("mandelbrot", "cellauto"), ("life", "mandelbrot"), ("cellauto", "life")]):
        path = folder / f"clip{k}.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", f"{a}=s=320x180:r=25{SEED[a]}", "-f", "lavfi", "-i", f"{b}=s=320x180:r=25{SEED[b]}",
                    "-filter_complex", "[0:v]trim=0:2[x];[1:v]trim=0:2,setpts=PTS-STARTPTS[y];[x][y]concat=n=2:v=1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", str(path)], what="clip")
        out.append(path)
    return out


def _assert_same_frames(expected: Path, got: Path) -> None:
    """Two MP4s show the same pictures, frame for frame."""
    a, b = decode_frames(expected), decode_frames(got)
    assert len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b)), got


def _analyses(clips, cache: Path, executor=None):
    media = [probe(p) for p in clips]
    analysed, _, skipped = analyze_clips(media, cache, 2, False, executor)
    assert not skipped
    return [a.model_dump(exclude={"decode_s"}) for a in analysed]


def _nodes(executor, stage="analysis") -> dict[str, int]:
    return executor.use[stage].items


def test_the_cluster_analyses_what_this_machine_does_on_both_nodes(cluster, clips, tmp_path):
    here = _analyses(clips, tmp_path / "local")
    notes: list[str] = []
    executor = RayExecutor(cluster.address, notes, LocalExecutor(2))
    try:
        there = _analyses(clips, tmp_path / "ray", executor)
    finally:
        executor.close()
    nodes = _nodes(executor)
    print(f"\ntasks per node: {nodes}; notes: {notes}")
    assert there == here
    assert len(nodes) == 2 and "local" not in nodes and not notes
    assert {n.node_ip_address for n in cluster.list_all_nodes()} == {"127.0.0.1"}


def test_a_worker_node_killed_mid_analysis_changes_nothing(cluster, clips, tmp_path):
    """A third node joins, then dies a second into the analysis of twelve clips: Ray runs its
    tasks again elsewhere, and the analyses are those made here."""
    items = clips * 2
    here = _analyses(items, tmp_path / "local")
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    notes: list[str] = []
    killer = threading.Timer(1.0, lambda: cluster.remove_node(worker, allow_graceful=False))
    killer.start()
    executor = RayExecutor(cluster.address, notes, LocalExecutor(2))
    try:
        there = _analyses(items, tmp_path / "ray", executor)
    finally:
        executor.close()
    killer.join()
    print(f"\ntasks per node: {_nodes(executor)}; notes: {notes}")
    assert there == here


def test_the_default_path_never_imports_ray(tmp_path):
    code = ("import sys, montage_ai.pipeline, montage_ai.cli; "
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_a_run_with_ray_makes_the_same_mp4_frame_for_frame(cluster, clips, shared_media, tmp_path):
    from montage_ai.pipeline import run
    from montage_ai.settings import Settings

    folder = tmp_path / "clips"
    folder.mkdir()
    for p in clips:
        (folder / p.name).symlink_to(p)
    common = dict(clips=folder, music=shared_media / "vibe_ace.ogg", duration=12.0, resolution="360p")
    local = run(Settings(out=tmp_path / "local", cache_dir=tmp_path / "cache-local", **common), progress=False)
    remote = run(Settings(out=tmp_path / "ray", cache_dir=tmp_path / "cache-ray", ray_address=cluster.address, **common),
                 progress=False)
    lines = [n for n in remote.notes if n.startswith(("analysis:", "render:"))]
    print("\n" + "\n".join(remote.notes))
    assert len(lines) == 2 and all("Ray at" in n and "2 node(s) ran them" in n for n in lines)
    assert not any("ran here" in n for n in remote.notes)
    placed = remote.model_dump(mode="json")["placement"]        # the --json summary carries it too
    assert set(placed) == {"analysis", "render"} and all(len(p["items"]) == 2 and "local" not in p["items"]
                                                         for p in placed.values())
    assert local.placement == {}
    _assert_same_frames(local.video, remote.video)


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "ray://nowhere"])
def test_an_address_where_no_cluster_answers_is_one_line_naming_it(clips, shared_media, tmp_path, capsys, address):
    """Before any work: Ray's own client would wait minutes, logging as it waits."""
    from montage_ai.cli import main

    t0 = time.monotonic()
    code = main(["run", "--clips", str(clips[0].parent), "--music", str(shared_media / "vibe_ace.ogg"),
                 "--out", str(tmp_path / "out"), "--ray", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and time.monotonic() - t0 < 30
    assert err and f"RAY_ADDRESS {address}" in err[-1]


def test_a_client_address_analyses_through_ray_client(cluster, clips, tmp_path):
    """ray://host:port (Ray Client: the engine runs off the cluster and joins through the head's
    client server) gives the analyses made here, from both nodes; the cluster is checked at the
    address given, so a run lasting past a few head checks goes on using it."""
    here = _analyses(clips, tmp_path / "local")
    notes: list[str] = []
    executor = RayExecutor(cluster.client_address, notes, LocalExecutor(2))
    try:
        there = _analyses(clips, tmp_path / "ray", executor)
        # tasks long enough for two head checks (every WAIT_SLICE_S) while they run
        later = list(executor.map(_nap_task(ray_tasks.a_minute), [(os.getpid(), 11.0)] * 2))
    finally:
        executor.close()
    print(f"\ntasks per node: {_nodes(executor)}; notes: {notes}")
    assert there == here
    assert len(_nodes(executor)) == 2 and "local" not in _nodes(executor) and not notes
    assert executor.where.startswith(f"Ray at {cluster.client_address}")
    assert [o.node != "local" for o in later] == [True, True] and not executor.lost


def _nap_task(timeout) -> Task:
    return Task("nap", run=ray_tasks.nap, timeout_s=timeout)


def test_a_task_past_its_time_bound_is_cancelled_and_runs_here(cluster):
    """Every remote task is bounded in time: one that hangs is cancelled there and run here."""
    notes: list[str] = []
    executor = RayExecutor(cluster.address, notes, LocalExecutor(2))
    started = time.monotonic()
    try:
        outcomes = list(executor.map(_nap_task(ray_tasks.two_seconds), [(os.getpid(), 120.0)] * 3))
    finally:
        executor.close()
    took = time.monotonic() - started
    print(f"\n{took:.1f} s; notes: {notes}")
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert all(o.result == os.getpid() and o.node == "local" for o in outcomes)
    assert sum("ran past 2 s" in n and "cancelled" in n for n in notes) == 3
    assert took < 60


def test_a_cluster_lost_mid_run_finishes_here():
    """The head and every node die while tasks run: the driver process notices (or Ray ends it),
    and what was not done runs on this machine; the engine's own process goes on."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    notes: list[str] = []
    executor = RayExecutor(c.address, notes, LocalExecutor(2))
    killer = threading.Timer(3.0, lambda: [n.kill_all_processes(check_alive=False, allow_graceful=False)
                                           for n in [*c.worker_nodes, c.head_node]])
    started = time.monotonic()
    killer.start()
    try:
        outcomes = list(executor.map(_nap_task(ray_tasks.a_minute), [(os.getpid(), 2.0)] * 8))
        later = list(executor.map(_nap_task(ray_tasks.a_minute), [(os.getpid(), 2.0)] * 2))
    finally:
        killer.join()
        executor.close()
    took = time.monotonic() - started
    print(f"\n{took:.1f} s; notes: {notes}")
    assert sorted(o.index for o in outcomes) == list(range(8))
    assert any(o.node == "local" for o in outcomes) and executor.lost
    assert any("lost" in n or "driver stopped" in n for n in notes)
    assert [o.node for o in later] == ["local", "local"]       # once lost, the cluster is not tried again
    assert took < 150


def _can_hide_folders() -> str:
    """Why a worker that cannot see a folder cannot be made here ('' when it can): it runs in a
    mount namespace of its own with an empty tmpfs over the folder (root, util-linux unshare)."""
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               "mount -t tmpfs none /mnt && umount /mnt"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no unshare here ({exc})"
    return "" if done.returncode == 0 else f"cannot make a mount namespace: {done.stderr.decode().strip()[:200]}"


def _join_blind_node(address: str, hidden: list[Path], env: dict[str, str] | None = None,
                     cpus: int = 1) -> subprocess.Popen:
    """A Ray worker node (tests/ray_node.py) started in a mount namespace where the `hidden`
    folders are empty: it cannot see the user's files. `env`: more of its environment."""
    mounts = " && ".join(f"mount -t tmpfs none '{p}'" for p in hidden)
    node = Path(__file__).with_name("ray_node.py")
    script = f"{mounts} && exec '{sys.executable}' '{node}' {address} {cpus}"
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})


def _clips_to_hide(clips: list[Path], tmp_path: Path) -> tuple[Path, list[Path]]:
    """A folder of its own with copies of the clips, for a worker that cannot see it, and where
    a node keeps what is shipped to it (none there yet); skips where folders cannot be hidden."""
    why = _can_hide_folders()
    if why:
        pytest.skip(why)
    folder = tmp_path / "clips"
    folder.mkdir()
    for p in clips:
        (folder / p.name).write_bytes(p.read_bytes())
    copies = [shipped_copy(fingerprint(p), ".mp4") for p in clips]
    for copy in copies:
        copy.unlink(missing_ok=True)
    return folder, copies


def _wait_for_nodes(address: str, count: int, timeout_s: float = 90.0) -> None:
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout_s
        while len([n for n in ray.nodes() if n["Alive"]]) < count:
            assert time.monotonic() < deadline, "the worker node did not join"
            time.sleep(0.5)
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_sources_gets_them_through_the_object_store(clips, shared_media, tmp_path):
    """The head takes no tasks; the only worker runs where the clips folder is an empty tmpfs.
    Every source is shipped once through Ray's object store, analysis and render run on that
    worker, and the MP4 is the one a run on this machine makes, frame for frame. The node keeps
    its copies under its MONTAGE_SHIPPED_KEEP_GB: a copy unused for a day goes, fresh ones stay.
    Through Ray Client (ray://), with the copies gone, the sources travel through the client
    connection and the MP4 is the same again."""
    from montage_ai.pipeline import run
    from montage_ai.settings import Settings

    folder, copies = _clips_to_hide(clips, tmp_path)
    stale = shipped_copy("0" * 32, ".mp4")                 # an earlier run's copy, unused for a day
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\0" * 10_000)
    os.utime(stale, (time.time() - 86400, time.time() - 86400))
    port = _free_port()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                      "ray_client_server_port": port})
    blind = _join_blind_node(c.address, [folder], {"MONTAGE_SHIPPED_KEEP_GB": "0.000001"})
    try:
        _wait_for_nodes(c.address, 2)
        common = dict(clips=folder, music=shared_media / "vibe_ace.ogg", duration=10.0, resolution="360p")
        local = run(Settings(out=tmp_path / "local", cache_dir=tmp_path / "cache-local", **common), progress=False)
        remote = run(Settings(out=tmp_path / "ray", cache_dir=tmp_path / "cache-ray", ray_address=c.address, **common),
                     progress=False)
        assert all(copy.is_file() for copy in copies) and not stale.exists()
        # a later run (nothing cached here) finds the copies on the node: nothing is shipped again
        again = run(Settings(out=tmp_path / "again", cache_dir=tmp_path / "cache-again", ray_address=c.address,
                             **common), progress=False)
        for copy in copies:
            copy.unlink()
        client = run(Settings(out=tmp_path / "client", cache_dir=tmp_path / "cache-client",
                              ray_address=f"ray://127.0.0.1:{port}", **common), progress=False)
    finally:
        os.killpg(blind.pid, 15)
        blind.wait(timeout=60)
        c.shutdown()
        for copy in [*copies, stale]:
            copy.unlink(missing_ok=True)
    print("\n" + "\n".join(remote.notes + again.notes + client.notes))
    assert again.placement["analysis"].items == remote.placement["analysis"].items
    assert again.placement["analysis"].shipped_bytes == 0 and again.cache_hits == 0
    lines = [n for n in remote.notes if n.startswith(("analysis:", "render:"))]
    assert len(lines) == 2 and all("1 node(s) ran them" in n and "ran here" not in n for n in lines)
    shipped = sum(p.stat().st_size for p in clips)
    assert f"{shipped / 1e6:.1f} MB of sources shipped" in lines[0]     # each source once, in the analysis
    assert "shipped" not in lines[1]                                    # the render reuses them
    assert client.placement["analysis"].shipped_bytes == shipped
    assert client.placement["analysis"].items == remote.placement["analysis"].items
    for other in (remote, client):
        _assert_same_frames(local.video, other.video)


def test_two_tasks_writing_one_shipped_copy_at_once_leave_one_whole_copy(cluster):
    """Two runs' tasks on one machine's nodes can write the same shipped copy at the same moment
    (the same source, neither copy there yet): each writes its own temporary file and renames
    it, so the copy is always whole and no half-written file is left. Both tasks start writing
    at one agreed moment; up to three rounds, until the writes are seen to overlap in time."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(ray_tasks)
    blob = os.urandom(48 * 1024 * 1024)
    fp = "f" * 31 + "0"
    copy = shipped_copy(fp, ".bin")
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    overlapped = 0
    try:
        refs = [ray.put(blob[i:i + 16 * 1024 * 1024]) for i in range(0, len(blob), 16 * 1024 * 1024)]
        write = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(ray_tasks.materialize_timed)
        for _ in range(3):
            copy.unlink(missing_ok=True)
            start_at = time.time() + 3.0        # both start writing then, once their workers are up
            (a, a0, a1), (b, b0, b1) = ray.get([write.remote((fp, ".bin", refs, start_at)) for _ in range(2)],
                                               timeout=120)
            assert a == b == str(copy) and copy.read_bytes() == blob
            assert [p for p in copy.parent.iterdir() if copy.stem in p.name and p != copy] == []   # no temporary left
            print(f"\nwrites: {a0 % 100:.3f}-{a1 % 100:.3f} and {b0 % 100:.3f}-{b1 % 100:.3f}")
            overlapped += a0 < b1 and b0 < a1
            if overlapped:
                break
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(ray_tasks)
        copy.unlink(missing_ok=True)
    assert overlapped, "the two writes never overlapped in three rounds"


def _cli_run(clips: Path, music: Path, out: Path, duration: float, ray_address: str | None = None) -> list[str]:
    """The command line of a 360p run with JSON events (through the cluster at `ray_address`)."""
    argv = [sys.executable, "-m", "montage_ai.cli", "--json", "run", "--clips", str(clips), "--music", str(music),
            "--out", str(out), "--duration", str(duration), "--resolution", "360p"]
    return argv + (["--ray", ray_address] if ray_address else [])


@pytest.mark.slow
def test_two_runs_at_once_share_a_blind_nodes_shipped_copies(clips, shared_media, tmp_path):
    """Two users' runs on one cluster at the same time, over the same sources, on a two-CPU worker
    that cannot see them: each ships what the node lacks when its task asks (both may write the
    same copy at once), and both MP4s are the local one frame for frame. The node is left with one whole
    copy of each source and no half-written file, though its MONTAGE_SHIPPED_KEEP_GB is tiny
    (nothing in use is trimmed)."""
    import json

    from hostile import PROJECT, temp_files

    folder, copies = _clips_to_hide(clips, tmp_path)
    music = shared_media / "vibe_ace.ogg"

    def env(name: str) -> dict[str, str]:
        return {**os.environ, "MONTAGE_CACHE_DIR": str(tmp_path / f"cache-{name}")}

    local = subprocess.run(_cli_run(folder, music, tmp_path / "local", 10), cwd=PROJECT, env=env("local"),
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    blind = _join_blind_node(c.address, [folder], {"MONTAGE_SHIPPED_KEEP_GB": "0.000001"}, cpus=4)
    try:
        _wait_for_nodes(c.address, 2)
        runs = {name: subprocess.Popen(_cli_run(folder, music, tmp_path / name, 10, c.address), cwd=PROJECT,
                                       env=env(name), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in ("first", "second")}
        ended = {name: proc.communicate(timeout=600) for name, proc in runs.items()}
    finally:
        os.killpg(blind.pid, 15)
        blind.wait(timeout=60)
        c.shutdown()
    shipped = {}
    for name, proc in runs.items():
        stdout, stderr = ended[name]
        assert proc.returncode == 0, stderr
        summary = next(e for e in map(json.loads, stdout.splitlines()) if e["event"] == "done")["summary"]
        assert summary["placement"]["analysis"]["items"] and "local" not in summary["placement"]["analysis"]["items"]
        shipped[name] = summary["placement"]["analysis"]["shipped_bytes"]
    whole = sum(p.stat().st_size for p in clips)
    print(f"\nshipped by each run: {shipped} (the sources: {whole} bytes)")
    try:
        # each run ships what the node lacks when its task asks, each source at most once
        assert all(b <= whole for b in shipped.values()) and sum(shipped.values()) >= whole
        assert all(same_file(copy, fingerprint(p)) for copy, p in zip(copies, clips))
        assert temp_files(copies[0].parent) == []
        for name in runs:
            _assert_same_frames(tmp_path / "local" / "montage.mp4", tmp_path / name / "montage.mp4")
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)


def _drivers() -> list[str]:
    """Ray driver processes of the engine still alive (not zombies)."""
    return live_processes("montage_ai.execute.ray_driver")


def _cpus_free(address: str, timeout_s: float = 60.0) -> float:
    """Seconds until every CPU of the cluster is free again (Ray cancels the tasks of a driver
    that is gone)."""
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        t0 = time.monotonic()
        while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
            assert time.monotonic() - t0 < timeout_s, "the cluster still runs the stopped run's tasks"
            time.sleep(0.5)
        return time.monotonic() - t0
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("sig, moment", [("SIGTERM", "clips"), ("SIGTERM", "render"), ("SIGKILL", "render")])
def test_a_run_on_ray_stopped_leaves_nothing_behind(cluster, clips, shared_media, tmp_path, sig, moment):
    """SIGTERM (docker stop) or kill -9 while the cluster analyses or renders: the run ends with its
    code and one line, no output, no temporary file, no driver process; the cluster's CPUs come
    free; and the next run completes."""
    import json
    import signal

    from hostile import PROJECT, temp_files

    folder = tmp_path / "clips"
    folder.mkdir()
    for p in clips:
        (folder / p.name).symlink_to(p)
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = _cli_run(folder, shared_media / "vibe_ace.ogg", out, 12, cluster.address)
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache)}
    before = set(_drivers())
    proc = subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["event"] == "stage_start" and ev["stage"] == moment:
            break
    else:
        pytest.fail(f"the run ended before {moment}: {proc.stderr.read()}")
    time.sleep(0.5)
    assert set(_drivers()) - before, "the run has a Ray driver process"
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=60)
    time.sleep(0.5)
    assert not set(_drivers()) - before, set(_drivers()) - before
    assert not (out / "montage.mp4").exists()
    if sig == "SIGKILL":
        assert proc.returncode == -9
    else:
        assert proc.returncode == 143, stderr
        assert "Traceback" not in stderr and len([ln for ln in stderr.splitlines() if "error:" in ln]) == 1, stderr
        assert temp_files(out, cache) == []
    print(f"\n{sig} during {moment}: the cluster's CPUs free {_cpus_free(cluster.address):.1f} s later")
    rerun = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "montage.mp4").is_file() and temp_files(out, cache) == []
    # the JSON events cover the cluster's work: the clip and render bars reach their totals, and
    # the summary says the render ran on the cluster
    events = [json.loads(line) for line in rerun.stdout.splitlines()]
    for stage in ("clips", "render"):
        bars = [e for e in events if e["event"] == "progress" and e["stage"] == stage]
        assert bars and bars[-1]["done"] == bars[-1]["total"] > 0, stage
    placed = next(e for e in events if e["event"] == "done")["summary"]["placement"]
    assert placed["render"]["items"] and "local" not in placed["render"]["items"]


def test_a_task_that_keeps_failing_names_its_cause_and_runs_here(cluster):
    """A task whose own code fails there (Ray retries only lost workers): its error, naming the
    file, is in the notes (not Ray's traceback header), and the item runs on this machine."""
    notes: list[str] = []
    executor = RayExecutor(cluster.address, notes, LocalExecutor(2))
    try:
        outcomes = list(executor.map(Task("probe", run=ray_tasks.fails_remotely), [(os.getpid(), "clip7.mov")]))
    finally:
        executor.close()
    print(f"\nnotes: {notes}")
    assert [(o.result, o.node) for o in outcomes] == [(os.getpid(), "local")]
    assert len(notes) == 1 and "clip7.mov: cannot be decoded on this worker" in notes[0] and "ran it here" in notes[0]
    assert executor.use["probe"].ran_here == 1


@pytest.mark.parametrize("value, keep", [("", 50 * 10**9), ("2.5", 2_500_000_000), ("0", 0),
                                         ("lots", None), ("-1", None), ("nan", None), ("inf", None)])
def test_a_nodes_shipped_copies_size_is_its_setting_or_one_line_naming_it(monkeypatch, value, keep):
    """A bad MONTAGE_SHIPPED_KEEP_GB on a node fails that node's tasks naming the setting: the
    run says so and runs them here (test_a_task_that_keeps_failing_names_its_cause_and_runs_here)."""
    from montage_ai.execute.ray_driver import shipped_keep_bytes

    monkeypatch.setenv("MONTAGE_SHIPPED_KEEP_GB", value)
    if keep is None:
        with pytest.raises(ValueError, match=f"MONTAGE_SHIPPED_KEEP_GB='{value}' on this node"):
            shipped_keep_bytes()
    else:
        assert shipped_keep_bytes() == keep


@pytest.mark.parametrize("address, failures, joined", [
    ("ray://10.0.0.5:10001", 2, True),          # the proxy's server died at birth twice: the third try joins
    ("ray://10.0.0.5:10001", 3, False),         # three times: the proxy's own message reaches the user
    ("10.0.0.5:6379", 1, False),                # not through Ray Client: nothing to try again
])
def test_joining_through_ray_client_tries_again_when_the_proxy_fails_to_start_a_server(address, failures, joined):
    """A Ray Client proxy on a loaded machine at times fails to start the server it makes for a
    new client (Ray answers "Initialization failure from server"); a new connection gets a new
    server. Other failures, and other addresses, are not tried again."""
    from montage_ai.execute.ray_driver import join

    calls = []

    def init() -> None:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last): ...")

    if joined:
        join(init, address, pause_s=0)
    else:
        with pytest.raises(ConnectionAbortedError, match="Initialization failure"):
            join(init, address, pause_s=0)
    assert len(calls) == (failures + 1 if joined else min(failures, 3))

    def refused() -> None:
        calls.append(1)
        raise ConnectionError("ray client connection timeout")

    calls.clear()
    with pytest.raises(ConnectionError):
        join(refused, address, pause_s=0)
    assert len(calls) == 1
