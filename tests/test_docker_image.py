"""The image, built and run with a real Docker engine (skipped, with the reason, where there is
none): a montage made by a user id that is neither root nor 1000, owned by that user, then
re-rendered through `render --docker`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hostile import PROJECT, small_media
from montage_ai.deploy.docker_run import docker_argv

pytestmark = pytest.mark.slow

IMAGE = "montage-ai:test"
UID = GID = 1234


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    try:
        if _docker("info").returncode != 0:
            pytest.skip("no Docker engine here (`docker info` fails): the image is not built")
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("no Docker client or engine here: the image is not built")
    base = "python:3.11-slim"
    if _docker("image", "inspect", base).returncode != 0 and _docker("pull", base, timeout=300).returncode != 0:
        pytest.skip(f"base image {base} is neither present nor pullable (no registry): the image is not built")
    built = _docker("build", "-t", IMAGE, str(PROJECT), timeout=1800)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout.strip())
    print(f"\nimage {IMAGE}: {size / 2**20:.0f} MiB")
    return IMAGE


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    argv = [IMAGE if a == "montage-ai:latest" else a for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


def test_any_user_id_makes_a_montage_it_owns_and_renders_it_again(image, tmp_path):
    clips, music = small_media(tmp_path, music_s=8)
    out = tmp_path / "output"
    for path in (tmp_path, clips, out):
        path.mkdir(exist_ok=True)
        os.chown(path, UID, GID)           # the user's own folders, as on their laptop
    made = _run(docker_argv(["run", "--clips", "clips", "--music", "drums.wav", "--out", "output", "--duration", "4",
                             "--resolution", "360p"], {"MEMORY_LIMIT_GB": "2"}, tmp_path, tmp_path, UID, GID))
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stderr[-2000:]
    video = out / "montage.mp4"
    assert video.stat().st_size > 10000 and video.stat().st_uid == UID
    assert {p.stat().st_uid for p in out.iterdir()} == {UID}
    again = _run(docker_argv(["render", "output/montage.otio", "-o", "output/again.mp4", "--search", "."],
                             {"MEMORY_LIMIT_GB": "2"}, tmp_path, tmp_path, UID, GID))
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert (out / "again.mp4").stat().st_uid == UID and (out / "again.mp4").stat().st_size > 10000


def test_doctor_runs_in_the_container_as_any_user(image):
    done = subprocess.run(["docker", "run", "--rm", "--user", f"{UID}:{GID}", IMAGE, "doctor"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cache      /data/cache/uid-1234" in done.stdout and "cgpu serve" in done.stdout
