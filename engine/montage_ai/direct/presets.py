"""Named style presets, stored as TOML data files in `styles/`.

A preset is a partial EditPlan; loading validates it, so a typo in a preset is an error,
not a silently ignored key.
"""

from __future__ import annotations

import tomllib
from importlib import resources

from ..errors import MontageError
from .plan import EditPlan


def _style_files() -> dict[str, resources.abc.Traversable]:
    folder = resources.files(__package__) / "styles"
    return {f.name[: -len(".toml")]: f for f in folder.iterdir() if f.name.endswith(".toml")}


def available_styles() -> list[str]:
    return sorted(_style_files())


def load_style(name: str) -> EditPlan:
    """The preset `name` as an EditPlan; raises MontageError listing the known names."""
    files = _style_files()
    if name not in files:
        raise MontageError(f"unknown style {name!r}; choose one of: {', '.join(sorted(files))}")
    data = tomllib.loads(files[name].read_text(encoding="utf-8"))
    try:
        return EditPlan(style=name, director=f"offline:{name}", **data)
    except Exception as exc:
        raise MontageError(f"style preset {name!r} is invalid: {exc}") from exc
