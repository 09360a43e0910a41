"""report.html in a real headless browser: Debian's chromium driven by playwright (no browser
download: `executable_path`). The page is opened from file:// with every request that is not
file: or data: aborted and recorded, DNS mapped to nothing and a proxy that refuses, so a page
that reached for the network would fail here. Then: the montage plays, and clicking a segment
seeks the player to that segment's first frame, and that frame (its colour) is on screen."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from test_report import COLOR_TOLERANCE, FPS, ReportRun, _truth_color, evil_report, make_report_run

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("MONTAGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("chromium not installed: apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install playwright (drives the system chromium)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--allow-file-access-from-files"]      # lets the test read video pixels through a canvas on file://


@pytest.fixture(scope="module")
def rr(tmp_path_factory) -> ReportRun:
    return make_report_run(tmp_path_factory.getbasetemp() / "report-run")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Page:
    """A page whose every request is checked: file: and data: pass, anything else is refused and kept."""

    def __init__(self, browser, url: str):
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console: list[str] = []
        self.ctx.on("request", lambda r: self.requests.append(r.url))
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        self.page.goto(url, wait_until="load")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def js(self, expr: str):
        return self.page.evaluate(expr)

    def wait(self, expr: str, timeout_s: float = 10.0):
        """Poll from outside: the page's CSP forbids the eval that wait_for_function uses."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            value = self.js(expr)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expr}: {self.js(expr)!r}")

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture(scope="module")
def page(rr, browser):
    p = Page(browser, rr.report.as_uri())
    yield p
    p.close()


def test_page_loads_with_no_network(rr, page):
    page.wait("document.getElementById('player').readyState >= 1")
    external = [u for u in page.requests if not u.startswith(("file:", "data:"))]
    assert not external and not page.blocked, f"the page reached for the network: {external or page.blocked}"
    assert {Path(u).name for u in page.requests if u.startswith("file:")} == {"report.html", "montage.mp4"}
    assert not [m for m in page.console if "Content Security Policy" in m or "pageerror" in m], page.console
    assert page.js("document.querySelectorAll('tr.seg').length") == len(rr.plan_json["segments"])
    assert page.js("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def test_the_montage_plays(rr, page):
    page.wait("document.getElementById('player').readyState >= 2")
    assert page.js("player.videoWidth") == 640 and abs(page.js("player.duration") - rr.summary["duration_s"]) < 0.1
    page.js("player.muted = true; player.play()")
    page.wait("player.currentTime > 0.6")
    assert page.js("player.readyState") >= 3 and not page.js("player.error")
    page.js("player.pause()")


def _frame_on_screen(page: Page) -> tuple[float, np.ndarray]:
    """mediaTime of the frame presented after the last seek, and its median colour (via a canvas)."""
    page.wait("window.__frames.length > 0")
    t = page.js("window.__frames.at(-1)")
    rgb = page.js("""() => { const c = document.createElement('canvas'); c.width = 32; c.height = 18;
        const g = c.getContext('2d'); g.drawImage(player, 0, 0, 32, 18);
        return Array.from(g.getImageData(0, 0, 32, 18).data); }""")
    px = np.array(rgb, float).reshape(-1, 4)[:, :3]
    return t, np.median(px, axis=0)


@pytest.mark.parametrize("k", [0, 1, 7, -1])
def test_clicking_a_segment_seeks_to_its_first_frame(rr, page, k):
    segs = rr.plan_json["segments"]
    seg = segs[k]
    page.js("player.pause()")
    page.js("""window.__frames = [];
        const cb = (now, md) => { window.__frames.push(md.mediaTime); player.requestVideoFrameCallback(cb); };
        player.requestVideoFrameCallback(cb);""")
    if k == 0:                      # frame 0 may already be on screen: move away first
        page.js("player.currentTime = 3.0")
        page.wait("!player.seeking && window.__frames.length > 0")
        page.js("window.__frames = []")
    page.page.locator("tr.seg").nth(k if k >= 0 else len(segs) + k).click()
    page.wait("!player.seeking")
    start_s = seg["record_start_frame"] / FPS
    assert abs(page.js("player.currentTime") - start_s) <= 0.5 / FPS
    media_time, colour = _frame_on_screen(page)
    assert round(media_time * FPS) == seg["record_start_frame"]
    assert np.abs(colour - _truth_color(rr, seg)).max() <= COLOR_TOLERANCE, (seg["index"], colour)
    assert page.js("document.querySelector('tr.seg.current').dataset.index") == str(seg["index"])


def test_injected_text_does_not_run(rr, browser, tmp_path):
    p = Page(browser, evil_report(rr, tmp_path / "evil").as_uri())
    try:
        p.wait("document.querySelectorAll('tr.seg').length > 0")
        assert p.js("typeof window.pwned") == "undefined"
        assert "<script>window.pwned = 1</script>" in p.js("document.querySelector('tr.seg .reason').textContent")
        assert p.js("document.querySelectorAll('iframe, img[src=x]').length") == 0
        assert p.js("document.querySelectorAll('tr.seg').length") == len(rr.plan_json["segments"])
        assert not p.blocked
    finally:
        p.close()


def test_the_craft_report_is_on_the_page(rr, page):
    """The review page says how the cut was judged: the numbers of plan.json's craft report,
    visible in the browser (not only in the HTML)."""
    craft = rr.plan_json["craft"]
    page.wait("document.getElementById('craft') !== null")
    assert page.js("document.getElementById('craft').getBoundingClientRect().height") > 50
    text = page.js("document.getElementById('craft').innerText")
    assert f"{craft['cuts_on_beat']} of {craft['cuts']}" in text
    assert f"{craft['shots_used']} of {craft['shots_available']}" in text
    assert "text on screen" in text and f"shown in {craft['segments_with_text']} segment(s)" in text
    assert "jump cuts" in text and "near-duplicates returning" in text
    rows = page.js("document.querySelectorAll('#craft table.sources tr').length")
    assert rows == 1 + len(craft["sources"])
