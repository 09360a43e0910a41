"""Turn `./montage-ai.sh --docker run ...` into a `docker run` argument list.

Host paths in the flags become volume mounts (/data/input, /data/music, /data/output, a cache
volume) and the flags are rewritten to the container's paths; the deployment settings present
in the environment or `.env` are passed through, and CGPU_HOST defaults to the host gateway so
the container reaches `cgpu serve` on the host. `cgpu run` (cloud upscaling) runs inside the
container with the host's cgpu login mounted from ~/.config/cgpu.

Standard library only: the launcher runs this with the host's python3, before any virtualenv.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

IMAGE = os.environ.get("MONTAGE_DOCKER_IMAGE", "montage-ai:latest")
PASS_THROUGH = ["CGPU_ENABLED", "CGPU_HOST", "CGPU_PORT", "CGPU_MODEL", "CGPU_GPU_ENABLED", "CGPU_TIMEOUT",
                "MEMORY_LIMIT_GB", "MAX_PARALLEL_JOBS", "OLLAMA_HOST", "OLLAMA_MODEL", "OPENAI_BASE_URL",
                "OPENAI_API_KEY", "OPENAI_MODEL", "LLM_TIMEOUT", "LLM_BACKOFF"]
LOCAL_HOSTS = {"", "127.0.0.1", "localhost", "::1"}


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blanks ignored, quotes stripped)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _take(args: list[str], flag: str) -> tuple[str | None, list[str]]:
    """Remove `flag VALUE` or `flag=VALUE` from args; return the value and the rest."""
    out, value, i = [], None, 0
    while i < len(args):
        a = args[i]
        if a == flag and i + 1 < len(args):
            value, i = args[i + 1], i + 2
            continue
        if a.startswith(flag + "="):
            value, i = a.split("=", 1)[1], i + 1
            continue
        out.append(a)
        i += 1
    return value, out


def docker_argv(args: list[str], env: dict[str, str], cwd: Path, home: Path, uid: int, gid: int) -> list[str]:
    """The full `docker run` argv for montage-ai `args` given on the host."""
    env = {**read_dotenv(cwd / ".env"), **env}   # environment wins over .env, as in the engine
    mounts: list[str] = []
    rest = list(args)
    clips, rest = _take(rest, "--clips")
    music, rest = _take(rest, "--music")
    out, rest = _take(rest, "--out")
    container_args = list(rest)
    if clips:
        mounts += ["-v", f"{(cwd / clips).resolve()}:/data/input:ro"]
        container_args += ["--clips", "/data/input"]
    if music:
        m = (cwd / music).resolve()
        mounts += ["-v", f"{m.parent}:/data/music:ro"]
        container_args += ["--music", f"/data/music/{m.name}"]
    out_dir = (cwd / (out or "output")).resolve()
    mounts += ["-v", f"{out_dir}:/data/output"]
    if container_args and container_args[0] in ("run", "analyze", "render", "demo"):
        container_args += ["--out", "/data/output"] if container_args[0] in ("run", "analyze") else []
    mounts += ["-v", "montage-ai-cache:/data/cache"]
    cgpu_config = Path(env.get("CGPU_CONFIG_DIR", home / ".config" / "cgpu"))
    if cgpu_config.is_dir():
        mounts += ["-v", f"{cgpu_config}:/home/montage/.config/cgpu"]
    passed = {k: env[k] for k in PASS_THROUGH if k in env}
    if passed.get("CGPU_HOST", "") in LOCAL_HOSTS:
        passed["CGPU_HOST"] = "host.docker.internal"   # the host's cgpu serve, seen from the container
    memory_gb = float(passed.get("MEMORY_LIMIT_GB", "8"))
    argv = ["docker", "run", "--rm", "--init", "--user", f"{uid}:{gid}",
            "--add-host", "host.docker.internal:host-gateway", "--memory", f"{memory_gb:g}g", *mounts]
    for key, value in sorted(passed.items()):
        argv += ["-e", f"{key}={value}"]
    return argv + [IMAGE, *container_args]


def main(argv: list[str] | None = None) -> int:
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--docker"]
    if shutil.which("docker") is None:
        print("montage-ai: error: --docker needs Docker (https://docs.docker.com/engine/install/)", file=sys.stderr)
        return 2
    cmd = docker_argv(args, dict(os.environ), Path.cwd(), Path.home(), os.getuid(), os.getgid())
    if os.environ.get("MONTAGE_DOCKER_DRY_RUN"):
        print(" ".join(cmd))
        return 0
    os.execvp(cmd[0], cmd)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
