#!/usr/bin/env python3
"""Install (or remove) the Montage AI clip jobs in Kdenlive's configuration. Stdlib only.

Kdenlive keeps custom clip jobs in `clipjobsettings.rc` (KConfig format) in its application
data folder: `$XDG_DATA_HOME/kdenlive` (usually ~/.local/share/kdenlive) on Linux,
~/Library/Application Support/kdenlive on macOS, %LOCALAPPDATA%/kdenlive on Windows, and
~/.var/app/org.kde.kdenlive/data/kdenlive for the Flatpak. This script merges the entries of
`clipjobsettings.montage-ai.rc` into that file, keeping every other job, comment and line as it
was. Running it again changes nothing; any change is preceded by a timestamped backup; `--uninstall`
removes exactly our entries (and the file, if nothing else is left in it).

    python3 nle_addons/kdenlive/install.py [--config-dir DIR] [--flatpak] [--engine PATH] [--uninstall]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "clipjobsettings.montage-ai.rc"
WRAPPER = HERE / "montage-ai-kdenlive-job"
RC_NAME = "clipjobsettings.rc"
FLATPAK_DIR = Path.home() / ".var" / "app" / "org.kde.kdenlive" / "data" / "kdenlive"
_GROUP = re.compile(r"^\s*\[([^\]]*)\]")


def default_config_dir() -> Path:
    """QStandardPaths::AppDataLocation for Kdenlive on this system."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "kdenlive"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "kdenlive"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "kdenlive"


def kconfig_escape(value: str) -> str:
    """KConfig value escaping: backslashes and control characters; a leading space as \\s."""
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return "\\s" + value[1:] if value.startswith(" ") else value


def parse(text: str) -> list[tuple[str, list[str]]]:
    """[(group name, its lines)] in file order; lines before any group belong to group ''."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        m = _GROUP.match(line)
        if m:
            sections.append((m.group(1), []))
        else:
            sections[-1][1].append(line)
    return sections


def entries(text: str) -> dict[str, dict[str, str]]:
    """{group: {key: raw value}} of a KConfig file (comments and blank lines skipped)."""
    out: dict[str, dict[str, str]] = {}
    for group, lines in parse(text):
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                out.setdefault(group, {})[key.strip()] = value.strip()
    return out


def render(sections: list[tuple[str, list[str]]], new: set[str] = frozenset()) -> str:
    """Back to text: existing lines exactly as they were; a blank line before groups we added."""
    out: list[str] = []
    for group, lines in sections:
        if group:
            if group in new and out and out[-1].strip():
                out.append("")
            out.append(f"[{group}]")
        out.extend(lines)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _key_of(line: str) -> str | None:
    if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
        return None
    return line.partition("=")[0].strip()


def merge(text: str, ours: dict[str, dict[str, str]], remove: bool = False) -> str:
    """`text` with our keys set (or removed) in each group; everything else untouched."""
    sections = parse(text)
    ids = {k for values in ours.values() for k in values}
    new: set[str] = set()
    for group, values in ours.items():
        found = [s for s in sections if s[0] == group]
        if not found:
            if remove:
                continue
            sections.append((group, []))
            new.add(group)
            found = [sections[-1]]
        lines = found[0][1]
        kept = [l for l in lines if _key_of(l) not in ids]
        blanks = 0                      # our lines go before the group's trailing blank lines
        while blanks < len(kept) and not kept[len(kept) - 1 - blanks].strip():
            blanks += 1
        body, tail = kept[: len(kept) - blanks], kept[len(kept) - blanks:]
        if not remove:
            body += [f"{key}={kconfig_escape(value)}" for key, value in values.items()]
        lines[:] = body + tail
    if remove:   # drop groups we emptied (no keys left)
        sections = [s for s in sections if not s[0] or s[0] not in ours or any(_key_of(l) for l in s[1])]
    return render(sections, new)


def our_entries(wrapper: Path, engine: str = "") -> dict[str, dict[str, str]]:
    """The template's groups with the wrapper path (and an --engine flag) filled in."""
    if engine and any(c.isspace() for c in engine):
        raise SystemExit("install.py: --engine must be a path without spaces (Kdenlive splits the job's "
                         "parameters on spaces); put montage-ai on PATH or set MONTAGE_AI_ENGINE instead")
    groups = entries(TEMPLATE.read_text(encoding="utf-8"))
    for key, value in groups["Binary"].items():
        groups["Binary"][key] = value.replace("@WRAPPER@", str(wrapper))
    if engine:
        for key, value in groups["Parameters"].items():
            groups["Parameters"][key] = f"{value} --engine {engine}"
    return groups


def apply(config_dir: Path, uninstall: bool = False, wrapper: Path = WRAPPER, engine: str = "") -> str:
    """Install or uninstall; returns what happened in one line."""
    rc = config_dir / RC_NAME
    before = rc.read_text(encoding="utf-8") if rc.is_file() else ""
    ours = our_entries(wrapper.resolve(), engine)
    after = merge(before, ours, remove=uninstall)
    if uninstall and not any(v for v in entries(after).values()):
        after = ""
    if after == before:
        return f"{rc}: already {'clean' if uninstall else 'up to date'}"
    if before:
        stem = f"{RC_NAME}.montage-ai-backup-{time.strftime('%Y%m%d-%H%M%S')}"
        backup, n = rc.with_name(stem), 1
        while backup.exists():
            backup, n = rc.with_name(f"{stem}-{n}"), n + 1
        shutil.copy2(rc, backup)
        note = f" (backup: {backup.name})"
    else:
        note = ""
    if not after:
        rc.unlink()
        return f"{rc}: removed (it held only the Montage AI jobs){note}"
    config_dir.mkdir(parents=True, exist_ok=True)
    tmp = rc.with_name(f".{RC_NAME}.partial")
    tmp.write_text(after, encoding="utf-8")
    os.replace(tmp, rc)
    if not uninstall and os.name != "nt":
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return f"{rc}: {'removed the Montage AI jobs' if uninstall else 'installed the Montage AI jobs'}{note}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Install the Montage AI clip jobs into Kdenlive")
    ap.add_argument("--config-dir", type=Path, help=f"Kdenlive's data folder (default {default_config_dir()})")
    ap.add_argument("--flatpak", action="store_true", help=f"use the Flatpak's folder ({FLATPAK_DIR})")
    ap.add_argument("--engine", default="", help="montage-ai or montage-ai.sh to run (a path without spaces)")
    ap.add_argument("--uninstall", action="store_true", help="remove the Montage AI jobs")
    args = ap.parse_args(argv)
    config_dir = args.config_dir or (FLATPAK_DIR if args.flatpak else default_config_dir())
    print(apply(config_dir, args.uninstall, WRAPPER, args.engine))
    if not args.config_dir and not args.flatpak and FLATPAK_DIR.parent.is_dir():
        print(f"note: a Flatpak Kdenlive was found; for it run again with --flatpak ({FLATPAK_DIR})")
    if not args.uninstall:
        print("Restart Kdenlive; then right-click a clip in the Project Bin > Clip Jobs > Montage AI: ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
