"""Damaged and hostile timelines through `montage-ai render`: one line naming the file and the
reason, quickly, never a traceback, a crash of the process or a render that never ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostile import assert_clean, cli, sha256_tree, small_media

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A real montage.otio to damage, and its sources."""
    root = tmp_path_factory.mktemp("timelines")
    clips, music = small_media(root, clips=1, music_s=8)
    out = root / "out"
    assert_clean(cli("run", "--clips", clips, "--music", music, "--out", out, "--duration", "4",
                     "--resolution", "360p", cache=root / "cache"), ok=True, written=(out,))
    return out / "montage.otio", [clips, music]


def _edited(made, tmp_path: Path, change) -> Path:
    src, _ = made
    data = json.loads(src.read_text())
    change(data)
    path = tmp_path / "edited.otio"
    path.write_text(json.dumps(data))
    return path


def _render_meta(data: dict) -> dict:
    return data["metadata"]["montage_ai"]["render"]


def _first_clip(data: dict) -> dict:
    return next(c for c in data["tracks"]["children"][0]["children"] if c["OTIO_SCHEMA"].startswith("Clip"))


@pytest.mark.parametrize("name, change, needles", [
    ("width -1", lambda d: _render_meta(d).update(width=-1), ("width", "-1")),
    ("odd width", lambda d: _render_meta(d).update(width=641), ("width", "641", "even")),
    ("huge width", lambda d: _render_meta(d).update(width=100000), ("width", "100000")),
    ("rate numerator 0", lambda d: _render_meta(d).update(fps_num=0), ("fps_num", "0")),
    ("rate 1000 fps", lambda d: _render_meta(d).update(fps_num=1000, fps_den=1), ("1000/1", "outside")),
    ("bad preset", lambda d: _render_meta(d).update(preset="slow; rm -rf /"), ("preset",)),
    ("10^9 frames", lambda d: _first_clip(d)["source_range"]["duration"].update(value=1e9), ("hours long", "at most")),
])
def test_damaged_render_settings_and_lengths(made, tmp_path, name, change, needles):
    path = _edited(made, tmp_path, change)
    result = cli("render", path, "-o", tmp_path / "out.mp4", cache=tmp_path / "cache")
    assert_clean(result, needles=("edited.otio", *needles),
                 written=(tmp_path,), sources=sha256_tree(*made[1]), max_seconds=60)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("name, text, needles", [
    ("deep nesting", '{"OTIO_SCHEMA": "Timeline.1", "metadata": {"x": ' + "[" * 200000 + "]" * 200000 + "}}",
     ("nested more than",)),
    ("not JSON", "this is not a timeline", ("edited.otio",)),
    ("a JSON list", "[1, 2, 3]", ("edited.otio",)),
    ("empty file", "", ("edited.otio",)),
    ("binary", "\x00\x01\x02\xff" * 100, ("edited.otio",)),
])
def test_garbage_timeline_files(tmp_path, name, text, needles):
    path = tmp_path / "edited.otio"
    path.write_text(text, errors="surrogateescape") if "\xff" not in text else path.write_bytes(text.encode("latin-1"))
    result = cli("render", path, "-o", tmp_path / "out.mp4", cache=tmp_path / "cache")
    assert result.returncode not in (0, -11, 139), "the process must not crash"
    assert_clean(result, needles=needles, written=(tmp_path,), max_seconds=60)


def test_render_search_from_the_root_is_bounded(made, tmp_path):
    """`--search /` must not walk into /proc or fail on unreadable folders: it finds what it
    can within its bounds, then names what is missing."""
    path = _edited(made, tmp_path, lambda d: _first_clip(d)["media_references"]["DEFAULT_MEDIA"].update(
        target_url=str(tmp_path / "moved" / "nowhere-to-be-found-3f9a.mp4")))
    for root in ("/", "/proc"):
        result = cli("render", path, "-o", tmp_path / "out.mp4", "--search", root, cache=tmp_path / "cache")
        assert_clean(result, needles=("nowhere-to-be-found-3f9a.mp4", "not found"), written=(tmp_path,),
                     sources=sha256_tree(*made[1]), max_seconds=150)
    missing_dir = cli("render", path, "-o", tmp_path / "out.mp4", "--search", tmp_path / "no-such-dir",
                      cache=tmp_path / "cache")
    assert_clean(missing_dir, needles=("--search", "no-such-dir", "not found"), written=(tmp_path,))
