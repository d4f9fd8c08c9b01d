"""Headless Chromium (Debian's package, not Playwright's download) driven by Playwright, with no network.

`browser()` yields a `Browser`; `Browser.open(path)` loads a local file and records console errors, page errors
and every request that is not file:// or data: (those are aborted, so a page cannot reach the network).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SKIP_REASON = "install chromium: apt-get install -y chromium"


def find_chromium() -> str | None:
    """BK_CHROMIUM if set, else the first Chromium/Chrome binary found."""
    if os.environ.get("BK_CHROMIUM"):
        chosen = os.environ["BK_CHROMIUM"]
        return chosen if os.access(chosen, os.X_OK) else None
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The browser binary; skips the test without one (fails under CI=true, where it must be installed)."""
    path = find_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test needs chromium and playwright under CI: {SKIP_REASON}; pip install playwright")
        pytest.skip(SKIP_REASON)
    return path


@dataclass
class PageLog:
    """What a page did besides rendering."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)


@dataclass
class Browser:
    context: Any

    def open(self, path: Path, *, ready: str = "window.__bk && window.__bk.ready") -> tuple[Any, PageLog]:
        """Load `path` via file:// and wait until the JS expression `ready` holds (or an error is logged)."""
        page = self.context.new_page()
        log = PageLog()

        def on_route(route: Any) -> None:
            url = route.request.url
            if url.startswith(("file:", "data:")):
                route.continue_()
            else:
                log.external_requests.append(url)
                route.abort()

        def on_request(request: Any) -> None:
            # Logged as well as routed: some schemes never reach the route handler.
            if not request.url.startswith(("file:", "data:")) and request.url not in log.external_requests:
                log.external_requests.append(request.url)

        page.route("**/*", on_route)
        page.on("request", on_request)
        page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: log.page_errors.append(str(e)))
        page.goto(path.resolve().as_uri(), wait_until="load")
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        settled = f"() => Boolean({ready}) || Boolean(window.__bk && window.__bk.error)"
        try:
            page.wait_for_function(settled, timeout=30_000)
        except PlaywrightTimeout:
            pass  # the caller's assertions say what went wrong, with the log
        return page, log


@contextmanager
def browser(viewport: tuple[int, int] = (1400, 900)) -> Iterator[Browser]:
    """A fresh headless Chromium profile for the duration of the block."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="bk-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=LAUNCH_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
                device_scale_factor=1,
                service_workers="block",
            )
            try:
                yield Browser(context)
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(page: Any, path: Path, docs_name: str | None = None) -> Path:
    """Full-page PNG at `path`; with BK_WRITE_SCREENSHOT=1 also at docs/<docs_name> in the repository."""
    page.screenshot(path=str(path), full_page=True)
    if docs_name and os.environ.get("BK_WRITE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, REPO / "docs" / docs_name)
    return path


CANVAS_PROBE = """(sel) => {
  const out = {sized: 0, colors: 0};
  for (const c of document.querySelectorAll(sel)) {
    if (!(c.width > 0 && c.height > 0 && c.clientWidth > 0 && c.clientHeight > 0)) continue;
    out.sized += 1;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    // Every 7th pixel is plenty to tell a drawn chart from a blank canvas.
    for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16 | d[i + 1] << 8 | d[i + 2]) + d[i + 3] * 16777216);
    out.colors = Math.max(out.colors, seen.size);
  }
  return out;
}"""


def canvas_stats(page: Any, selector: str) -> dict[str, int]:
    """How many canvases under `selector` have a size, and the most distinct colours drawn on any one of them."""
    out: dict[str, int] = page.evaluate(CANVAS_PROBE, selector + " canvas")
    return out
