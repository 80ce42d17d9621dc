"""Open a self-contained HTML page in headless Chromium and report what a reader would see.

Debian's ``chromium`` (scripts/install-browser.sh), driven by Playwright, whose own browser
download is never used. Every request to a URL that is not ``file:`` or ``data:`` is recorded and
aborted, WebSockets included: nothing reaches the network. Use::

    check = open_page(tmp_path / "report.html", tmp_path / "report.png")
    assert check.console_errors == [] and check.requests == []
    assert check.plots and all(plot.rendered for plot in check.plots)

``open_page`` skips the test when no browser is installed (fails it under CI, see
``contract.unavailable``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from contract import unavailable
from playwright.sync_api import ConsoleMessage, Route, WebSocketRoute, sync_playwright

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = ("file:", "data:")

#: each ``.plot`` element: its size on the page, and for an <img> whether its picture decoded
PLOTS_JS = """els => els.map(e => {
  const box = e.getBoundingClientRect();
  const svgTitle = e.querySelector(':scope > title');
  return {tag: e.tagName.toLowerCase(), id: e.id || '', alt: e.getAttribute('alt') || '',
          title: e.getAttribute('title') || (svgTitle ? svgTitle.textContent : ''),
          width: box.width, height: box.height,
          loaded: e instanceof HTMLImageElement ? e.complete && e.naturalWidth > 0 : null};
})"""


@dataclass(frozen=True)
class Plot:
    """One element of class ``plot``; ``loaded`` is None when it is not an <img>."""

    tag: str
    id: str
    alt: str
    title: str
    width: float
    height: float
    loaded: bool | None

    @property
    def rendered(self) -> bool:
        """Drawn with a size, and for an <img>, its picture decoded."""
        return self.width > 0 and self.height > 0 and self.loaded is not False


@dataclass
class PageCheck:
    """What opening a page showed; ``screenshot`` is a full-page PNG."""

    title: str
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def chromium_path() -> Path | None:
    """The first Chromium-like browser on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def require_chromium() -> Path:
    """The browser, or skip the test (fail it under CI)."""
    path = chromium_path()
    if path is None:
        unavailable(f"no browser on PATH ({', '.join(BROWSERS)}): bash scripts/install-browser.sh")
    return path


def open_page(html: Path, screenshot: Path, *, timeout: float = 30.0,
              width: int = 1280, height: int = 800) -> PageCheck:
    """Open ``html``, wait until its network is idle, gather errors, requests and plots, and
    save a full-page screenshot. Each browser step times out after ``timeout`` s; the browser
    is closed (killed with the Playwright driver) whatever happens."""
    browser_path = require_chromium()
    errors: list[str] = []
    requests: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def on_request(route: Route) -> None:
        url = route.request.url
        if url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            requests.append(url)
            route.abort("blockedbyclient")

    def on_websocket(socket: WebSocketRoute) -> None:
        requests.append(socket.url)  # never connected to a server
        socket.close()

    ms = timeout * 1000
    with sync_playwright() as playwright:
        # chromium_sandbox=False passes --no-sandbox: Chromium's sandbox refuses to run as root
        browser = playwright.chromium.launch(executable_path=browser_path, timeout=ms,
                                             chromium_sandbox=False)
        try:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          service_workers="block")
            context.set_default_timeout(ms)
            context.route("**/*", on_request)
            context.route_web_socket("**/*", on_websocket)
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            page.goto(html.resolve().as_uri(), wait_until="networkidle")
            plots = [Plot(**plot) for plot in page.eval_on_selector_all(".plot", PLOTS_JS)]
            page.screenshot(path=screenshot, full_page=True)
            return PageCheck(title=page.title(), screenshot=screenshot, console_errors=errors,
                             requests=requests, plots=plots)
        finally:
            browser.close()
