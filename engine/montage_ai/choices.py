"""The lists users choose from (styles, aspects, resolutions, export formats, EDL source
timecode rates), defined once.

`choices.json` beside this module is the definition. The CLI and the settings read it here; the
Blender panel and the Kdenlive job cannot import the engine (they run it as a program), so each
reads a copy shipped beside it, written by `python -m montage_ai.choices --write-copies` and
checked byte for byte by tests/test_choices.py. That the styles match the style presets and the
export formats match montage_otio's registry is checked there too.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "choices.json"
#: where the copies live in a source checkout, relative to the project root
COPIES = ("nle_addons/blender/montage_ai/choices.json", "nle_addons/kdenlive/choices.json")


class Choice(BaseModel):
    value: str
    label: str = ""
    short_side: int | None = None    # resolutions
    suffix: str | None = None        # export formats


class Choices(BaseModel):
    what: str = ""
    styles: list[Choice]
    aspects: list[Choice]
    resolutions: list[Choice]
    export_formats: list[Choice]
    edl_source_timecodes: list[Choice]
    titles: list[Choice]
    defaults: dict[str, str]

    def values(self, kind: str) -> tuple[str, ...]:
        return tuple(c.value for c in getattr(self, kind))


@cache
def choices() -> Choices:
    return Choices.model_validate_json(SOURCE.read_text(encoding="utf-8"))


CHOICES = choices()
ASPECTS = CHOICES.values("aspects")
RESOLUTIONS = CHOICES.values("resolutions")
STYLES = CHOICES.values("styles")
EXPORT_FORMATS = CHOICES.values("export_formats")
EDL_SOURCE_TIMECODES = CHOICES.values("edl_source_timecodes")
TITLES = CHOICES.values("titles")
SHORT_SIDE = {c.value: int(c.short_side or 0) for c in CHOICES.resolutions}


def write_copies(root: Path) -> list[Path]:
    """Copy the definition to where the Blender add-on and the Kdenlive job read it."""
    text = SOURCE.read_text(encoding="utf-8")
    out = []
    for rel in COPIES:
        path = root / rel
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m montage_ai.choices", description=__doc__.splitlines()[0])
    ap.add_argument("--write-copies", action="store_true", help="write the add-ons' copies (in a checkout)")
    args = ap.parse_args(argv)
    if args.write_copies:
        for path in write_copies(HERE.parents[1]):
            print(path)
    else:
        print(json.dumps(CHOICES.model_dump(exclude_none=True), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
