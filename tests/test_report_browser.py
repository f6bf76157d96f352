"""``index.html`` as a real browser renders it: headless Chromium (Debian's ``chromium``).

A small but wide report is written from synthetic records (no training): three channels
with long names, seven metrics, codecs that miss their byte budget, a patch scheme that
dominates, the ``raw`` reference. Chromium renders it at the default width (1280 px) and
the checks read the rendered page: every table fits its column or scrolls, no BD-rate
cell is out of view, every image loads. The page's screenshot is attached to the report
folder. Without Chromium the browser tests skip, saying why.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from conftest import point_record
from PIL import Image

from semcom.experiments.records import PointRecord
from semcom.experiments.report import (
    SCREENSHOT_PNG,
    browser_unavailable_reason,
    check_in_browser,
    render_screenshot,
    write_report,
)

REASON = browser_unavailable_reason()
needs_browser = pytest.mark.skipif(REASON is not None, reason=f"no browser check: {REASON or ''}")

CHANNELS = {
    "ideal": {"type": "ideal", "seed": 0},
    "bsc(ber=1e-04)": {"type": "bsc", "ber": 1e-4, "seed": 0},
    "erasure(loss=0.05,packet_size=128)": {
        "type": "erasure", "loss": 0.05, "packet_size": 128, "seed": 0,
    },
}  # fmt: skip
CODECS = {"jpeg": 1.0, "webp": 0.7, "avif": 0.8}
PATCHES = {"patch-mean": 1.1, "patch-random": 1.6, "patch-mean[pixels=q2]": 0.45}


def _record(
    scheme: str, rate_label: str, channel: str, nbytes: float, q: float, **kw
) -> PointRecord:
    """A record whose task quality is ``q`` in [0, 1] (psnr, ssim, ... derived from it)."""
    noisy = channel != "ideal"
    metrics = {
        "accuracy": q,
        "accuracy_ft": min(1.0, q + 0.04),
        "miou": 0.8 * q,
        "pixel_accuracy": 0.6 + 0.39 * q,
        "psnr": 14.0 + 20.0 * q - (3.0 if noisy else 0.0),
        "ssim": 0.5 + 0.49 * q,
        "featdist[semcom-classifier]": 2.2 - 2.0 * q,
    }
    fields = dict(
        scheme=scheme,
        settings={"rate": rate_label},
        rate_label=rate_label,
        channel=channel,
        channel_config=CHANNELS[channel],
        mean_bytes=nbytes,
        mean_channel_bytes=nbytes * (1.0 if channel == "ideal" else 1.07),
        metrics=metrics,
        failure_rate=0.3125 if noisy and scheme in CODECS else 0.0,
        timing={"encode_ms": 6.2353, "decode_ms": 0.42017},
    )
    return point_record(**{**fields, **kw})


def wide_records() -> list[PointRecord]:
    out = []
    for channel in CHANNELS:
        for codec, mult in CODECS.items():
            for budget in (240, 360, 540, 800, 1200, 1800):
                nbytes = max(budget * mult, 330.0)  # the codec's floor: over small budgets
                q = min(0.97, 0.12 * math.log2(nbytes / 60.0))
                over = 0.75 if nbytes > budget else 0.0
                out.append(
                    _record(
                        codec,
                        f"{budget} B",
                        channel,
                        nbytes + 0.0625,
                        q,
                        target_bytes=float(budget),
                        over_budget=over,
                    )  # fmt: skip
                )
        for patch, mult in PATCHES.items():
            for r in (0.25, 0.5, 0.75, 1.0):
                nbytes = 1470.0 * r * mult + 0.5625
                q = min(0.97, 0.55 + 0.4 * r) if "q2" in patch else 0.12 * math.log2(nbytes / 90)
                out.append(_record(patch, f"r={r:g}", channel, nbytes, q))
        out.append(_record("raw", "24 bpp", channel, 12319.0, 1.0, metrics={"psnr": 100.0}))
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-report")
    sample = out / "samples.png"
    Image.new("RGB", (900, 600), (30, 90, 200)).save(sample)
    outside = tmp_path_factory.mktemp("elsewhere") / "attention map.png"
    Image.new("RGB", (800, 700), (200, 60, 30)).save(outside)
    extra = [("Sample reconstructions", sample), ("Attention-guided patch transmission", outside)]
    write_report(wide_records(), out, extra_sections=extra, screenshot=REASON is None)
    return out


@needs_browser
def test_every_table_fits_or_scrolls_and_bd_cells_show(report):
    check = check_in_browser(report)
    assert check.viewport_width == 1280
    assert len(check.tables) >= 3 + 1 + 7  # summaries, best-vs-best, a BD table per metric
    for t in check.tables:
        fits = t["scroll_width"] <= t["client_width"]
        assert fits or t["overflow_x"] in ("auto", "scroll"), t
        assert t["bd_cells_hidden"] == 0, t
    assert sum(t["bd_cells"] for t in check.tables) > 0
    assert check.page_width <= check.viewport_width
    assert check.problems() == []


@needs_browser
def test_tables_fit_their_column_at_the_default_width(report):
    check = check_in_browser(report)
    too_wide = [(t["index"], t["section"], t["scroll_width"]) for t in check.overflowing()]
    assert too_wide == [], f"tables wider than their {check.tables[0]['client_width']} px column"


@needs_browser
def test_every_image_loads(report):
    check = check_in_browser(report)
    html_imgs = re.findall(r"<img\s", (report / "index.html").read_text(encoding="utf-8"))
    assert len(check.images) == len(html_imgs) >= 9  # 7 metrics + failures, 2 extra images
    for img in check.images:
        assert img["complete"] and img["natural_width"] > 0, img
    assert {"samples.png", "extra/attention%20map.png"} <= {i["src"] for i in check.images}


@needs_browser
def test_screenshot_is_attached_to_the_report(report):
    shot = report / SCREENSHOT_PNG
    assert shot.is_file()
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width == 1280 and im.height > 2000
        assert len(im.convert("L").resize((64, 64)).getcolors(4096) or ()) > 8  # not a blank page
    again = render_screenshot(report, report / "top.png", height=2000)
    assert again == report / "top.png"
    with Image.open(again) as im:
        assert im.size == (1280, 2000)
    again.unlink()


@needs_browser
def test_the_check_catches_broken_pages(tmp_path):
    """A missing image and a wide table that cannot scroll are reported."""
    records = [r for r in wide_records() if r.channel == "ideal"]
    index = write_report(records, tmp_path)
    (tmp_path / "plot_psnr.png").unlink()
    text = index.read_text(encoding="utf-8")
    index.write_text(
        text.replace("</style>", ".scroll { overflow-x: visible !important; }</style>", 1),
        encoding="utf-8",
    )
    problems = check_in_browser(tmp_path, width=700).problems()
    assert any("plot_psnr.png" in p and "did not load" in p for p in problems)
    assert any("does not scroll" in p for p in problems)


def test_screenshot_without_a_browser_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMCOM_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert browser_unavailable_reason() is not None
    (tmp_path / "index.html").write_text("<html><body>x</body></html>", encoding="utf-8")
    assert render_screenshot(tmp_path) is None
    assert not (tmp_path / SCREENSHOT_PNG).exists()
    assert "no screenshot of the report" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="Chromium"):
        check_in_browser(tmp_path)
