"""Deployment: the compose file, .env.example and the settings model agree both ways; the
docker command line maps host paths; MEMORY_LIMIT_GB holds on the demo."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from montage_ai.deploy.docker_run import docker_argv
from montage_ai.deploy.env_example import env_names, render_env_example
from montage_ai.resources import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = {"CGPU_ENABLED", "CGPU_HOST", "CGPU_PORT", "CGPU_GPU_ENABLED", "CGPU_TIMEOUT", "MEMORY_LIMIT_GB",
              "MAX_PARALLEL_JOBS", "OLLAMA_HOST"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_env_example_is_generated_from_the_settings_model():
    assert (ROOT / ".env.example").read_text() == render_env_example(), "run: montage-ai env-example .env.example"


def test_env_example_lists_exactly_what_the_engine_reads():
    listed = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert listed == set(env_names())


def test_compose_variables_are_settings_and_the_documented_ones_are_there():
    service = _compose()["services"]["montage-ai"]
    env = service["environment"]
    assert set(env) <= set(env_names())
    assert DOCUMENTED <= set(env)
    assert env["CGPU_HOST"] == "${CGPU_HOST:-host.docker.internal}"
    assert "host.docker.internal:host-gateway" in service["extra_hosts"]
    assert service["mem_limit"] == "${MEMORY_LIMIT_GB:-8}g"
    # every ${VAR} used anywhere in the file is a setting, or the host's HOME (cgpu login), the
    # user and group to run as, and whether to build with the cgpu CLI
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert used - {"HOME", "MONTAGE_UID", "MONTAGE_GID", "MONTAGE_BUILD_CGPU"} <= set(env_names())
    from montage_ai.deploy.docker_run import CACHE_VOLUME, PASS_THROUGH

    assert list(env) == PASS_THROUGH                     # every setting reaches the engine
    assert _compose()["volumes"]["montage-ai-cache"]["name"] == CACHE_VOLUME
    assert service["user"] == "${MONTAGE_UID:-1000}:${MONTAGE_GID:-1000}"


def test_compose_file_with_docker_compose_when_available():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed: the compose file was checked by "
                    "parsing it only")
    proc = subprocess.run([*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_dockerfile_shape():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.1[1-9]-slim", text, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS build", text, re.M)
    assert "libomp5" in text and "npm install -g cgpu" in text and 'WITH_CGPU" = 1' in text
    assert "apt-get install -y --no-install-recommends ffmpeg" not in text   # the wheel's ffmpeg
    assert (ROOT / ".dockerignore").is_file()
    assert re.search(r"^USER montage", text, re.M)
    assert re.search(r'^VOLUME \["/data/input", "/data/music", "/data/output", "/data/cache"\]', text, re.M)
    assert 'ENTRYPOINT ["montage-ai-entrypoint"]' in text


def test_docker_argv_maps_host_paths_to_volumes(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "songs").mkdir()
    (tmp_path / ".env").write_text("MEMORY_LIMIT_GB=6\nCGPU_ENABLED=1\n")
    home = tmp_path / "home"
    (home / ".config" / "cgpu").mkdir(parents=True)
    argv = docker_argv(["run", "--clips", "clips", "--music", "songs/a b.mp3", "--style", "fast"],
                       {"MAX_PARALLEL_JOBS": "1", "MEMORY_LIMIT_GB": "4"}, tmp_path, home, 1000, 1000)
    joined = " ".join(argv)
    assert f"{tmp_path / 'clips'}:/data/input:ro" in argv
    assert f"{tmp_path / 'songs'}:/data/music:ro" in argv
    assert f"{tmp_path / 'output'}:/data/output" in argv
    assert f"{home / '.config' / 'cgpu'}:/home/montage/.config/cgpu" in argv
    assert argv[argv.index("--memory") + 1] == "4g"          # environment beats .env
    assert "CGPU_ENABLED=1" in argv and "MAX_PARALLEL_JOBS=1" in argv
    assert not any(a.startswith("CGPU_HOST=") for a in argv)  # unset: the entry point maps it to the host
    tail = argv[argv.index("montage-ai:latest") + 1:]
    assert tail == ["run", "--style", "fast", "--clips", "/data/input", "--music", "/data/music/a b.mp3",
                    "--out", "/data/output"]
    assert "--user 1000:1000" in joined


def test_launcher_hands_docker_runs_to_docker(tmp_path):
    env = {**os.environ, "MONTAGE_DOCKER_DRY_RUN": "1", "MONTAGE_DOCKER": "1"}
    if shutil.which("docker") is None:
        pytest.skip("no docker client on PATH")
    out = subprocess.run([str(ROOT / "montage-ai.sh"), "run", "--clips", "c", "--music", "m.ogg"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("docker run ") and "/data/music/m.ogg" in out.stdout


@pytest.mark.slow
def test_demo_stays_under_memory_limit(tmp_path):
    from montage_ai.demo.media import build_demo_media
    from montage_ai.pipeline import run
    from montage_ai.settings import Settings

    demo = build_demo_media(tmp_path / "media")
    s = Settings(clips=demo.clips, music=demo.music, out=tmp_path / "out", cache_dir=tmp_path / "cache",
                 duration=demo.duration_s, resolution="720p", memory_limit_gb=2, max_parallel_jobs=1)
    with PeakMemory() as mem:
        run(s, progress=False)
    print(f"peak memory under MEMORY_LIMIT_GB=2: {mem.peak / 2**20:.0f} MB")
    assert mem.peak < 2 * 2**30


def test_every_setting_reaches_the_container():
    from montage_ai.deploy.docker_run import HOST_ONLY, MAPPED, PASS_THROUGH

    assert set(PASS_THROUGH) | set(MAPPED) | set(HOST_ONLY) == set(env_names())
    assert not set(PASS_THROUGH) & (set(MAPPED) | set(HOST_ONLY))


def test_render_and_export_mount_the_timeline_its_media_and_the_output(tmp_path):
    media = tmp_path / "footage"
    media.mkdir()
    cut = tmp_path / "edit" / "my cut.otio"
    cut.parent.mkdir()
    cut.write_text('{"OTIO_SCHEMA": "Timeline.1", "tracks": {"children": [{"children": [{"media_references": '
                   '{"DEFAULT_MEDIA": {"target_url": "' + (media / "a.mp4").as_uri() + '"}}}]}]}}')
    argv = docker_argv(["render", "edit/my cut.otio", "-o", "renders/final.mp4", "--search", "footage"], {},
                       tmp_path, tmp_path / "home", 1234, 1234)
    assert f"{cut.parent}:{cut.parent}:ro" in argv                    # the timeline, read only
    assert f"{media}:{media}:ro" in argv                              # the media it names
    assert f"{tmp_path / 'renders'}:{tmp_path / 'renders'}" in argv   # where the output goes
    tail = argv[argv.index("montage-ai:latest") + 1:]
    assert tail == ["render", str(cut), "--search", str(media), "-o", str(tmp_path / "renders" / "final.mp4")]
    beside = docker_argv(["export", "edit/my cut.otio", "--to", "kdenlive"], {}, tmp_path, tmp_path, 1234, 1234)
    assert f"{cut.parent}:{cut.parent}" in beside                     # writes beside the timeline
    demo = docker_argv(["demo"], {}, tmp_path, tmp_path, 1234, 1234)
    assert f"{tmp_path / 'demo'}:/data/output" in demo and demo[-2:] == ["--work", "/data/output"]
    assert (tmp_path / "demo").is_dir()


def test_dry_run_is_shell_quoted(tmp_path):
    (tmp_path / "my clips").mkdir()
    env = {**os.environ, "MONTAGE_DOCKER_DRY_RUN": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "engine" / "montage_ai" / "deploy" / "docker_run.py"), "run",
                          "--clips", "my clips", "--music", "it's.ogg"], cwd=tmp_path, capture_output=True,
                         text=True, env={**env, "PATH": f"{tmp_path}:{env['PATH']}"}, timeout=60)
    if out.returncode == 2 and "needs Docker" in out.stderr:
        pytest.skip("no docker client on PATH")
    words = shlex.split(out.stdout)
    assert f"{tmp_path / 'my clips'}:/data/input:ro" in words and "/data/music/it's.ogg" in words


@pytest.mark.parametrize("given, seen", [("", "host.docker.internal"), ("127.0.0.1", "host.docker.internal"),
                                         ("localhost", "host.docker.internal"), ("10.0.0.5", "10.0.0.5")])
def test_the_entry_point_reads_this_machine_as_the_host(tmp_path, given, seen):
    """The image's entry point, run by sh as in the image: the one place CGPU_HOST is mapped."""
    import subprocess

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "MONTAGE_CACHE_DIR": str(tmp_path / "cache"), "CGPU_HOST": given}
    done = subprocess.run(["sh", str(ROOT / "scripts" / "docker-entrypoint.sh"), "doctor"],
                          env=env, capture_output=True, text=True, timeout=120)
    director = [ln for ln in done.stdout.splitlines() if ln.startswith("director") and "cgpu serve" in ln]
    assert director and f" at {seen}:" in director[0], done.stdout[-2000:] + done.stderr[-2000:]
