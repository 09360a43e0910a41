"""Generate `.env.example` from the Settings model, so the documented settings and the ones
the engine reads cannot drift apart (a test compares the committed file with this output)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..settings import Settings

HEADER = """\
# Montage AI settings. Copy to .env and uncomment what you change.
# Precedence: command-line flags > environment variables > .env > these defaults.
# Generated from engine/montage_ai/settings.py by `montage-ai env-example`; do not edit by hand.
"""

# Per-user defaults that are not meaningful to write literally
_DISPLAY_DEFAULT = {"MONTAGE_CACHE_DIR": "~/.cache/montage-ai"}


def env_names() -> list[str]:
    """Every environment variable the settings model reads, in declaration order."""
    names = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names += list(alias.choices) if hasattr(alias, "choices") else [str(alias)]
    return names


def _value(name: str, default: object) -> str:
    if name in _DISPLAY_DEFAULT:
        return _DISPLAY_DEFAULT[name]
    if default is None:
        return ""
    if isinstance(default, bool):
        return "1" if default else "0"
    return str(default)


def render_env_example() -> str:
    lines = [HEADER]
    for field in Settings.model_fields.values():
        name = field.validation_alias.choices[0]  # type: ignore[union-attr]
        lines.append(f"# {field.description}")
        lines.append(f"# {name}={_value(name, field.default)}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    text = render_env_example()
    args = argv if argv is not None else sys.argv[1:]
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
