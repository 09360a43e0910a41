"""Upscaling on Ray GPU workers: a real Ray cluster on loopback (ray.cluster_utils.Cluster: a
head with one CPU and no GPU, and, for the GPU tests, a node with one CPU and one GPU).

Ray's GPUs are logical resources, so the second node "has" a GPU here, and the worker's
Real-ESRGAN ncnn runs on what it finds: on this machine the CPU (only llvmpipe). The ranges
made there are the frames local ncnn makes for the same jobs; the task ran on the GPU node; a
cluster without GPU, or a task past its bound, passes the ranges on down the chain with the
reason in the report; doctor names the chain in order."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import ray_tasks

from media_tools import decode_frames
from montage_ai.execute.local import LocalExecutor
from montage_ai.timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan
from montage_ai.upscale import UpscaleOptions, chain_line, gpu_task, plan_upscale, upscale_spec
from montage_ai.upscale import apply
from montage_ai.upscale.apply import probe_geoms, ray_parts
from montage_ai.upscale.local import NcnnStatus, upscale_ncnn

# Ray's switch for loopback-only clusters, read when ray is imported: every node, the GCS and the
# object store listen on 127.0.0.1 only
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'montage-ai[ray]')")
from ray.cluster_utils import Cluster  # noqa: E402

from montage_ai.execute.ray_cluster import RayExecutor  # noqa: E402
from montage_ai.execute.ray_driver import shipped_copy  # noqa: E402
from montage_ai.media.fingerprint import fingerprint  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A head node with one CPU and no GPU, every address on loopback."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def gpu_node(cluster):
    """A second node with one CPU and one (logical) GPU: the only place a `num_gpus=1` task fits."""
    node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    return node


def _spec(source: Path) -> RenderSpec:
    """Two cuts of three frames each, far enough apart to be two ranges (7 source frames each,
    margins included), upscaled x2 to 320x180."""
    pieces = [Piece(kind="clip", record_start_frame=rec, frames=3, a=SourceSpan(path=source, start_s=start))
              for rec, start in ((0, 0.1), (3, 0.6))]
    return RenderSpec(settings=RenderSettings(width=320, height=180, fps_num=24, fit="crop"),
                      total_frames=6, pieces=pieces, audio=[])


def _executor(cluster, notes: list[str]) -> RayExecutor:
    return RayExecutor(cluster.address, notes, LocalExecutor(1))


def _upscale_on(cluster, spec: RenderSpec, cache: Path):
    """upscale_spec through the cluster: (the report, the executor's notes, the closed executor)."""
    notes: list[str] = []
    executor = _executor(cluster, notes)
    try:
        _, report = upscale_spec(spec, UpscaleOptions(enabled=True), cache, executor=executor)
    finally:
        executor.close()
    print("\n" + "\n".join(report.summary_lines() + notes))
    return report, notes, executor


@pytest.mark.real_media
def test_a_cluster_without_gpu_passes_the_ranges_on_and_says_why(cluster, real_low, ncnn, tmp_path):
    report, notes, executor = _upscale_on(cluster, _spec(real_low), tmp_path / "cache")
    assert [e.backend for e in report.entries] == ["ncnn", "ncnn"]
    assert report.fallbacks == ["Ray GPU passed over for 2 range(s): the Ray cluster has no GPU"]
    assert "upscale fallback: Ray GPU passed over for 2 range(s): the Ray cluster has no GPU" in report.summary_lines()
    assert "upscale" not in executor.use or not executor.use["upscale"].items    # nothing ran on the cluster


def test_doctor_names_the_chain_in_order(cluster, tmp_path):
    """Without joining: a TCP check of the address at most."""
    from montage_ai import doctor
    from montage_ai.settings import Settings

    screen = doctor.report(Settings(ray_address=cluster.address, cache_dir=tmp_path / "cache", cgpu_enabled=False,
                                    cgpu_gpu_enabled=False, ollama_host="", openai_base_url=""))
    assert chain_line(False, cluster.address) in screen.splitlines()
    for address, state in ((cluster.address, f"RAY_ADDRESS {cluster.address} answers"),
                           ("127.0.0.1:1", "RAY_ADDRESS 127.0.0.1:1: no Ray cluster answers there"),
                           ("ray://127.0.0.1:1", "RAY_ADDRESS ray://127.0.0.1:1: no Ray cluster answers there"),
                           ("", "off: --ray or RAY_ADDRESS")):
        line = chain_line(False, address)
        print("\n" + line)
        steps = line.removeprefix("upscale    chain: ").split(" -> ")
        assert [s.split(" (")[0] for s in steps] == ["Ray GPU", "Colab GPU", "local Real-ESRGAN ncnn", "ffmpeg Lanczos"]
        assert steps[0].startswith(f"Ray GPU ({state}") and steps[1].startswith("Colab GPU (disabled")
    assert not ray.is_initialized()


def test_tasks_on_different_gpus_of_a_node_use_different_vulkan_devices(monkeypatch):
    """Ray's k-th GPU is the k-th hardware Vulkan device; one GPU, a CPU-only node or
    MONTAGE_UPSCALE_GPU leave ncnn_status's choice alone."""
    monkeypatch.delenv("MONTAGE_UPSCALE_GPU", raising=False)
    two = NcnnStatus(available=True, reason="Vulkan GPU 1: NVIDIA L4", gpuid=1,
                     devices=["llvmpipe (LLVM 15.0.6, 256 bits)", "NVIDIA L4", "NVIDIA L4"])
    assert gpu_task.worker_device(two, [0]) == (1, "Vulkan GPU 1: NVIDIA L4")
    assert gpu_task.worker_device(two, [1]) == (2, "Vulkan GPU 2: NVIDIA L4")
    one = two.model_copy(update={"devices": ["NVIDIA L4"], "gpuid": 0, "reason": "Vulkan GPU 0: NVIDIA L4"})
    assert gpu_task.worker_device(one, [3]) == (0, "Vulkan GPU 0: NVIDIA L4")
    cpu = NcnnStatus(available=True, reason="CPU (only a software Vulkan device: llvmpipe)", gpuid=-1,
                     devices=["llvmpipe (LLVM 15.0.6, 256 bits)"])
    assert gpu_task.worker_device(cpu, [0]) == (-1, "CPU (only a software Vulkan device: llvmpipe)")
    monkeypatch.setenv("MONTAGE_UPSCALE_GPU", "2")
    forced = two.model_copy(update={"gpuid": 2, "reason": "Vulkan device 2 (MONTAGE_UPSCALE_GPU)"})
    assert gpu_task.worker_device(forced, [0]) == (2, "Vulkan device 2 (MONTAGE_UPSCALE_GPU)")


def _local_ncnn_frames(spec: RenderSpec, folder: Path) -> dict[float, list[np.ndarray]]:
    """Range start (s) -> the frames this machine's ncnn makes for that range's job."""
    out: dict[float, list[np.ndarray]] = {}
    for job in plan_upscale(spec, probe_geoms(spec)).jobs:
        video = folder / f"local-{job.start_frame}.mkv"
        upscale_ncnn(job, video)
        out[job.start_s] = decode_frames(video)
    return out


@pytest.mark.real_media
@pytest.mark.parametrize("part_frames, tasks", [(None, 2), (3, 6)])
def test_gpu_workers_make_the_ranges_local_ncnn_makes(cluster, gpu_node, real_low, ncnn, tmp_path, monkeypatch,
                                                      part_frames, tasks):
    """Two 7-frame ranges, whole (two tasks) or in parts of 3 frames (six tasks, as a long 4K
    range goes in parts of ~8), are the very frames local ncnn makes for them."""
    if part_frames:
        monkeypatch.setattr(apply, "RAY_PART_BYTES", part_frames * 320 * 180 * 4)
    spec = _spec(real_low)
    report, notes, executor = _upscale_on(cluster, spec, tmp_path / "cache")
    assert [e.backend for e in report.entries] == ["ray", "ray"] and not report.fallbacks
    assert executor.use["upscale"].items == {gpu_node.node_id: tasks}
    local = _local_ncnn_frames(spec, tmp_path)
    for entry in report.entries:
        assert entry.notes == [f"Real-ESRGAN ncnn on Ray node {gpu_node.node_id}: {ncnn.reason}"]
        there, here = decode_frames(entry.output), local[entry.start_s]
        assert len(there) == len(here) == entry.frames == 7
        assert all(np.array_equal(a, b) for a, b in zip(there, here))          # bit-exact across processes
    assert any(line.startswith("upscale sintel_160.mp4") and ": ray in " in line and gpu_node.node_id in line
               for line in report.summary_lines())
    assert not list((tmp_path / "cache").glob("work*"))                        # the parts are gone


def test_a_range_is_cut_into_parts_by_the_size_of_its_result():
    job = plan_upscale(_spec(Path("/m.mp4")), {Path("/m.mp4"): _geom160()}).jobs[0]
    assert (job.frames, job.out_width, job.out_height) == (7, 320, 180)
    for per, sizes in ((3, [3, 3, 1]), (7, [7]), (100, [7]), (1, [1] * 7)):
        parts = ray_parts(job, per * 320 * 180 * 4)
        assert [p.frames for p in parts] == sizes
        assert [p.start_frame for p in parts] == [job.start_frame + sum(sizes[:i]) for i in range(len(sizes))]
        assert parts[-1].end_frame == job.end_frame
        assert all(p.model_copy(update={"start_frame": job.start_frame, "end_frame": job.end_frame}) == job
                   for p in parts)                       # the same source, crop, scale and model
    assert len(ray_parts(job)) == 1                       # 7 small frames: far below RAY_PART_BYTES


def _geom160():
    from montage_ai.upscale.ranges import SourceGeom

    return SourceGeom(path=Path("/m.mp4"), width=160, height=90, fps_num=24, duration_s=1.0)


@pytest.mark.real_media
def test_a_worker_that_cannot_see_the_source_gets_it_through_the_object_store(cluster, gpu_node, real_low, ncnn,
                                                                              tmp_path, monkeypatch):
    """A relative source path: this process finds it from its working folder, a Ray worker
    (working elsewhere) does not, so the file is shipped once and the job reads the copy."""
    monkeypatch.chdir(real_low.parent)
    copy = shipped_copy(fingerprint(real_low), real_low.suffix)    # a copy an earlier run left on the node
    copy.unlink(missing_ok=True)
    notes: list[str] = []
    executor = _executor(cluster, notes)
    try:
        _, report = upscale_spec(_spec(Path(real_low.name)), UpscaleOptions(enabled=True), tmp_path / "cache",
                                 executor=executor)
    finally:
        executor.close()
        copy.unlink(missing_ok=True)
    print("\n" + "\n".join(report.summary_lines() + notes))
    assert [e.backend for e in report.entries] == ["ray", "ray"] and not report.fallbacks
    assert executor.use["upscale"].shipped_bytes == real_low.stat().st_size          # once for both ranges
    assert [e.source for e in report.entries] == [Path(real_low.name)] * 2            # the user's path, not the copy


@pytest.mark.slow
def test_a_run_with_ray_and_upscale_upscales_on_the_gpu_node(cluster, gpu_node, ncnn, tmp_path):
    """The whole pipeline with --ray and --upscale: every range made on the GPU node, and the
    summary says so (range lines and the placement line)."""
    from montage_ai.demo.synth_audio import make_drum_track
    from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
    from montage_ai.pipeline import run
    from montage_ai.settings import Settings

    for i, color in enumerate(distinct_colors(2)):
        make_clip(tmp_path / "clips" / f"small{i}.mp4", [ShotSpec(duration_s=3, color=color)], width=160, height=90)
    music = make_drum_track(tmp_path / "drums.wav", bpm=120, duration_s=6).path
    summary = run(Settings(clips=tmp_path / "clips", music=music, out=tmp_path / "out", duration=1.0,
                           resolution="360p", style="fast", upscale=True, upscale_scale=2,
                           cache_dir=tmp_path / "cache", ray_address=cluster.address), progress=False)
    print("\n" + "\n".join(summary.notes))
    ranges = [n for n in summary.notes if n.startswith("upscale ") and "fallback" not in n]
    assert ranges and all(": ray in " in n and gpu_node.node_id in n for n in ranges)
    assert any(n.startswith(f"upscale: {len(ranges)} task(s) on Ray at") for n in summary.notes)
    assert not any("fallback" in n or "ran here" in n for n in summary.notes)


@pytest.mark.real_media
def test_a_gpu_task_past_its_bound_is_cancelled_and_the_range_goes_on(cluster, gpu_node, real_low, ncnn,
                                                                        tmp_path, monkeypatch):
    """A bound of 1 s (no range upscales that fast here): the cluster cancels the tasks, and local
    ncnn, next in the chain, makes both ranges."""
    # a function of tests/ray_tasks.py: the engine's Ray driver sends it to the workers by value
    monkeypatch.setattr(gpu_task, "UPSCALE_GPU", dataclasses.replace(gpu_task.UPSCALE_GPU, timeout_s=ray_tasks.one_second))
    report, notes, executor = _upscale_on(cluster, _spec(real_low), tmp_path / "cache")
    assert [e.backend for e in report.entries] == ["ncnn", "ncnn"]
    assert report.fallbacks == ["Ray GPU passed over for 2 range(s): a task ran past 1 s on the Ray cluster "
                                "and was cancelled"]
