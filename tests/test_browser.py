"""tests/browser.py on small pages: what it reports is what the page did."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

from browser import PageCheck, open_page


def png(width: int, height: int) -> bytes:
    """A grey PNG, made here so that the test needs no image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def check(tmp_path: Path, body: str) -> PageCheck:
    """Write ``body`` in a page and open it."""
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Test page</title>"
                    f"</head><body>{body}</body></html>")
    return open_page(page, tmp_path / "page.png", timeout=20)


def test_a_clean_page_renders_every_plot_and_asks_nothing(tmp_path: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png(40, 30)).decode()
    result = check(tmp_path, f"""
        <img class="plot" id="sensitivity" alt="Sensitivity" src="{uri}">
        <svg class="plot" id="rates" width="120" height="80"><title>Rates</title>
          <rect width="120" height="80" fill="teal"/></svg>""")
    assert result.console_errors == []
    assert result.requests == []
    assert result.title == "Test page"
    assert [(p.tag, p.id, p.alt, p.title) for p in result.plots] == [
        ("img", "sensitivity", "Sensitivity", ""), ("svg", "rates", "", "Rates")]
    img, svg = result.plots
    assert (img.width, img.height, img.loaded, img.rendered) == (40, 30, True, True)
    assert (svg.width, svg.height, svg.loaded, svg.rendered) == (120, 80, None, True)
    shot = result.screenshot.read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", shot[16:24])[0] == 1280  # IHDR: the page's width, in pixels


def test_console_errors_and_uncaught_errors_are_reported(tmp_path: Path) -> None:
    result = check(tmp_path, """<script>console.error("boom")</script>
        <script>throw new Error("kaput")</script>""")
    assert result.console_errors == ["boom", "uncaught: kaput"]
    assert result.requests == []


def test_requests_to_the_network_are_recorded_and_blocked(tmp_path: Path) -> None:
    result = check(tmp_path, """<img class="plot" id="remote" src="http://example.com/x.png">
        <script>fetch("https://cdn.example.org/lib.js").then(() => console.error("reached"))
        </script>
        <script>new WebSocket("wss://live.example.net/feed")</script>""")
    assert sorted(result.requests) == ["http://example.com/x.png", "https://cdn.example.org/lib.js",
                                       "wss://live.example.net/feed"]
    [plot] = result.plots
    assert plot.id == "remote" and plot.loaded is False and not plot.rendered
    # blocked by the harness (not failed for want of a network): the page never has an answer
    assert sum("ERR_BLOCKED_BY_CLIENT" in error for error in result.console_errors) == 2
    assert "uncaught: Failed to fetch" in result.console_errors
    assert "reached" not in result.console_errors


def test_a_broken_data_image_is_not_rendered(tmp_path: Path) -> None:
    result = check(tmp_path, """<img class="plot" id="broken" alt="Broken"
        src="data:image/png;base64,iVBORw0KGgoAAAAN">""")
    [plot] = result.plots
    assert plot.loaded is False and not plot.rendered
    assert result.requests == []
