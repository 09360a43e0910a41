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


@pytest.fixture
def fake_cgpu_on_path(tmp_path, monkeypatch):
    """The fake `cgpu` (and gemini) of tests/test_cgpu_serve.py first on PATH."""
    import sys

    from test_cgpu_serve import FAKE_CGPU, FAKE_GEMINI, _free_port, _write_exe

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_exe(bin_dir / "cgpu", FAKE_CGPU.format(python=sys.executable))
    _write_exe(bin_dir / "gemini", FAKE_GEMINI)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return _free_port()


@pytest.mark.parametrize("bind", ["docker", "127.0.0.1"])
def test_doctor_in_the_container_reaches_cgpu_start_or_says_why(image, tmp_path, fake_cgpu_on_path, bind):
    """cgpu-start with CGPU_BIND=docker listens on the Docker bridge, which the container reaches
    as host.docker.internal; bound to 127.0.0.1 it is unreachable, and doctor says exactly that."""
    from montage_ai.remote import cgpu_serve
    from montage_ai.settings import Settings

    port = fake_cgpu_on_path
    s = Settings(cgpu_bind=bind, cgpu_port=port, cache_dir=tmp_path / "cache")
    started = cgpu_serve.start(s, wait_s=15)
    try:
        assert started.healthy, started.message
        argv = docker_argv(["doctor"], {"CGPU_PORT": str(port), "MONTAGE_CACHE_DIR": str(tmp_path / "cache")},
                           tmp_path, tmp_path, UID, GID)
        done = _run(argv)
        assert done.returncode == 0, done.stderr
        line = next(ln for ln in done.stdout.splitlines() if "director   cgpu serve" in ln)
        if bind == "docker":
            assert f"at host.docker.internal:{port}" in line and "listening" in line, line
        else:
            assert f"listens on 127.0.0.1:{port}, which a container cannot reach" in line, line
            assert "CGPU_BIND=docker" in line
    finally:
        cgpu_serve.stop(s)


def _compose() -> list[str] | None:
    """`docker compose` (v2) or `docker-compose` (v1), whichever this machine has."""
    import shutil

    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_the_readme_compose_command_as_another_user(image, tmp_path):
    """README: mkdir -p input music output, then MONTAGE_UID=$(id -u) MONTAGE_GID=$(id -g)
    docker compose run --rm montage-ai run --clips /data/input --music /data/music/... --out /data/output"""
    compose = _compose()
    if compose is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    assert _docker("tag", IMAGE, "montage-ai:latest").returncode == 0   # the image compose names
    clips, music = small_media(tmp_path, music_s=8)
    for name, src in (("input", clips), ("music", music.parent)):
        (tmp_path / name).mkdir(exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and f.suffix in (".mp4", ".wav"):
                (tmp_path / name / f.name).write_bytes(f.read_bytes())
    (tmp_path / "output").mkdir()
    for name in ("input", "music", "output"):
        os.chown(tmp_path / name, UID, GID)
    env = {**os.environ, "MONTAGE_UID": str(UID), "MONTAGE_GID": str(GID), "HOME": str(tmp_path)}
    done = subprocess.run([*compose, "-f", str(PROJECT / "docker-compose.yml"), "--project-directory", str(tmp_path),
                           "-p", f"montage-test-{os.getpid()}", "run", "--rm", "montage-ai", "run", "--clips",
                           "/data/input", "--music", f"/data/music/{music.name}", "--out", "/data/output",
                           "--duration", "4", "--resolution", "360p"], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    outputs = list((tmp_path / "output").iterdir())
    assert (tmp_path / "output" / "montage.mp4").stat().st_size > 10000
    assert {p.stat().st_uid for p in outputs} == {UID}
