"""Turn `./montage-ai.sh --docker run ...` into a `docker run` argument list.

Host paths in the flags become volume mounts (/data/input, /data/music, /data/output, a cache
volume) and the flags are rewritten to the container's paths; the deployment settings present
in the environment or `.env` are passed through, and CGPU_HOST defaults to the host gateway so
the container reaches `cgpu serve` on the host. `cgpu run` (cloud upscaling) runs inside the
container with the host's cgpu login mounted from ~/.config/cgpu.

`render` and `export` mount the timeline's folder, the media an .otio names and every
--search folder at the same absolute paths inside the container (read-only, except the folder
written), so the timeline's paths mean the same thing on both sides. `demo` writes into
./demo on the host.

Standard library only: the launcher runs this with the host's python3, before any virtualenv.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

IMAGE = os.environ.get("MONTAGE_DOCKER_IMAGE", "montage-ai:latest")
CACHE_VOLUME = "montage-ai-cache"    # the same named volume docker-compose.yml uses
# Every variable the engine's settings read (tests/test_deploy.py checks this against the
# settings model), except the paths, which become mounts.
PASS_THROUGH = ["CGPU_ENABLED", "CGPU_HOST", "CGPU_PORT", "CGPU_MODEL", "CGPU_GPU_ENABLED", "CGPU_TIMEOUT",
                "MEMORY_LIMIT_GB", "MAX_PARALLEL_JOBS", "RAY_ADDRESS", "OLLAMA_HOST", "OLLAMA_MODEL", "LLM_TIMEOUT", "LLM_BACKOFF",
                "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "MONTAGE_STYLE", "MONTAGE_DURATION",
                "MONTAGE_MUSIC_START", "MONTAGE_ASPECT", "MONTAGE_RESOLUTION", "MONTAGE_FPS", "MONTAGE_FIT",
                "MONTAGE_SEED", "MONTAGE_PROMPT", "MONTAGE_VARIANTS", "MONTAGE_UPSCALE", "MONTAGE_UPSCALE_MODEL",
                "MONTAGE_UPSCALE_SCALE", "MONTAGE_STRICT_CLOUD", "MONTAGE_PREVIEW", "MONTAGE_EXPORT", "MONTAGE_EDL_SOURCE_TIMECODE",
                "MONTAGE_TITLES", "MONTAGE_KEEP_CLIP_AUDIO", "MONTAGE_CRF", "MONTAGE_X264_PRESET", "MONTAGE_FORCE"]
MAPPED = ["MONTAGE_CLIPS", "MONTAGE_MUSIC", "MONTAGE_OUT", "MONTAGE_CACHE_DIR"]
HOST_ONLY = ["CGPU_BIND"]             # how cgpu-start listens on the host; meaningless inside


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


def host_cgpu_state(env: dict[str, str], home: Path) -> str:
    """"running ADDR:PORT" when the `cgpu serve` that cgpu-start started on this host is alive,
    else "stopped" (read from its state file; the container cannot see the host's processes)."""
    cache = Path(env.get("MONTAGE_CACHE_DIR") or home / ".cache" / "montage-ai")
    try:
        meta = json.loads((cache / "cgpu" / "serve.json").read_text(encoding="utf-8"))
        pid = int(meta["pid"])
        os.kill(pid, 0)
        if b"cgpu" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return "stopped"
        return f"running {meta['host']}:{int(meta['port'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "stopped"


def _same_path(path: Path, writable: bool = False) -> list[str]:
    """Mount a host folder at the same absolute path in the container."""
    return ["-v", f"{path}:{path}" + ("" if writable else ":ro")]


def _otio_media_folders(timeline: Path) -> list[Path]:
    """Folders of the media an .otio names (other formats: use --search)."""
    if timeline.suffix.lower() != ".otio":
        return []
    try:
        text = timeline.read_text(encoding="utf-8")
        if len(text) > 64 * 2**20:
            return []
        urls = [m.get("target_url") for m in _walk(json.loads(text)) if isinstance(m, dict)]
    except (OSError, ValueError, RecursionError):
        return []
    folders = set()
    for url in filter(None, urls):
        path = Path(unquote(urlparse(url).path) if str(url).startswith("file:") else str(url))
        if not path.is_absolute():
            path = timeline.parent / path
        if path.parent.is_dir():
            folders.add(path.parent.resolve())
    return sorted(folders)


def _walk(value: object):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _timeline_mounts(rest: list[str], cwd: Path) -> tuple[list[str], list[str]]:
    """`render`/`export`: mounts for the timeline, its media, --search folders and the output,
    each at its own path (one mount per folder, writable where something is written); the
    arguments are made absolute."""
    out, rest = _take(rest, "-o")
    out_long, rest = _take(rest, "--output")
    out = out or out_long
    out_dir, rest = _take(rest, "--out-dir")
    searches = []
    while "--search" in rest:
        value, rest = _take_one(rest, "--search")
        searches.append((cwd / value).resolve())
    args = list(rest)
    folders: dict[Path, bool] = {}          # folder -> written into
    timeline = next((a for a in args[1:] if not a.startswith("-")), None)
    if timeline is not None:
        t = (cwd / timeline).resolve()
        args[args.index(timeline)] = str(t)
        folders[t.parent] = not (out or out_dir)      # the default output goes beside it
        for folder in _otio_media_folders(t):
            folders.setdefault(folder, False)
    for folder in searches:
        folders.setdefault(folder, False)
        args += ["--search", str(folder)]
    for flag, value, is_dir in (("-o", out, False), ("--out-dir", out_dir, True)):
        if value:
            target = (cwd / value).resolve()
            folder = target if is_dir else target.parent
            folder.mkdir(parents=True, exist_ok=True)
            folders[folder] = True
            args += [flag, str(target)]
    mounts = [m for folder, written in folders.items() for m in _same_path(folder, writable=written)]
    return mounts, args


def _take_one(args: list[str], flag: str) -> tuple[str | None, list[str]]:
    """Remove the first `flag VALUE` only (a flag that may repeat)."""
    i = args.index(flag)
    value = args[i + 1] if i + 1 < len(args) else None
    return value, args[:i] + args[i + 2:]


def docker_argv(args: list[str], env: dict[str, str], cwd: Path, home: Path, uid: int, gid: int) -> list[str]:
    """The full `docker run` argv for montage-ai `args` given on the host."""
    env = {**read_dotenv(cwd / ".env"), **env}   # environment wins over .env, as in the engine
    mounts: list[str] = []
    rest = list(args)
    command = rest[0] if rest else ""
    if command in ("render", "export"):
        mounts, container_args = _timeline_mounts(rest, cwd)
    else:
        clips, rest = _take(rest, "--clips")
        music, rest = _take(rest, "--music")
        out, rest = _take(rest, "--out")
        work, rest = _take(rest, "--work")
        container_args = list(rest)
        if clips:
            mounts += ["-v", f"{(cwd / clips).resolve()}:/data/input:ro"]
            container_args += ["--clips", "/data/input"]
        if music:
            m = (cwd / music).resolve()
            mounts += ["-v", f"{m.parent}:/data/music:ro"]
            container_args += ["--music", f"/data/music/{m.name}"]
        out_dir = (cwd / (work or "demo" if command == "demo" else out or "output")).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)    # created by the user, not by Docker as root
        mounts += ["-v", f"{out_dir}:/data/output"]
        if command in ("run", "analyze"):
            container_args += ["--out", "/data/output"]
        elif command == "demo":
            container_args += ["--work", "/data/output"]
    mounts += ["-v", f"{CACHE_VOLUME}:/data/cache"]
    cgpu_config = Path(env.get("CGPU_CONFIG_DIR", home / ".config" / "cgpu"))
    if cgpu_config.is_dir():
        mounts += ["-v", f"{cgpu_config}:/home/montage/.config/cgpu"]
    # CGPU_HOST goes in as the user set it: the image's entry point (scripts/docker-entrypoint.sh)
    # is the one place that reads "this machine" as the host, for compose and for --docker alike
    passed = {k: env[k] for k in PASS_THROUGH if k in env}
    passed["MONTAGE_HOST_CGPU"] = host_cgpu_state(env, home)   # lets doctor in the container say why
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
        print(shlex.join(cmd))       # pasteable, whatever the paths hold
        return 0
    os.execvp(cmd[0], cmd)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
