"""The lists users choose from (styles, aspects, resolutions, export formats) have one definition,
engine/montage_ai/choices.json, and everyone who shows or checks them reads it: the CLI, the
settings, the Blender panel and the Kdenlive job (the last two through the copies shipped beside
them, which must be the same bytes)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
import typing
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
from montage_ai import choices as ch
from montage_ai.cli import build_parser
from montage_ai.direct.presets import available_styles
from montage_ai.settings import Aspect, Resolution, Settings
from montage_otio.registry import FORMATS

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> types.ModuleType:
    loader = SourceFileLoader(name, str(path))
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("copy", ch.COPIES)
def test_the_add_ons_ship_the_same_definition(copy):
    """Regenerate with `python -m montage_ai.choices --write-copies` after editing choices.json."""
    assert (ROOT / copy).read_bytes() == ch.SOURCE.read_bytes()


def test_styles_are_the_presets_and_formats_the_registry():
    assert sorted(ch.STYLES) == available_styles()
    assert [(c.value, c.suffix) for c in ch.CHOICES.export_formats] == [(f.name, f.suffix) for f in FORMATS.values()]
    assert ch.CHOICES.defaults["style"] in ch.STYLES
    assert ch.CHOICES.defaults["aspect"] in ch.ASPECTS and ch.CHOICES.defaults["resolution"] in ch.RESOLUTIONS


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_the_cli_and_the_settings_read_it():
    run = _subparser("run")
    options = {a.dest: a for a in run._actions}
    assert tuple(options["aspect"].choices) == ch.ASPECTS
    assert tuple(options["resolution"].choices) == ch.RESOLUTIONS
    assert ",".join(ch.EXPORT_FORMATS) in options["export"].help
    assert all(s in options["style"].help for s in ch.STYLES)
    assert ",".join(ch.EXPORT_FORMATS) in {a.dest: a for a in _subparser("export")._actions}["to"].help
    assert typing.get_args(Aspect) == ch.ASPECTS and typing.get_args(Resolution) == ch.RESOLUTIONS
    for resolution in ch.RESOLUTIONS:
        w, h = Settings(resolution=resolution, aspect="9:16").output_size()
        assert w == ch.SHORT_SIDE[resolution] and h > w


def _fake_bpy() -> types.ModuleType:
    """Enough of bpy to import the panel's properties outside Blender: each property records
    its arguments."""
    bpy = types.ModuleType("bpy")
    props = types.ModuleType("bpy.props")
    for name in ("BoolProperty", "EnumProperty", "FloatProperty", "StringProperty", "PointerProperty"):
        setattr(props, name, lambda _n=name, **kw: (_n, kw))
    bpy.props = props
    bpy.types = types.SimpleNamespace(PropertyGroup=object, Scene=types.SimpleNamespace())
    bpy.utils = types.SimpleNamespace(register_class=lambda c: None, unregister_class=lambda c: None)
    return bpy


def test_the_blender_panel_reads_it(monkeypatch):
    bpy = _fake_bpy()
    monkeypatch.setitem(sys.modules, "bpy", bpy)
    monkeypatch.setitem(sys.modules, "bpy.props", bpy.props)
    props = _load("montage_ai_blender_props", ROOT / "nle_addons" / "blender" / "montage_ai" / "props.py")
    fields = {k: eval(v, vars(props)) if isinstance(v, str) else v   # the module's own annotations
              for k, v in props.MontageAISettings.__annotations__.items()}
    for field, kind in (("style", "styles"), ("aspect", "aspects"), ("resolution", "resolutions")):
        name, kw = fields[field]
        assert name == "EnumProperty"
        assert [item[0] for item in kw["items"]] == [c.value for c in getattr(ch.CHOICES, kind)]
        assert kw["default"] == ch.CHOICES.defaults[field]
    assert [item[2] for item in fields["aspect"][1]["items"]] == [c.label for c in ch.CHOICES.aspects]


def test_the_kdenlive_job_reads_it():
    job = _load("kdenlive_job_choices", ROOT / "nle_addons" / "kdenlive" / "montage-ai-kdenlive-job")
    assert job.ASPECTS == set(ch.ASPECTS) and job.RESOLUTIONS == set(ch.RESOLUTIONS)
    rc = (ROOT / "nle_addons" / "kdenlive" / "clipjobsettings.montage-ai.rc").read_text()
    presets = [p for line in rc.splitlines() if line.startswith("{") and "=" in line
               for p in ([] if "Param2List" not in rc.split(line)[0].rsplit("[", 1)[-1] else
                         line.split("=", 1)[1].split("  "))]
    assert presets, "no preset list found"
    for preset in presets:
        parsed = job.parse_preset(preset)
        assert parsed["style"] in ch.STYLES, preset
        assert parsed.get("aspect", ch.CHOICES.defaults["aspect"]) in ch.ASPECTS
