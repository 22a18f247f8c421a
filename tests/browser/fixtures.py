"""Headless Chromium (Debian's package, which scripts/chromium.sh installs) driven by playwright: each
report is opened as a user would open the file, every chart drawn, and the page's console watched."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

ARTIFACTS = Path(os.environ.get("EMITTER_ARTIFACTS", ROOT / ".local" / "artifacts")) / "browser"
CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    for c in (os.environ.get("EMITTER_CHROMIUM", ""), *CANDIDATES):
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("headless Chromium is missing: run scripts/chromium.sh (as root) or set EMITTER_CHROMIUM")


@dataclass
class Opened:
    page: Any
    messages: list[str] = field(default_factory=list)  # console errors and warnings, page errors, fetches

    def names(self) -> list[str]:
        """The charts' names, top to bottom."""
        return [str(n) for n in self.page.eval_on_selector_all(".chart", "els => els.map(e => e.dataset.name)")]

    def chart(self, name: str, script: str) -> Any:
        """Evaluate ``script`` (a JS function body of ``m``, the chart's bokeh model) in the page."""
        return self.page.evaluate(
            "([name, body]) => { const m = Bokeh.documents.map(d => d.get_model_by_name(name)).find(x => x);"
            " if (!m) throw new Error('no chart named ' + name); return new Function('m', body)(m); }",
            [name, script],
        )

    def legend(self, name: str) -> list[str]:
        return list(
            self.chart(
                name,
                "const l = [...m.center, ...m.below, ...m.right].find(r => r.type == 'Legend');"
                "return l ? l.items.map(i => i.label.value) : [];",
            )
        )

    def labels(self, name: str) -> list[str]:
        return list(self.chart(name, "return m.center.filter(r => r.type == 'Label').map(r => r.text);"))

    def windows(self, name: str) -> list[list[float]]:
        return list(
            self.chart(name, "return m.center.filter(r => r.type == 'BoxAnnotation').map(r => [r.left, r.right]);")
        )

    def series(self, name: str, label: str) -> list[float | None]:
        """The y values of the line named ``label`` (NaN comes back as None)."""
        return list(
            self.chart(
                name,
                f"const r = m.renderers.find(r => r.name == {label!r});"
                "if (!r) throw new Error('no line ' + " + repr(label) + ");"
                "return Array.from(r.data_source.data.y, v => Number.isFinite(v) ? v : null);",
            )
        )

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_report() -> Iterator[Any]:
    """``open_report(path)``: the page with every chart drawn and idle. The browser starts at the first
    call and stops with the test: playwright's synchronous API holds an event loop on this thread while it
    runs, and the integration tests need theirs before that."""
    from playwright.sync_api import sync_playwright

    held: list[Any] = []

    def _open(path: Path) -> Opened:
        if not held:
            pw = sync_playwright().start()
            held.append(pw)
            held.append(pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"]))
        page = held[1].new_page(viewport={"width": 1280, "height": 900})
        got = Opened(page)
        page.on(
            "console",
            lambda m: got.messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: got.messages.append(f"page error: {e}"))
        uri = path.resolve().as_uri()
        page.on("request", lambda r: got.messages.append(f"fetched {r.url}") if r.url != uri else None)
        page.goto(uri, wait_until="load")
        page.wait_for_function("() => window.Bokeh !== undefined && window.emitterCharts !== undefined")
        page.evaluate("emitterRenderAll()")
        page.wait_for_function(
            "() => window.emitterDrawn == window.emitterCharts && Object.values(Bokeh.index).every(v => v.is_idle)",
            timeout=30_000,
        )
        return got

    yield _open
    if held:
        held[1].close()
        held[0].stop()
