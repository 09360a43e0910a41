"""report.html: one self-contained page to review a montage without opening an editor.

The page needs no network: CSS and JS are inline, the chart and thumbnails are data: URIs, and a
Content-Security-Policy (`default-src 'none'`, scripts and styles only by this page's nonce)
stops the browser from fetching anything else, even if some text slipped through unescaped.
All text (file names, the brief, the LLM's reasons) is HTML-escaped; numbers are formatted by
us. The montage is referenced by its relative path (`montage.mp4` beside the page) by default:
a montage can be hundreds of megabytes, and base64 inside HTML is a third larger, loads slowly
and duplicates the file on disk. `embed_video=True` makes a page to mail around, and falls back
to the link above `max_embed_bytes`.

Clicking a segment (or a point on the chart) seeks the player to the segment's first frame:
`record_start_frame / fps` plus a small epsilon (a quarter frame at most), because a time exactly
on a frame boundary can round to the frame before.
"""

from __future__ import annotations

import base64
import html
import io
import json
import secrets
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import quote

import opentimelineio as otio
from montage_otio.names import one_line
from PIL import Image

from .. import __version__, atomic
from ..analysis.music import MusicAnalysis
from ..timeline.model import META_KEY
from .chart import Chart, make_timeline_chart, source_colors
from .storyboard import SegmentView, Storyboard, make_storyboard, timecode, timeline_fps, total_frames

REPORT_NAME = "report.html"
STORYBOARD_NAME = "storyboard.png"
CHART_NAME = "timeline.png"
SECRET_WORDS = ("key", "token", "secret", "password")


def e(value: object) -> str:
    """Escape any text for HTML content and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def shown_name(value: object) -> str:
    """A file name (or a message naming one) as one visible line: HTML would show a newline in
    it as a space, and a byte that is not UTF-8 could not be written at all."""
    return one_line(str(value))


def data_uri(img: Image.Image, fmt: str = "JPEG", quality: int = 82) -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def file_data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def redact(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings to show, without anything that looks like a credential."""
    return {k: ("(set)" if v else "") if any(w in k.lower() for w in SECRET_WORDS) else v
            for k, v in settings.items()}


# --- the entry points -------------------------------------------------------------------------


def make_report(out_dir: Path, timeline: otio.schema.Timeline, plan_json: dict[str, Any], summary: dict[str, Any], *,
                music: MusicAnalysis | None = None, video_name: str = "montage.mp4",
                settings: Mapping[str, Any] | None = None, embed_video: bool = False,
                max_embed_bytes: int = 32 * 2**20, storyboard: Storyboard | None = None,
                chart: Chart | None = None, thumb_width: int = 240) -> Path:
    """Write storyboard.png, timeline.png (unless given) and report.html into `out_dir`.

    `plan_json` is plan.json's content, `summary` a RunSummary as JSON (`{}` when unknown),
    `settings` what to show of the run's settings (credentials are redacted anyway)."""
    out_dir = Path(out_dir)
    video = out_dir / video_name
    if storyboard is None:
        storyboard = make_storyboard(timeline, out_dir / STORYBOARD_NAME, thumb_width, video=video, base_dir=out_dir)
    if chart is None:
        chart = make_timeline_chart(timeline, music, out_dir / CHART_NAME, video=video)
    page = render_page(timeline, plan_json, summary, storyboard, chart, video_src(video, embed_video, max_embed_bytes),
                       settings=settings)
    path = out_dir / REPORT_NAME
    atomic.write_text(path, page)
    return path


def make_report_from_folder(out_dir: Path, summary: dict[str, Any] | None = None, **kw: Any) -> Path:
    """A report from an output folder alone: montage.otio, plan.json and montage.mp4."""
    out_dir = Path(out_dir)
    timeline = otio.adapters.read_from_file(str(out_dir / "montage.otio"))
    plan_path = out_dir / "plan.json"
    plan_json = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.is_file() else {}
    return make_report(out_dir, timeline, plan_json, summary or {}, **kw)


def video_src(video: Path, embed: bool, max_bytes: int) -> tuple[str, str]:
    """(src for the <video>, a note): the relative file name, or a data: URI when asked and small."""
    note = "" if video.is_file() else f"{video.name} was not found beside this page."
    if embed and video.is_file():
        size = video.stat().st_size
        if size <= max_bytes:
            return file_data_uri(video, "video/mp4"), ""
        note = f"{video.name} ({size / 2**20:.0f} MB) is linked, not embedded (limit {max_bytes / 2**20:.0f} MB)."
    return quote(video.name), note


# --- the page ----------------------------------------------------------------------------------


def render_page(timeline: otio.schema.Timeline, plan_json: dict[str, Any], summary: dict[str, Any],
                storyboard: Storyboard, chart: Chart, video: tuple[str, str],
                settings: Mapping[str, Any] | None = None) -> str:
    """The whole HTML document as a string."""
    nonce = secrets.token_urlsafe(18)
    fps = timeline_fps(timeline)
    frames = total_frames(timeline)
    meta = timeline.metadata.get(META_KEY, {}) or {}
    plan = plan_json.get("plan") or meta.get("plan") or {}
    director = plan_json.get("director") or meta.get("director_record") or summary.get("director") or {}
    colors = source_colors(storyboard.segments)
    csp = (f"default-src 'none'; img-src data:; media-src 'self' data: blob:; style-src 'nonce-{nonce}'; "
           f"script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'")
    title = f"Montage report: {timeline.name or 'montage'}"
    body = "\n".join([
        _header(timeline, meta, plan, summary, storyboard.segments, frames, fps),
        f'<section class="top">{_player(video, fps)}{_director(director, plan)}</section>',
        _chart(chart),
        _craft(plan_json.get("craft") or summary.get("craft")),
        _segments_table(storyboard, fps, colors),
        _settings(meta, summary, settings),
        _timings(summary),
        _warnings(plan_json, summary),
        f'<footer>made by montage-ai {e(__version__)} · <a href="{STORYBOARD_NAME}">storyboard.png</a> · '
        f'<a href="{CHART_NAME}">timeline.png</a></footer>',
    ])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{e(title)}</title>
<style nonce="{nonce}">{_css(colors)}</style>
</head>
<body>
<main id="report" data-fps-num="{fps.numerator}" data-fps-den="{fps.denominator}" data-frames="{frames}">
{body}
</main>
<script nonce="{nonce}">{_JS}</script>
</body>
</html>
"""


def _header(timeline: otio.schema.Timeline, meta: dict, plan: dict, summary: dict, segs: list[SegmentView],
            frames: int, fps: Fraction) -> str:
    bits = [f"{len(segs)} segments", f"{frames / float(fps):.2f} s ({frames} frames at {_fps(fps)} fps)"]
    tempo = summary.get("tempo_bpm") or meta.get("tempo_bpm")
    if tempo:
        bits.append(f"{float(tempo):.1f} BPM")
    if meta.get("style") or plan.get("style"):
        bits.append(f"style {meta.get('style') or plan.get('style')}")
    desc = plan.get("description", "")
    return (f"<header><h1>{e(timeline.name or 'Montage')}</h1><p class=\"facts\">{e(' · '.join(bits))}</p>"
            + (f"<p class=\"desc\">{e(desc)}</p>" if desc else "") + "</header>")


def _player(video: tuple[str, str], fps: Fraction) -> str:
    src, note = video
    return f"""<div class="player">
<video id="player" controls preload="auto" playsinline src="{e(src)}"></video>
<div class="readout"><output id="timecode">{timecode(0, fps)}</output> <output id="current-seg"></output></div>
<p id="video-note" class="note">{e(note)}</p>
</div>"""


def _chart(chart: Chart) -> str:
    w, h = chart.size
    return f"""<section><h2>Cuts against the music</h2>
<figure class="chart" id="chart" data-x0="{chart.plot_x0}" data-x1="{chart.plot_x1}" data-width="{w}" data-height="{h}"
 data-y0="{chart.music_box[1]}" data-y1="{chart.bar_box[3]}" title="click to seek">
<img id="chart-img" alt="music energy, beats, sections and the cuts"
 src="{file_data_uri(chart.path, 'image/png')}" width="{w}" height="{h}">
<div id="playhead"></div>
<figcaption>Sections, energy, beats (short ticks) and downbeats (tall ticks); cuts are the magenta lines, and
the bar below is the cut, one colour per source. Click to seek.</figcaption>
</figure></section>"""


def _segments_table(sb: Storyboard, fps: Fraction, colors: dict[str, tuple[int, int, int]]) -> str:
    index = {name: k for k, name in enumerate(colors)}
    rows = []
    for seg, thumb in zip(sb.segments, sb.thumbnails, strict=True):
        img = (f'<img alt="segment {seg.index}" src="{data_uri(thumb)}" width="{thumb.width}" height="{thumb.height}">'
               if thumb is not None else '<span class="nothumb">no frame</span>')
        beats = f"{seg.beats:.2f}".rstrip("0").rstrip(".") + " beats" if seg.beats is not None else ""
        score = f"{seg.score:.3f}" if seg.score is not None else ""
        src_in, src_out = seg.source_in_frame, seg.source_in_frame + seg.duration_frames
        dissolve = f'<div class="muted">dissolve {seg.transition_in_frames} f</div>' if seg.transition_in_frames else ""
        rows.append(f"""<tr class="seg" tabindex="0" role="button" data-frame="{seg.record_start_frame}"
 data-end="{seg.record_end_frame}" data-index="{seg.index}">
<td class="thumb">{img}</td>
<td class="num">{seg.index}</td>
<td class="tc">{timecode(seg.record_start_frame, fps)}<br>{timecode(seg.record_end_frame, fps)}</td>
<td>{seg.duration_frames} f<div class="muted">{e(beats)}</div>{dissolve}</td>
<td><span class="swatch src-{index[seg.source_name]}"></span><span class="src" title="{e(shown_name(seg.source))}">{e(shown_name(seg.source_name))}</span>
<div class="muted">{e(seg.shot_id)} · {timecode(src_in, fps)}–{timecode(src_out, fps)}</div></td>
<td>{e(seg.section)}<div class="muted">{e(seg.level)}</div></td>
<td class="num">{score}</td>
<td class="reason">{e(seg.reason)}</td>
</tr>""")
    return f"""<section><h2>Segments</h2>
<p class="muted">Click a row to seek the player to the segment's first frame. In/out are record timecodes (out exclusive).</p>
<table class="segments"><thead><tr><th>frame</th><th>#</th><th>in / out</th><th>length</th><th>source</th>
<th>section</th><th>score</th><th>director's reason</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></section>"""


def _director(director: dict, plan: dict) -> str:
    brief = director.get("brief", "")
    facts = {"path": director.get("path"), "backend": director.get("backend"), "model": director.get("model"),
             "requests": director.get("requests"), "cache hit": director.get("cache_hit"),
             "plan from": plan.get("director")}
    items = "".join(f"<li>{e(x)}</li>" for x in plan.get("rationale", []) or [])
    fallbacks = "".join(f"<li>{e(x)}</li>" for x in director.get("fallbacks", []) or [])
    errors = "".join(f"<li>{e(x)}</li>" for x in director.get("validation_errors", []) or [])
    return f"""<div class="director"><h2>Brief</h2>
<blockquote class="brief">{e(brief) if brief else '<span class="muted">(no brief: the style preset decided)</span>'}</blockquote>
<h2>Plan rationale</h2><ul>{items or '<li class="muted">(none given)</li>'}</ul>
<h2>Director</h2>{_dl(facts)}
{f'<h3>Fallbacks</h3><ul>{fallbacks}</ul>' if fallbacks else ''}
{f'<h3>Validation errors</h3><ul>{errors}</ul>' if errors else ''}
<details><summary>plan (JSON)</summary><pre>{e(json.dumps(plan, indent=2, ensure_ascii=False))}</pre></details></div>"""


def _settings(meta: dict, summary: dict, settings: Mapping[str, Any] | None) -> str:
    render = dict(meta.get("render") or {})
    shown = {"size": f"{render.get('width')}x{render.get('height')}" if render else None,
             "fps": f"{render.get('fps_num')}/{render.get('fps_den', 1)}" if render else None,
             **{k: render.get(k) for k in ("fit", "crf", "preset", "keep_clip_audio") if k in render},
             "style": meta.get("style"), "seed": meta.get("seed")}
    run = {k: summary.get(k) for k in ("cuts", "clips_used", "clips_found", "frames", "fps", "duration_s",
                                      "tempo_bpm", "cache_hits") if k in summary}
    run.update({f"section {k + 1}": s for k, s in enumerate(summary.get("sections", []) or [])})
    extra = _dl(redact(settings)) if settings else ""
    return f"""<section class="cols"><div><h2>Render settings</h2>{_dl(shown)}</div>
<div><h2>Run</h2>{_dl(run) if run else '<p class="muted">(no run summary)</p>'}</div>
{f'<div><h2>Settings</h2>{extra}</div>' if extra else ''}</section>"""


def _timings(summary: dict) -> str:
    stages = summary.get("stages_s") or {}
    if not stages:
        return ""
    top = max(max(stages.values()), 1e-9)
    rows = "".join(f'<tr><td>{e(k)}</td><td class="num">{float(v):.2f} s</td>'
                   f'<td><meter min="0" max="{top:.3f}" value="{float(v):.3f}"></meter></td></tr>'
                   for k, v in stages.items())
    total = f'<tr><td>total</td><td class="num">{sum(stages.values()):.2f} s</td><td></td></tr>'
    return f'<section><h2>Timings</h2><table class="timings">{rows}{total}</table></section>'


def _craft(craft: dict | None) -> str:
    """How the cut was judged (plan/craft.py): repeats, near-duplicates, jump cuts, balance, beats."""
    if not isinstance(craft, dict) or "segments" not in craft:
        return ""
    cuts, on_beat = int(craft.get("cuts") or 0), int(craft.get("cuts_on_beat") or 0)
    repeats = craft.get("repeated_shots") or {}
    rows = [
        ("shots used", f"{craft.get('shots_used')} of {craft.get('shots_available')} for {craft.get('segments')} segments"),
        ("cuts on a beat", f"{on_beat} of {cuts}" + (f" ({100 * on_beat / cuts:.0f}%)" if cuts else "")),
        ("shots shown again", ", ".join(f"{k} ×{n}" for k, n in sorted(repeats.items())) or "none"),
        ("moments shown twice", str(craft.get("repeated_windows", 0))
         + (" (the material ran out)" if craft.get("ran_out") else "")),
        ("near-duplicates returning", str(craft.get("near_duplicate_returns", 0))),
        ("jump cuts", str(craft.get("jump_cuts", 0))),
        ("text on screen", f"{int(craft.get('text_ranges') or 0)} range(s), {float(craft.get('text_seconds') or 0):.1f} s "
                           f"of footage; shown in {int(craft.get('segments_with_text') or 0)} segment(s)"),
    ]
    sources = "".join(f"<tr><td>{e(shown_name(str(s.get('source'))))}</td><td class=\"num\">{int(s.get('segments') or 0)}</td>"
                      f"<td class=\"num\">{float(s.get('seconds') or 0):.1f} s</td></tr>"
                      for s in craft.get("sources") or [] if isinstance(s, dict))
    return ('<section id="craft"><h2>Craft</h2><dl>'
            + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows) + "</dl>"
            + (f'<table class="sources"><tr><th>source</th><th>segments</th><th>time</th></tr>{sources}</table>'
               if sources else "") + "</section>")


def _warnings(plan_json: dict, summary: dict) -> str:
    items = list(dict.fromkeys([*(plan_json.get("warnings") or []), *(summary.get("warnings") or [])]))
    items += [f"skipped: {s}" for s in summary.get("skipped") or []]
    if not items:
        return ""
    return "<section><h2>Warnings</h2><ul>" + "".join(f"<li>{e(shown_name(w))}</li>" for w in items) + "</ul></section>"


def _dl(d: Mapping[str, Any]) -> str:
    rows = "".join(f"<dt>{e(k)}</dt><dd>{e(_plain(v))}</dd>" for k, v in d.items() if v not in (None, ""))
    return f"<dl>{rows}</dl>"


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def _fps(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}"


def _css(colors: dict[str, tuple[int, int, int]]) -> str:
    swatches = "".join(f".src-{k}{{background:rgb{c}}}" for k, c in enumerate(colors.values()))
    return _CSS + swatches


_CSS = """
:root{color-scheme:light dark;--bg:#f6f6f8;--fg:#202028;--muted:#6a6a78;--line:#dcdce4;--hi:#ffe9a8;--card:#fff}
@media (prefers-color-scheme:dark){:root{--bg:#17171b;--fg:#e8e8ee;--muted:#9a9aa8;--line:#33333c;--hi:#4a3f12;--card:#202026}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,sans-serif}
main{max-width:1600px;margin:0 auto;padding:16px 20px 40px}h1{margin:0 0 4px;font-size:22px}h2{font-size:17px;margin:22px 0 8px}
h3{font-size:14px;margin:12px 0 4px}.facts,.muted,.note{color:var(--muted)}.muted{font-size:12px}
.top{display:grid;grid-template-columns:minmax(320px,3fr) 2fr;gap:20px;align-items:start;margin-top:12px}
.director h2:first-child{margin-top:0}
@media (max-width:1000px){.top{grid-template-columns:1fr}}
video{width:100%;background:#000;border-radius:6px;display:block}
.readout{font:13px ui-monospace,monospace;margin-top:4px}
.chart{position:relative;margin:0;cursor:crosshair}.chart img{width:100%;height:auto;display:block;border-radius:6px}
#playhead{position:absolute;top:0;width:2px;margin-left:-1px;background:#111;opacity:.8;pointer-events:none}
.chart figcaption{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;background:var(--card)}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
tr.seg{cursor:pointer}tr.seg:hover{background:rgba(127,127,127,.12)}tr.seg.current{background:var(--hi)}
tr.seg:focus{outline:2px solid #3b82f6;outline-offset:-2px}
td.thumb img{width:160px;height:auto;display:block;border-radius:3px}
td.num,.tc{font-variant-numeric:tabular-nums;white-space:nowrap}
.tc{font-family:ui-monospace,monospace;font-size:12px}.reason{max-width:480px;overflow-wrap:anywhere}
.src{overflow-wrap:anywhere}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.cols{display:flex;flex-wrap:wrap;gap:24px}.cols>div{flex:1 1 320px;min-width:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
blockquote.brief{margin:0;padding:8px 12px;border-left:3px solid var(--line);white-space:pre-wrap;overflow-wrap:anywhere}
pre{white-space:pre-wrap;font-size:12px;max-height:400px;overflow:auto}meter{width:240px}
table.timings{width:auto}footer{margin-top:28px;color:var(--muted);font-size:12px}footer a{color:inherit}
"""

# Text only ever reaches the DOM through data-* numbers we wrote; nothing here builds HTML.
_JS = r"""
(() => {
  const root = document.getElementById('report');
  const v = document.getElementById('player');
  const fps = Number(root.dataset.fpsNum) / Number(root.dataset.fpsDen);
  const total = Number(root.dataset.frames);
  const EPS = Math.min(0.001, 0.25 / fps);       // past the frame boundary, well inside the frame
  const rows = Array.from(document.querySelectorAll('tr.seg'));
  const starts = rows.map(r => Number(r.dataset.frame));
  const chart = document.getElementById('chart');
  const head = document.getElementById('playhead');
  const tc = document.getElementById('timecode');
  const cur = document.getElementById('current-seg');
  const base = Math.max(1, Math.round(fps));
  const pad = n => String(n).padStart(2, '0');
  const timecode = f => {
    const s = Math.floor(f / base);
    return [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60, f % base].map(pad).join(':');
  };
  let shown = -1;

  function frameNow() { return Math.max(0, Math.min(total - 1, Math.floor(v.currentTime * fps + 1e-6))); }
  function segmentAt(frame) {
    let k = -1;
    for (let i = 0; i < starts.length && starts[i] <= frame; i++) k = i;
    return k;
  }
  function show(frame) {
    tc.textContent = timecode(frame);
    const k = segmentAt(frame);
    if (k !== shown) {
      if (shown >= 0) rows[shown].classList.remove('current');
      if (k >= 0) { rows[k].classList.add('current'); cur.textContent = 'segment #' + rows[k].dataset.index; }
      shown = k;
    }
    const x0 = Number(chart.dataset.x0), x1 = Number(chart.dataset.x1);
    const w = Number(chart.dataset.width), h = Number(chart.dataset.height);
    head.style.left = ((x0 + (x1 - x0) * frame / total) / w * 100) + '%';
    head.style.top = (Number(chart.dataset.y0) / h * 100) + '%';
    head.style.height = ((Number(chart.dataset.y1) - Number(chart.dataset.y0)) / h * 100) + '%';
  }
  function seekFrame(frame) {
    frame = Math.max(0, Math.min(total - 1, frame));
    v.currentTime = frame / fps + EPS;
    show(frame);
  }
  rows.forEach(r => {
    r.addEventListener('click', () => seekFrame(Number(r.dataset.frame)));
    r.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); seekFrame(Number(r.dataset.frame)); }
    });
  });
  chart.addEventListener('click', ev => {
    const img = document.getElementById('chart-img').getBoundingClientRect();
    const px = (ev.clientX - img.left) * Number(chart.dataset.width) / img.width;
    const x0 = Number(chart.dataset.x0), x1 = Number(chart.dataset.x1);
    seekFrame(Math.floor((px - x0) / (x1 - x0) * total));
  });
  ['timeupdate', 'seeked', 'loadedmetadata'].forEach(k => v.addEventListener(k, () => show(frameNow())));
  if ('requestVideoFrameCallback' in v) {
    const tick = () => { show(frameNow()); v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
  }
  v.addEventListener('error', () => {
    document.getElementById('video-note').textContent =
      'This browser cannot play the montage (H.264/AAC MP4); open it in a video player.';
  });
  window.montageReport = { seekFrame, fps, total };
  show(0);
})();
"""
