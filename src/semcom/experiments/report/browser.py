"""The report as a real browser renders it: headless Chromium measures ``index.html``
(:func:`check_in_browser`) and saves it as ``screenshot.png`` (:func:`render_screenshot`).

Without Chromium (Debian's ``chromium``, or ``$SEMCOM_CHROMIUM``),
:func:`browser_unavailable_reason` says why; a report never fails for want of a browser.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semcom.errors import InputError
from semcom.experiments.report.html import INDEX_HTML
from semcom.experiments.report.results import _emit

#: Where :func:`find_chromium` looks (after ``$SEMCOM_CHROMIUM``).
CHROMIUM_NAMES: tuple[str, ...] = (
    "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
)  # fmt: skip
SCREENSHOT_PNG = "screenshot.png"
_CHECK_ID = "semcom-browser-check"

# Runs in a throw-away copy of index.html (its images made eager, so the load event waits
# for all of them): on load, measures every table against the box that holds it and every
# image, and writes the result as JSON into the DOM, which --dump-dom prints.
_CHECK_JS = """
window.addEventListener("load", () => {
  const px = (v) => Math.round(v * 10) / 10;
  const tables = [...document.querySelectorAll("table")].map((t, index) => {
    let box = t.parentElement;
    for (let e = t.parentElement; e && e !== document.body; e = e.parentElement) {
      const ox = getComputedStyle(e).overflowX;
      if (ox === "auto" || ox === "scroll") { box = e; break; }
    }
    const b = box.getBoundingClientRect();
    // BD-rate cells: class "bd", or under a header that says BD-rate
    const bd = new Set(t.querySelectorAll("td.bd"));
    const heads = [...t.querySelectorAll("thead th")];
    const cols = heads.map((h, i) => /BD-rate/.test(h.textContent) ? i : -1).filter((i) => i >= 0);
    t.querySelectorAll("tbody tr").forEach((tr) => cols.forEach((i) => {
      if (tr.cells[i]) bd.add(tr.cells[i]);
    }));
    const hidden = [...bd].filter((c) => {
      const r = c.getBoundingClientRect();
      return r.right > b.right + 1 || r.left < b.left - 1;
    }).length;
    const head = t.closest("section");
    return {
      index, section: head ? head.id : "", classes: t.className,
      table_width: px(t.getBoundingClientRect().width),
      scroll_width: box.scrollWidth, client_width: box.clientWidth,
      overflow_x: getComputedStyle(box).overflowX, box_right: px(b.right),
      bd_cells: bd.size, bd_cells_hidden: hidden,
    };
  });
  const images = [...document.images].map((i) => ({
    src: i.getAttribute("src"), complete: i.complete, natural_width: i.naturalWidth,
    shown_width: px(i.getBoundingClientRect().width),
  }));
  const root = document.documentElement;
  const out = document.createElement("pre");
  out.id = "__CHECK_ID__";
  out.style.display = "none";
  out.textContent = JSON.stringify({
    tables, images, viewport_width: window.innerWidth,
    page_width: root.scrollWidth, page_height: root.scrollHeight,
  });
  document.body.appendChild(out);
});
""".replace("__CHECK_ID__", _CHECK_ID)


def find_chromium() -> str | None:
    """The Chromium / Chrome binary to use: ``$SEMCOM_CHROMIUM``, else the first of
    :data:`CHROMIUM_NAMES` found; None when there is none."""
    env = os.environ.get("SEMCOM_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


_UNAVAILABLE: dict[str, str | None] = {}


def browser_unavailable_reason() -> str | None:
    """Why :func:`check_in_browser` / :func:`render_screenshot` cannot run here, or None."""
    exe = find_chromium()
    if exe is None:
        return (
            "no headless Chromium found (install Debian's `chromium` package, or point "
            "$SEMCOM_CHROMIUM at a Chromium/Chrome binary)"
        )
    if exe not in _UNAVAILABLE:
        import subprocess

        try:
            done = subprocess.run(
                [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            ok = done.returncode == 0
            why = f"{exe} --version failed: {(done.stderr or done.stdout).strip()[-200:]}"
        except (OSError, subprocess.SubprocessError) as exc:
            ok, why = False, f"{exe} does not run: {exc}"
        _UNAVAILABLE[exe] = None if ok else why
    return _UNAVAILABLE[exe]


def _chromium(args: Sequence[str], timeout: float) -> str:
    """Run headless Chromium with a fresh profile; its stdout. RuntimeError on failure."""
    import signal
    import subprocess
    import tempfile

    exe = find_chromium()
    if exe is None:
        raise RuntimeError(browser_unavailable_reason() or "no Chromium")
    with tempfile.TemporaryDirectory(prefix="semcom-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}", *args,
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its helper processes go with it on a timeout
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"Chromium did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise RuntimeError(f"Chromium exited with status {proc.returncode}: {tail}")
    return out


@dataclass
class BrowserCheck:
    """What headless Chromium rendered of a report's ``index.html``.

    ``tables``: per table, its width and that of the box holding it (``scroll_width`` /
    ``client_width`` / ``overflow_x``) and how many BD-rate cells lie outside that box
    without scrolling; ``images``: per ``<img>``, ``complete`` and ``natural_width``.
    """

    index: Path
    width: int
    tables: list[dict[str, Any]]
    images: list[dict[str, Any]]
    viewport_width: int
    page_width: int
    page_height: int

    def overflowing(self) -> list[dict[str, Any]]:
        """Tables wider than their box (fine when the box scrolls)."""
        return [t for t in self.tables if t["scroll_width"] > t["client_width"]]

    def problems(self) -> list[str]:
        """Everything wrong with the rendered page, one line each (empty: all good)."""
        out = []
        for t in self.tables:
            where = f"table {t['index']} ({t['section'] or 'no section'})"
            if t["scroll_width"] > t["client_width"] and t["overflow_x"] not in (
                "auto",
                "scroll",
            ):
                out.append(
                    f"{where} is {t['scroll_width']} px wide in a {t['client_width']} px box "
                    "that does not scroll"
                )
            if t["bd_cells_hidden"]:
                out.append(f"{where}: {t['bd_cells_hidden']} BD-rate cell(s) out of view")
        for img in self.images:
            if not (img["complete"] and img["natural_width"] > 0):
                out.append(f"image {img['src']!r} did not load")
        if self.page_width > self.viewport_width:
            out.append(
                f"the page is {self.page_width} px wide at a {self.viewport_width} px window"
            )
        return out


def check_in_browser(
    report_dir: str | Path, *, width: int = 1280, height: int = 2000, timeout: float = 90.0
) -> BrowserCheck:
    """Render ``report_dir/index.html`` in headless Chromium at ``width`` px and measure
    it (see :class:`BrowserCheck`). The page is measured from a temporary copy holding a
    small script (the report itself has none). RuntimeError when Chromium is missing or
    fails (:func:`browser_unavailable_reason` says why beforehand)."""
    out = Path(report_dir)
    index = out / INDEX_HTML
    if not index.is_file():
        raise InputError(f"no {INDEX_HTML} in {out}")
    reason = browser_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    text = index.read_text(encoding="utf-8").replace(' loading="lazy"', "")
    script = f"<script>{_CHECK_JS}</script>"
    text = text.replace("</body>", script + "</body>", 1) if "</body>" in text else text + script
    probe = out / f".{_CHECK_ID}-{uuid.uuid4().hex[:8]}.html"
    probe.write_text(text, encoding="utf-8")
    found = None
    try:
        for _ in range(2):  # a second try if the first dump came before the load event
            dom = _chromium(
                [
                    f"--window-size={width},{height}",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    probe.resolve().as_uri(),
                ],
                timeout,
            )
            found = re.search(rf'<pre id="{_CHECK_ID}"[^>]*>(.*?)</pre>', dom, re.S)
            if found:
                break
    finally:
        probe.unlink(missing_ok=True)
    if not found:
        raise RuntimeError("the page check did not finish in Chromium (no result in the DOM)")
    data = json.loads(html.unescape(found.group(1)))
    return BrowserCheck(
        index=index,
        width=width,
        tables=data["tables"],
        images=data["images"],
        viewport_width=int(data["viewport_width"]),
        page_width=int(data["page_width"]),
        page_height=int(data["page_height"]),
    )


def render_screenshot(
    report_dir: str | Path,
    path: str | Path | None = None,
    *,
    width: int = 1280,
    height: int | None = None,
    timeout: float = 90.0,
) -> Path | None:
    """Screenshot ``report_dir/index.html`` as headless Chromium renders it at ``width``
    px into ``path`` (default ``report_dir/screenshot.png``); returns the PNG's path.

    ``height`` None: the whole page (measured first; at most 16,000 px). Returns None,
    with the reason on stderr, when Chromium is missing or fails: a report never fails
    for want of a browser."""
    out = Path(report_dir)
    dest = Path(path) if path is not None else out / SCREENSHOT_PNG
    reason = browser_unavailable_reason()
    if reason is None:
        try:
            if height is None:
                height = check_in_browser(out, width=width, timeout=timeout).page_height
            height = min(max(int(height), 600), 16000)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.png")
            try:
                _chromium(
                    [
                        f"--window-size={width},{height}",
                        "--virtual-time-budget=5000",
                        f"--screenshot={tmp}",
                        (out / INDEX_HTML).resolve().as_uri(),
                    ],
                    timeout,
                )
                if not (tmp.is_file() and tmp.stat().st_size > 0):
                    raise RuntimeError("Chromium wrote no screenshot")
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return dest
        except (RuntimeError, OSError, InputError, ValueError, KeyError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
    _emit([f"no screenshot of the report: {reason}"])
    return None
