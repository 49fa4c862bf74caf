"""The HTML report in a real browser (headless Chromium driven by Playwright): it loads with
no console errors, the time slider redraws the heap map, the bins and the cursor, and a
trace whose metadata holds markup cannot run script or add elements.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` package
(``pip install 'memsim[browser]'``; never ``playwright install``: the system browser is used).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memsim.trace.format import TraceWriter
from memsim.viz.report import write_report

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install 'memsim[browser]')")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip("chromium is not installed (apt-get install -y chromium)",
                allow_module_level=True)

EVIL_PROGRAM = "<script>window.__pwned = 1; alert('program')</script>"
EVIL_ARGV = "\"><img id=injected src=x onerror=\"window.__pwned=2;alert('argv')\">"
EVIL_PID = "</script><script>alert('pid')</script>\u2028"


def _trace(path: Path, meta: dict[str, object], n: int = 1500) -> str:
    live: list[int] = []
    addr = 0x10000
    with TraceWriter(path, {"brk0": 0x555555559000, **meta}) as w:
        for i in range(n):
            x = (i * 7919) % 1000
            if live and x < 380:
                w.write_call(("f", live.pop(x % len(live)), 0, 0))
                continue
            addr += 0x1000
            size = 200_000 + x if x > 990 else 16 + (x * 37) % 3000
            w.write_call(("m", size, 0, addr))
            live.append(addr)
    return str(path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, page_path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, dialogs


def _slide(page: Any, value: int) -> None:
    page.evaluate("v => { const s = document.getElementById('slider'); s.value = v; "
                  "s.dispatchEvent(new Event('input', {bubbles: true})); }", value)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    t = _trace(d / "prog.trace", {"program": "/usr/bin/prog"})
    out = d / "report.html"
    write_report(t, out, ["glibc", "buddy"], jobs=1)
    return out


def test_loads_without_errors_and_slider_moves_the_heap_map(browser: Any, report: Path) -> None:
    page, errors, dialogs = _open(browser, report)
    try:
        n = int(page.get_attribute("#slider", "max")) + 1
        assert n >= 10
        assert page.locator("#downsample").inner_text().startswith(f"{n} snapshots of 1,500 calls")
        last = page.evaluate("document.getElementById('heapmap').toDataURL()")
        bins_last = page.inner_text("#bins")
        at_last = page.inner_text("#at")
        cursor_last = page.get_attribute("#cursor", "x1")
        assert at_last.startswith("1,500 of 1,500")
        _slide(page, n // 3)
        mid = page.evaluate("document.getElementById('heapmap').toDataURL()")
        assert mid != last                               # the drawn map changed
        assert page.inner_text("#bins") != bins_last
        assert page.inner_text("#at") != at_last
        assert float(page.get_attribute("#cursor", "x1")) < float(cursor_last)
        _slide(page, n - 1)                              # and back: the same picture
        assert page.evaluate("document.getElementById('heapmap').toDataURL()") == last
        # the canvas is not blank: several colours drawn
        colours = page.evaluate("""() => {
            const c = document.getElementById('heapmap');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 4 * 7) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
            return seen.size; }""")
        assert colours >= 4
        assert "tcachebins" in page.inner_text("#bins")
        assert page.locator("svg.chart").count() >= 3
        assert errors == [] and dialogs == []
    finally:
        page.close()


def test_metadata_cannot_inject_script(browser: Any, tmp_path: Path) -> None:
    t = _trace(tmp_path / "evil<img src=x onerror=alert(3)>.trace",
               {"program": EVIL_PROGRAM, "argv": EVIL_ARGV, "pid": EVIL_PID}, n=200)
    out = tmp_path / "evil.html"
    write_report(t, out, ["glibc"], jobs=1)
    page, errors, dialogs = _open(browser, out)
    try:
        page.wait_for_timeout(300)
        assert dialogs == []
        assert page.evaluate("window.__pwned === undefined")
        assert page.locator("#injected").count() == 0
        assert page.locator("img").count() == 0
        assert page.locator("script").count() == 2      # the data and the page's own script
        text = page.inner_text("#summary")
        assert EVIL_PROGRAM in text                      # shown as text, verbatim
        assert "onerror" in text
        assert EVIL_PROGRAM in page.inner_text("#heapinfo")   # inserted by the script as text
        assert errors == []
        assert page.evaluate("document.getElementById('slider') !== null")
    finally:
        page.close()
