#!/usr/bin/env python3
"""Build the Montage AI Blender extension zip, with the OpenTimelineIO wheels it needs.

Blender ships no OpenTimelineIO, and an extension may only bring Python packages as wheels
listed in its manifest. This script stages a copy of `montage_ai/`, downloads the
opentimelineio wheels for the chosen Blender Python and platforms (pip, binary wheels only),
writes the manifest's `wheels` and `platforms` lists and zips it:

    python nle_addons/blender/build_extension.py                 # this machine's platform, Python 3.11
    python nle_addons/blender/build_extension.py --platforms all # Linux, macOS (arm64), Windows
    python nle_addons/blender/build_extension.py --python 3.13   # Blender 5.1+ (Python 3.13)

Blender 4.2-5.0 embed Python 3.11 and 5.1 embeds 3.13; a zip is made for one of them and its
manifest bounds the Blender versions accordingly. With `--blender-ext PATH` (Blender's own
`blender_ext.py`, shipped with Blender and with the `bpy` module) the zip is built and checked
by Blender's builder; otherwise it is zipped here with the same layout.
Standard library only (and pip, to download wheels).
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "montage_ai"
ROOT = HERE.parents[1]
OTIO_VERSION = "0.18.1"          # inside the engine's range (>=0.17,<0.19)

# Blender platform name -> pip --platform tags (the first wheel found wins)
PLATFORM_TAGS: dict[str, list[str]] = {
    "linux-x64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux-arm64": ["manylinux_2_17_aarch64", "manylinux2014_aarch64"],
    "macos-arm64": ["macosx_11_0_arm64"],
    "macos-x64": ["macosx_10_15_x86_64", "macosx_10_9_x86_64"],
    "windows-x64": ["win_amd64"],
}
ALL_PLATFORMS = ["linux-x64", "linux-arm64", "macos-arm64", "windows-x64", "macos-x64"]
# Blender versions per embedded Python: (blender_version_min, blender_version_max or "")
BLENDER_RANGE = {"3.11": ("4.2.0", "5.1.0"), "3.13": ("5.1.0", "")}


def current_platform() -> str:
    machine = platform.machine().lower()
    arch = "arm64" if machine in {"arm64", "aarch64"} else "x64"
    system = {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(platform.system(), "linux")
    return f"{system}-{arch}"


def download_wheel(python: str, plat: str, cache: Path) -> Path | None:
    """The opentimelineio wheel for one Python and platform, from the cache or PyPI."""
    cache.mkdir(parents=True, exist_ok=True)
    tag = "cp" + python.replace(".", "")

    def cached() -> Path | None:
        for whl in sorted(cache.glob(f"opentimelineio-{OTIO_VERSION}-{tag}-*.whl")):
            if any(t in whl.name for t in PLATFORM_TAGS[plat]):
                return whl
        return None

    if (hit := cached()) is not None:
        return hit
    args = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--python-version", python, "--implementation", "cp", "-d", str(cache),
            f"opentimelineio=={OTIO_VERSION}"]
    for t in PLATFORM_TAGS[plat]:
        args += ["--platform", t]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"build_extension: no opentimelineio {OTIO_VERSION} wheel for Python {python} on {plat}; "
              "that platform is left out", file=sys.stderr)
        return None
    return cached()


def write_manifest(stage: Path, wheels: list[str], platforms: list[str], python: str) -> None:
    """The in-tree manifest plus wheels, platforms and the Blender range of this Python."""
    text = (SOURCE / "blender_manifest.toml").read_text(encoding="utf-8")
    lo, hi = BLENDER_RANGE[python]
    text = re.sub(r'^blender_version_min = ".*"$', f'blender_version_min = "{lo}"', text, flags=re.MULTILINE)
    extra = []
    if hi:
        extra.append(f'blender_version_max = "{hi}"')
    if platforms:
        extra.append("platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]")
    if wheels:
        extra.append("wheels = [\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]")
    # top-level keys must come before the first [table]
    head, sep, tail = text.partition("\n[")
    text = head.rstrip() + "\n" + "\n".join(extra) + "\n\n" + (sep.lstrip("\n") + tail if sep else "")
    (stage / "blender_manifest.toml").write_text(text, encoding="utf-8")


def zip_dir(stage: Path, out: Path) -> None:
    """The extension layout: blender_manifest.toml at the zip's root."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(stage).as_posix())
    tmp.replace(out)


def build(out_dir: Path, python: str = "3.11", platforms: list[str] | None = None,
          cache: Path | None = None, blender_ext: Path | None = None, with_wheels: bool = True) -> Path:
    """Stage, fetch wheels, write the manifest and zip. Returns the zip's path."""
    platforms = platforms or [current_platform()]
    cache = cache or ROOT / ".cache" / "blender-wheels"
    stage = out_dir / f"stage-py{python.replace('.', '')}"
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(SOURCE, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "wheels", ".*"))
    wheels, covered = [], []
    if with_wheels:
        (stage / "wheels").mkdir()
        for plat in platforms:
            whl = download_wheel(python, plat, cache)
            if whl is not None:
                shutil.copy2(whl, stage / "wheels" / whl.name)
                wheels.append(whl.name)
                covered.append(plat)
        if not wheels:
            raise SystemExit(f"build_extension: no opentimelineio wheel could be fetched for {platforms}")
    write_manifest(stage, wheels, covered, python)
    version = re.search(r'^version = "(.*)"$', (stage / "blender_manifest.toml").read_text(), re.MULTILINE)
    out = out_dir / f"montage_ai-{version.group(1) if version else '0'}-py{python.replace('.', '')}.zip"
    if blender_ext is not None:
        proc = subprocess.run([sys.executable, str(blender_ext), "build", "--source-dir", str(stage),
                               "--output-filepath", str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"build_extension: Blender's builder rejected the package:\n{proc.stdout}{proc.stderr}")
    else:
        zip_dir(stage, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "dist", help="output folder (default nle_addons/blender/dist)")
    ap.add_argument("--python", default="3.11", choices=sorted(BLENDER_RANGE),
                    help="Blender's Python: 3.11 for Blender 4.2-5.0, 3.13 for 5.1+")
    ap.add_argument("--platforms", default="current",
                    help="comma list of " + ", ".join(PLATFORM_TAGS) + "; 'current' or 'all'")
    ap.add_argument("--wheel-cache", type=Path, help="where downloaded wheels are kept (default .cache/blender-wheels)")
    ap.add_argument("--blender-ext", type=Path, help="Blender's blender_ext.py, to build and validate with it")
    ap.add_argument("--no-wheels", action="store_true", help="no OpenTimelineIO inside (install it separately)")
    args = ap.parse_args(argv)
    plats = {"current": [current_platform()], "all": ALL_PLATFORMS}.get(args.platforms) or \
        [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = [p for p in plats if p not in PLATFORM_TAGS]
    if unknown:
        ap.error(f"unknown platform(s) {unknown}")
    out = build(args.out.resolve(), args.python, plats, args.wheel_cache, args.blender_ext, not args.no_wheels)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
