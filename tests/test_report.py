"""The report writer: records, results.json/.csv, plots, BD-rate tables, index.html."""

from __future__ import annotations

import csv
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import point_record
from PIL import Image
from rich.console import Console

import semcom.metrics
from semcom.errors import InputError
from semcom.experiments.records import PointRecord, higher_is_better, to_json_safe
from semcom.experiments.report import (
    _plot_figure,
    _scheme_styles,
    bd_rate_table,
    best_vs_best,
    default_anchor,
    load_results,
    make_plots,
    print_summary,
    write_html,
    write_report,
    write_results,
)

CHANNELS = {
    "ideal": {"type": "ideal", "seed": 0},
    "bsc(ber=1e-04)": {"type": "bsc", "ber": 1e-4, "seed": 0},
}
# scheme -> (rates, extra settings, byte multiplier: smaller = more efficient)
SCHEMES = {
    "jpeg": ([200, 400, 800, 1600], {}, 1.0),
    "webp": ([200, 400, 800], {"method": 4}, 0.7),
    "learned": ([100, 300, 900], {"model": "tiny"}, 0.5),
}


def make_record(scheme: str, rate: float, channel: str, **overrides) -> PointRecord:
    """A fake but self-consistent record (quality grows with log bytes)."""
    _, extra_settings, mult = SCHEMES.get(scheme, ([], {}, 1.0))
    nbytes = rate * mult + 12.0
    q = math.log2(rate)  # quality depends on the rate setting, bytes on the scheme
    noisy = channel != "ideal"
    metrics = {
        "accuracy": min(0.99, 0.3 + 0.07 * q) - (0.05 if noisy else 0.0),
        "psnr": 14.0 + 1.5 * q,
        "featdist[semcom-classifier]": 1.0 / q,
    }
    if scheme != "learned":
        metrics["ssim"] = min(0.99, 0.2 + 0.07 * q)
    fields = dict(
        scheme=scheme,
        settings={"rate": rate, **extra_settings},
        rate_label=f"{rate:g} B",
        channel=channel,
        channel_config=dict(CHANNELS.get(channel, {"type": "x"})),
        n_images=256,
        mean_bytes=nbytes,
        mean_channel_bytes=nbytes * 1.1,
        bpp=nbytes * 8 / 64**2,
        metrics=metrics,
        failure_rate=0.125 if (noisy and scheme == "jpeg") else 0.0,
        timing={"encode_ms": 1.25, "decode_ms": 0.5},
    )
    return point_record(**{**fields, **overrides})


def make_records() -> list[PointRecord]:
    return [
        make_record(scheme, rate, channel)
        for channel in CHANNELS
        for scheme, (rates, _, _) in SCHEMES.items()
        for rate in rates
    ]


@pytest.fixture
def fake_bd_rate(monkeypatch):
    """Replace semcom.metrics.bd_rate with a recorder."""
    calls: list[tuple] = []
    behaviour: dict = {"result": -10.0}

    def bd_rate(rate_a, metric_a, rate_b, metric_b):
        calls.append((list(rate_a), list(metric_a), list(rate_b), list(metric_b)))
        result = behaviour["result"]
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(semcom.metrics, "bd_rate", bd_rate)
    return calls, behaviour


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> tuple[Path, list[PointRecord], Path]:
    """The whole report written once (plots are the slow part)."""
    out = tmp_path_factory.mktemp("report")
    records = make_records()
    sample = out / "samples.png"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(sample)
    index = write_report(
        records,
        out,
        extra_sections=[("Sample reconstructions", sample), ("Notes", "<p id='frag'>hi</p>")],
    )
    return out, records, index


# --------------------------------------------------------------------------- records


def test_record_roundtrip_and_nonfinite_metrics():
    rec = make_record("jpeg", 400, "ideal")
    assert PointRecord.from_dict(rec.to_dict()) == rec
    rec.metrics["psnr"] = math.inf
    text = json.dumps(to_json_safe(rec.to_dict()), allow_nan=False)
    back = PointRecord.from_dict(json.loads(text))
    assert math.isnan(back.metrics["psnr"])
    assert back.metrics["accuracy"] == rec.metrics["accuracy"]


@pytest.mark.parametrize(
    "change",
    [
        {"scheme": ""},
        {"n_images": True},
        {"n_images": -1},
        {"mean_bytes": "12"},
        {"mean_bytes": float("nan")},
        {"failure_rate": 1.5},
        {"metrics": {"psnr": "high"}},
        {"metrics": [1, 2]},
        {"settings": {"rate": object()}},
        {"git_commit": 123},
        {"created": "yesterday"},
        {"bogus": 1},
    ],
)
def test_from_dict_rejects_malformed(change):
    d = make_record("jpeg", 400, "ideal").to_dict()
    d.update(change)
    with pytest.raises(InputError):
        PointRecord.from_dict(d)


def test_from_dict_rejects_missing_field_and_non_object():
    d = make_record("jpeg", 400, "ideal").to_dict()
    del d["metrics"]
    with pytest.raises(InputError, match="metrics"):
        PointRecord.from_dict(d)
    with pytest.raises(InputError):
        PointRecord.from_dict([1, 2, 3])


def test_numpy_and_torch_scalars_become_plain(tmp_path):
    rec = make_record(
        "jpeg",
        400,
        "ideal",
        mean_bytes=np.float32(412.5),
        n_images=np.int64(256),
        metrics={"psnr": np.float32(27.5), "accuracy": torch.tensor(0.75)},
        settings={"rate": np.int64(400)},
    )
    assert type(rec.mean_bytes) is float and type(rec.n_images) is int
    assert type(rec.metrics["accuracy"]) is float and rec.settings == {"rate": 400}
    paths = write_results([rec], tmp_path)
    assert load_results(paths["json"]) == [rec]
    with paths["csv"].open(newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["metrics.psnr"] == "27.5" and row["mean_bytes"] == "412.5"


def test_lower_is_better_names():
    assert not higher_is_better("featdist[semcom-classifier]")
    assert not higher_is_better("lpips")
    assert higher_is_better("accuracy") and higher_is_better("psnr")


# --------------------------------------------------------------------------- JSON / CSV


def test_results_json_roundtrip(tmp_path):
    records = make_records()
    paths = write_results(records, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert set(doc) == {"semcom_version", "git_commit", "created", "records"}
    assert doc["git_commit"] == "abc1234"
    assert len(doc["records"]) == len(records) == 20
    assert load_results(paths["json"]) == records
    assert load_results(tmp_path) == records  # the folder works too


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '{"records": 3}',
        '{"records": [{"scheme": "jpeg"}]}',
        "",
    ],
)
def test_load_results_rejects_malformed(tmp_path, text):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(InputError):
        load_results(path)


def test_load_results_missing_file(tmp_path):
    with pytest.raises(InputError):
        load_results(tmp_path / "nope.json")


def test_results_csv_shape_and_columns(tmp_path):
    records = make_records()
    path = write_results(records, tmp_path)["csv"]
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert len(body) == 20
    assert all(len(row) == len(header) for row in body)
    assert header[:2] == ["scheme", "rate_label"]
    assert [c for c in header if c.startswith("settings.")] == [
        "settings.method",
        "settings.model",
        "settings.rate",
    ]
    assert [c for c in header if c.startswith("metrics.")] == [
        "metrics.accuracy",
        "metrics.psnr",
        "metrics.ssim",
        "metrics.featdist[semcom-classifier]",
    ]
    assert [c for c in header if c.startswith("channel_config.")] == [
        "channel_config.ber",
        "channel_config.seed",
        "channel_config.type",
    ]
    assert len(header) == 13 + 3 + 4 + 2 + 3 + 3  # 13 base columns: budget ones included
    by_name = [dict(zip(header, row, strict=True)) for row in body]
    jpeg = next(r for r in by_name if r["scheme"] == "jpeg")
    learned = next(r for r in by_name if r["scheme"] == "learned")
    assert jpeg["settings.model"] == "" and learned["settings.model"] == "tiny"
    assert learned["metrics.ssim"] == ""
    assert float(jpeg["mean_bytes"]) == records[0].mean_bytes


# --------------------------------------------------------------------------- plots


def test_plots_are_valid_pngs(report_dir):
    out, _, _ = report_dir
    paths = sorted(out.glob("plot_*.png"))
    assert [p.name for p in paths] == [
        "plot_accuracy.png",
        "plot_failure_rate.png",
        "plot_featdist_semcom-classifier.png",
        "plot_psnr.png",
        "plot_ssim.png",
    ]
    for p in paths:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 400 and im.height > 300


def test_no_failure_plot_without_failures(tmp_path):
    records = [make_record(s, r, "ideal") for s in ("jpeg", "webp") for r in (200, 800)]
    records = [
        PointRecord.from_dict({**r.to_dict(), "metrics": {"psnr": r.metrics["psnr"]}})
        for r in records
    ]
    assert [p.name for p in make_plots(records, tmp_path)] == ["plot_psnr.png"]


def test_plots_survive_odd_names(tmp_path):
    """Mathtext characters and a zero-byte point must not break matplotlib."""
    records = [
        make_record("cost $5", 200, "ch_1"),
        make_record("cost $5", 800, "ch_1"),
        make_record("_hidden", 400, "ch_1", mean_bytes=0.0),
    ]
    paths = make_plots(records, tmp_path)
    assert paths and all(p.stat().st_size > 0 for p in paths)


# --------------------------------------------------------------------------- BD-rate


def test_bd_rate_table_calls_metric_per_channel(fake_bd_rate):
    calls, _ = fake_bd_rate
    records = make_records()
    entries = bd_rate_table(records, "psnr", "jpeg")
    assert {(e.condition, e.scheme) for e in entries} == {
        (c, s) for c in CHANNELS for s in ("webp", "learned")
    }
    assert all(e.bd_rate == -10.0 and e.display() == "-10.0 %" for e in entries)
    rate_a, metric_a, rate_b, _ = calls[0]
    assert rate_a == sorted(rate_a) and len(rate_a) == 4  # anchor first, sorted by bytes
    assert len(rate_b) == 3


def test_bd_rate_table_negates_lower_is_better(fake_bd_rate):
    calls, _ = fake_bd_rate
    bd_rate_table(make_records(), "featdist[semcom-classifier]", "jpeg")
    assert all(v < 0 for v in calls[0][1])


@pytest.mark.parametrize(
    ("result", "reason"),
    [(float("nan"), "curves do not overlap"), (InputError("no overlap in psnr"), "no overlap")],
)
def test_bd_rate_table_reports_na(fake_bd_rate, result, reason):
    _, behaviour = fake_bd_rate
    behaviour["result"] = result
    entries = bd_rate_table(make_records(), "psnr", "jpeg")
    assert entries and all(e.bd_rate is None and reason in e.reason for e in entries)
    assert entries[0].display().startswith("n/a (")


def test_bd_rate_table_too_few_points_and_bad_args(fake_bd_rate):
    calls, _ = fake_bd_rate
    records = make_records() + [make_record("lonely", 400, "ideal")]
    entries = bd_rate_table(records, "psnr", "jpeg")
    lonely = next(e for e in entries if e.scheme == "lonely")
    assert lonely.bd_rate is None and "only 1 point" in lonely.reason
    assert len(calls) == 4  # the lonely scheme never reached bd_rate
    with pytest.raises(InputError):
        bd_rate_table(records, "psnr", "nope")
    with pytest.raises(InputError):
        bd_rate_table(records, "nope", "jpeg")
    assert default_anchor(records) == "jpeg"


def test_bd_rate_table_with_real_metric():
    records = [
        make_record(s, r, "ideal", mean_bytes=float(r) * mult)
        for s, mult in (("anchor", 1.0), ("half", 0.5))
        for r in (100, 200, 400, 800, 1600)
    ]
    (entry,) = bd_rate_table(records, "psnr", "anchor")
    assert entry.bd_rate is not None and entry.bd_rate == pytest.approx(-50.0, abs=1.0)
    # a lower-is-better metric: "half" is still the one needing fewer bytes
    (entry,) = bd_rate_table(records, "featdist[semcom-classifier]", "anchor")
    assert entry.bd_rate is not None and entry.bd_rate == pytest.approx(-50.0, abs=1.0)
    # a curve whose quality drops as bytes grow cannot be compared: n/a with a reason
    broken = records[:5] + [
        make_record("broken", r, "ideal", metrics={"psnr": p})
        for r, p in ((100, 30.0), (200, 25.0), (400, 28.0))
    ]
    (entry,) = bd_rate_table(broken, "psnr", "anchor")
    assert entry.bd_rate is None and entry.reason


# --------------------------------------------------------------------------- HTML


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.script = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        if tag == "script":
            self.script = True


def test_report_files_and_html(report_dir):
    out, records, index = report_dir
    assert index == out / "index.html"
    for name in ("results.json", "results.csv", "plot_psnr.png", "plot_failure_rate.png"):
        assert (out / name).is_file()
    assert load_results(out / "results.json") == records
    text = index.read_text(encoding="utf-8")
    for scheme in SCHEMES:
        assert f"<td>{scheme}</td>" in text
    for channel in CHANNELS:
        assert f"channel: {channel}" in text
    parser = _Collector()
    parser.feed(text)
    plots = sorted(p.name for p in out.glob("plot_*.png"))
    assert set(plots) <= set(parser.imgs)
    assert "samples.png" in parser.imgs  # the extra image, already inside out_dir
    assert all((out / src).is_file() for src in parser.imgs)
    assert "<p id='frag'>hi</p>" in text  # HTML fragments go in as is
    assert "abc1234" in text and "synthetic/test, 256 images" in text
    assert "BD-rate" in text and "anchor" in text


def test_html_escapes_everything(tmp_path, fake_bd_rate):
    evil = "<script>alert(1)</script>"
    records = [make_record(evil, r, "a&b") for r in (200, 800)]
    records += [make_record("jpeg", r, "a&b", rate_label='"q"<') for r in (200, 800)]
    index = write_html(records, tmp_path, plots=[], extra_sections=[("<b>t</b>", "")])
    text = index.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert not parser.script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&amp;b" in text and "&quot;q&quot;&lt;" in text and "&lt;b&gt;t&lt;/b&gt;" in text


def test_html_extra_image_outside_is_copied(tmp_path, fake_bd_rate):
    src = tmp_path / "elsewhere" / "heat map.png"
    src.parent.mkdir()
    Image.new("RGB", (8, 8)).save(src)
    out = tmp_path / "out"
    index = write_html(make_records()[:4], out, [], [("Attention", src)])
    assert (out / "extra" / "heat map.png").is_file()
    assert 'src="extra/heat%20map.png"' in index.read_text()
    with pytest.raises(InputError):
        write_html(make_records()[:4], out, [], [("Missing", tmp_path / "none.png")])
    with pytest.raises(InputError):
        write_html(make_records()[:4], out, [], anchor_scheme="nope")


def test_empty_records_rejected(tmp_path):
    with pytest.raises(InputError):
        write_report([], tmp_path)


# --------------------------------------------------------------------------- terminal


def test_print_summary_table():
    console = Console(record=True, width=160, color_system=None)
    records = make_records() + [make_record("[bold]x[/bold]", 400, "ideal")]
    print_summary(records, console=console)
    out = console.export_text()
    for scheme in (*SCHEMES, "[bold]x[/bold]"):
        assert scheme in out
    assert "bsc(ber=1e-04)" in out and "12.5%" in out and "accuracy" in out


# --------------------------------------------------------------------------- byte budgets


def test_budget_fields_roundtrip_and_old_json_defaults(tmp_path):
    rec = make_record("jpeg", 400, "ideal", target_bytes=400.0, over_budget=0.25)
    d = rec.to_dict()
    assert d["target_bytes"] == 400.0 and d["over_budget"] == 0.25
    assert PointRecord.from_dict(d) == rec
    old = make_record("jpeg", 400, "ideal").to_dict()
    del old["target_bytes"], old["over_budget"]  # a results.json from before the fields
    back = PointRecord.from_dict(old)
    assert back.target_bytes is None and back.over_budget == 0.0
    paths = write_results([rec], tmp_path)
    assert load_results(paths["json"]) == [rec]
    with paths["csv"].open(newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["target_bytes"] == "400.0" and row["over_budget"] == "0.25"


@pytest.mark.parametrize(
    "change",
    [{"over_budget": 1.5}, {"over_budget": "x"}, {"target_bytes": -3}, {"target_bytes": 0}],
)
def test_budget_fields_validated(change):
    d = {**make_record("jpeg", 400, "ideal").to_dict(), **change}
    with pytest.raises(InputError):
        PointRecord.from_dict(d)
    with pytest.raises(InputError):
        make_record("jpeg", 400, "ideal", **change)


def _budget_records() -> list[PointRecord]:
    """jpeg / webp on one channel; jpeg's cheapest point missed its byte budget."""
    out = []
    for scheme in ("jpeg", "webp"):
        for rate in (200, 400, 800, 1600):
            over = 0.5 if (scheme == "jpeg" and rate == 200) else 0.0
            out.append(
                make_record(scheme, rate, "ideal", target_bytes=float(rate), over_budget=over)
            )
    return out


def test_over_budget_points_left_out_of_bd_rate(fake_bd_rate):
    calls, _ = fake_bd_rate
    records = _budget_records()
    over = next(r for r in records if r.over_budget > 0)
    (entry,) = bd_rate_table(records, "psnr", "jpeg")
    assert entry.bd_rate == -10.0
    anchor_bytes = calls[0][0]
    assert len(anchor_bytes) == 3 and over.mean_bytes not in anchor_bytes
    # with the budget met everywhere, the point is used again
    calls.clear()
    fixed = [PointRecord.from_dict({**r.to_dict(), "over_budget": 0.0}) for r in records]
    bd_rate_table(fixed, "psnr", "jpeg")
    assert over.mean_bytes in calls[0][0]


def test_over_budget_points_left_out_of_best_vs_best(fake_bd_rate):
    from semcom.experiments.report import best_vs_best

    calls, _ = fake_bd_rate
    records = _budget_records() + [
        make_record("patch-x", r, "ideal", mean_bytes=r * 0.6, over_budget=0.1 if r == 800 else 0)
        for r in (200, 400, 800, 1600)
    ]
    (e,) = best_vs_best(records, "accuracy")
    assert e.bd_rate == -10.0
    excluded = {r.mean_bytes for r in records if r.over_budget > 0}
    for rate_a, _, rate_b, _ in calls:
        assert not excluded & set(rate_a) and not excluded & set(rate_b)


def test_over_budget_points_flagged_in_html_plots_and_summary(tmp_path, fake_bd_rate):
    from semcom.experiments.report import _plot_figure, _scheme_styles

    records = _budget_records()
    index = write_html(records, tmp_path, plots=[])
    text = index.read_text(encoding="utf-8")
    flagged = re.findall(r'<tr class="over">(.*?)</tr>', text, re.S)
    assert len(flagged) == 1 and "jpeg" in flagged[0] and "200 B" in flagged[0]
    assert 'class="num over-budget"' in flagged[0] and "⚑" in flagged[0]
    assert "50.0 %" in flagged[0]
    assert "left out of every BD-rate" in text
    # plots: the point sits at its real bytes, with a hollow marker
    styles = _scheme_styles(["jpeg", "webp"])
    fig = _plot_figure(records, "psnr", "PSNR", "t", None, styles)
    (ax,) = fig.axes
    hollow = [ln for ln in ax.get_lines() if ln.get_gid() == "over-budget:jpeg"]
    assert len(hollow) == 1
    over = next(r for r in records if r.over_budget > 0)
    assert list(hollow[0].get_xdata()) == [over.mean_bytes]
    assert hollow[0].get_markerfacecolor() in ("white", "w", (1.0, 1.0, 1.0, 1.0))
    assert not any(ln.get_gid() == "over-budget:webp" for ln in ax.get_lines())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("over byte budget" in t for t in legend)
    console = Console(record=True, width=160, color_system=None)
    print_summary(records, console=console)
    out = console.export_text()
    assert "⚑ 50.0 %" in out and "left out of BD-rate" in out


# --------------------------------------------------------------------------- one wording


def _dominating_records() -> list[PointRecord]:
    """``patch-q2``'s worst accuracy beats jpeg's best at fewer bytes: no BD-rate."""
    out = [
        make_record("jpeg", b, "ideal", mean_bytes=float(b), metrics={"accuracy": a})
        for b, a in ((200, 0.3125), (400, 0.5), (800, 0.5625))
    ]
    out += [
        make_record("patch-q2", b, "ideal", mean_bytes=float(b), metrics={"accuracy": a})
        for b, a in ((300, 0.8125), (600, 0.84375))
    ]
    return out


def test_dominates_is_said_the_same_way_everywhere(tmp_path):
    from semcom.experiments.report import best_vs_best

    records = _dominating_records()
    (entry,) = bd_rate_table(records, "accuracy", "jpeg")
    (best,) = best_vs_best(records, "accuracy")
    assert entry.bd_rate is None and entry.verdict == "dominates"
    assert best.dominates and best.ranking[0][2] == "dominates"
    assert entry.display() == best.display()  # the same pair, the same words
    assert entry.display().startswith("dominates (patch-q2 reaches 0.812 at 300 B")
    index = write_html(records, tmp_path, plots=[])
    text = index.read_text(encoding="utf-8")
    cells = re.findall(r'<td class="bd verdict[^"]*">(.*?)</td>', text, re.S)
    assert len(cells) == 2 and all(c.startswith("dominates") for c in cells)
    assert "do not overlap" not in text.split('id="bd-rate"')[1]
    console = Console(record=True, width=300, color_system=None)
    print_summary(records, console=console)
    line = next(x for x in console.export_text().splitlines() if "task BD-rate" in x)
    assert line.endswith(f": {best.display()}")


def test_no_bd_rate_reasons_are_rounded_and_reworded():
    # ranges do not overlap and neither curve is better everywhere: n/a, in our words
    records = [
        make_record("jpeg", b, "ideal", mean_bytes=float(b), metrics={"accuracy": a})
        for b, a in ((200, 0.1234567), (400, 0.2345678))
    ] + [
        make_record("late", b, "ideal", mean_bytes=float(b), metrics={"accuracy": a})
        for b, a in ((900, 0.3456789), (1800, 0.4567891))
    ]
    (entry,) = bd_rate_table(records, "accuracy", "jpeg")
    assert entry.bd_rate is None and entry.verdict == ""
    assert entry.display() == (
        "n/a (quality ranges do not overlap: late 0.346–0.457, jpeg 0.123–0.235)"
    )


# --------------------------------------------------------------------------- rounding

_LONG_NUMBER = re.compile(r"\d+\.\d{4,}")


def test_numbers_in_html_and_summary_are_rounded(tmp_path, report_dir):
    _, records, index = report_dir
    text = index.read_text(encoding="utf-8")
    body = re.sub(r"<(style|title)>.*?</\1>", "", text, flags=re.S)
    body = re.sub(r'<div class="cfg">.*?</div>', "", body)  # channel settings, as given
    visible = re.sub(r"<[^>]+>", " ", body)
    assert not _LONG_NUMBER.findall(visible)
    rec = next(r for r in records if r.scheme == "jpeg" and r.channel == "ideal")
    row = next(
        m for m in re.findall(r"<tr>(.*?)</tr>", text, re.S) if f"<td>{rec.rate_label}</td>" in m
    )
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
    assert f"{rec.metrics['psnr']:.1f}" in cells and f"{rec.metrics['accuracy']:.3f}" in cells
    assert f"{rec.mean_bytes:,.0f}" in cells and "0.0 %" in cells
    assert not any(re.fullmatch(r"\d+\.\d{2,}", c) for c in cells if "psnr" in c)
    # results.json keeps full precision
    doc = json.loads((index.parent / "results.json").read_text())
    assert doc["records"][0]["metrics"] == records[0].metrics
    console = Console(record=True, width=200, color_system=None)
    print_summary(records, console=console)
    out = console.export_text()
    assert not _LONG_NUMBER.findall(out)
    assert f" {rec.metrics['psnr']:.1f} " in out and f" {rec.metrics['accuracy']:.3f} " in out


def test_format_metric_is_metric_aware():
    from semcom.experiments.report import format_bytes, format_metric

    assert format_metric("accuracy", 0.6251) == "0.625"
    assert format_metric("psnr", 25.8234) == "25.8"
    assert format_metric("psnr", math.inf) == "∞" and format_metric("ssim", math.nan) == "–"
    assert format_metric("featdist[x]", 1.018677) == "1.019"
    assert format_metric("accuracy", 0.8, compact=True) == "0.8"
    assert format_metric("something", 1234.5678) == "1235"
    assert format_bytes(12319.0) == "12,319" and format_bytes(426.0625) == "426"


# --------------------------------------------------------------------------- plot ranges


def _with_raw(records: list[PointRecord], psnr: float = 100.0) -> list[PointRecord]:
    raw = make_record(
        "raw", 24, "ideal", mean_bytes=12319.0, metrics={"psnr": psnr, "accuracy": 0.99}
    )
    return records + [raw]


def test_plot_ranges_ignore_the_reference_point():
    from semcom.experiments.report import _plot_figure, _scheme_styles

    records = [r for r in make_records() if r.channel == "ideal"]
    for psnr in (100.0, math.inf):
        recs = _with_raw(records, psnr)
        styles = _scheme_styles(["jpeg", "webp", "learned", "raw"])
        fig = _plot_figure(recs, "psnr", "PSNR", "t", None, styles)
        (ax,) = fig.axes
        others = [r for r in recs if r.scheme != "raw"]
        top = max(r.metrics["psnr"] for r in others)
        lo_b, hi_b = min(r.mean_bytes for r in others), max(r.mean_bytes for r in others)
        xlo, xhi = ax.get_xlim()
        ylo, yhi = ax.get_ylim()
        assert xlo < lo_b and hi_b < xhi < 3 * hi_b < 12319.0
        assert top < yhi < top + 0.2 * (top - min(r.metrics["psnr"] for r in others))
        # raw is drawn on the edge, pointing right, and its true values are written
        (mark,) = [ln for ln in ax.get_lines() if ln.get_gid() == "off-scale:raw"]
        assert list(mark.get_xdata()) == [xhi] and list(mark.get_ydata()) == [yhi]
        assert mark.get_marker() == ">" and not mark.get_clip_on()
        (note,) = [t for t in ax.texts if t.get_gid() == "off-scale-note"]
        shown = "100.0 dB" if psnr == 100.0 else "∞"
        assert "raw 12,319 B" in note.get_text() and shown in note.get_text()


def test_plot_ranges_with_only_a_reference_scheme():
    from semcom.experiments.report import _plot_figure, _scheme_styles

    recs = _with_raw([])
    fig = _plot_figure(recs, "psnr", "PSNR", "t", None, _scheme_styles(["raw"]))
    (ax,) = fig.axes
    xlo, xhi = ax.get_xlim()
    ylo, yhi = ax.get_ylim()
    assert xlo < 12319.0 < xhi and ylo < 100.0 < yhi
    assert not [t for t in ax.texts if t.get_gid() == "off-scale-note"]


# --------------------------------------------------------------------------- samples.png


def _fake_rows(k=3):
    from semcom.experiments.samples import _row_label

    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    names = [("avif", "240 B"), ("patch-mean[pixels=q2]", "r=0.25"), ("raw", "24 bpp")]
    rows = [("original", [img] * k, [])]
    for i, (name, rate) in enumerate(names):
        sizes = [f"{100 * (i + 1) + c:,} B" for c in range(k)]
        rows.append((_row_label(name, rate), [img + i] * k, sizes))
    return rows


def test_samples_labels_sit_on_their_own_images():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from semcom.experiments.samples import draw_reconstructions

    rows = _fake_rows()
    fig = draw_reconstructions(rows)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    k = len(rows[0][1])
    assert len(axes) == len(rows) * k
    grid = [axes[r * k : (r + 1) * k] for r in range(len(rows))]
    for r, (label, _, sizes) in enumerate(rows):
        first = grid[r][0]
        ylabel = first.yaxis.label
        assert ylabel.get_text() == label
        box, row_box = ylabel.get_window_extent(renderer), first.get_window_extent(renderer)
        assert row_box.y0 - 1 <= box.y0 and box.y1 <= row_box.y1 + 1, f"row {r} label spills"
        assert box.x1 <= row_box.x0 + 1  # left of its row
        for c, ax in enumerate(grid[r]):
            texts = [t for t in ax.texts if t.get_gid() == "size"]
            assert [t.get_text() for t in texts] == ([sizes[c]] if sizes else [])
            for t in texts:  # inside its own image
                tb, ab = t.get_window_extent(renderer), ax.get_window_extent(renderer)
                assert ab.x0 <= tb.x0 and tb.x1 <= ab.x1 and ab.y0 <= tb.y0 and tb.y1 <= ab.y1
            assert ax.get_title() == ""  # nothing between rows to be misread


def test_reconstruction_rows_follow_scheme_order(tmp_path):
    from semcom.experiments.samples import reconstruction_figure, reconstruction_rows
    from semcom.experiments.sweep import synthetic_evalset

    images = synthetic_evalset(2).images
    rows = reconstruction_rows(images, ["raw", "jpeg"])
    assert [label.split("\n")[0] for label, _, _ in rows] == ["original", "raw", "jpeg"]
    assert len(set(rows[1][2])) == 1 and rows[1][2][0].endswith(" B")  # raw: fixed size
    assert rows[2][0] == "jpeg\n@ 240 B" and len(rows[2][2]) == 2
    # jpeg cannot fit 240 B: the smallest message is shown, marked as over the budget
    assert all(re.fullmatch(r"[\d,]+ B( \(> 240\))?", n) for n in rows[2][2])
    path = reconstruction_figure(images, ["raw", "jpeg"], tmp_path / "s.png")
    with Image.open(path) as im:
        assert im.height > im.width  # 3 rows x 2 columns


# --------------------------------------------------------------------------- merging runs


def test_merge_results_same_file_twice(tmp_path):
    from semcom.experiments.report import merge_results

    records = make_records()
    write_results(records, tmp_path / "b1")
    notes: list[str] = []
    merged = merge_results([tmp_path / "b1", tmp_path / "b1"], notes=notes)
    assert merged == records and any("read once" in n for n in notes)
    notes.clear()
    assert (
        merge_results([tmp_path / "b1", tmp_path / "b1" / "results.json"], notes=notes) == records
    )
    assert len(notes) == 1


def test_merge_results_copies_and_reruns_are_deduplicated(tmp_path):
    from semcom.experiments.report import merge_results

    records = make_records()
    write_results(records, tmp_path / "b1")
    # the same run copied elsewhere, and a rerun (new timing and time stamp)
    rerun = [
        PointRecord.from_dict(
            {**r.to_dict(), "timing": {"encode_ms": 9.0}, "created": "2026-06-01T00:00:00+00:00"}
        )
        for r in records
    ]
    write_results(records, tmp_path / "copy")
    write_results(rerun[:5] + [make_record("avif", 300, "ideal")], tmp_path / "b2")
    notes: list[str] = []
    merged = merge_results([tmp_path / "b1", tmp_path / "copy", tmp_path / "b2"], notes=notes)
    assert merged == records + [make_record("avif", 300, "ideal")]
    assert any("20 duplicate records" in n and "copy" in n for n in notes)
    assert any("5 duplicate records" in n and "b2" in n for n in notes)
    # a different seed is a different point: kept
    other = [PointRecord.from_dict({**r.to_dict(), "seed": 1}) for r in records[:3]]
    write_results(other, tmp_path / "seed1")
    assert len(merge_results([tmp_path / "b1", tmp_path / "seed1"], notes=[])) == 23


def test_merge_results_refuses_conflicting_runs(tmp_path):
    from semcom.experiments.report import merge_results

    records = make_records()
    write_results(records, tmp_path / "b1")
    changed = records[0].to_dict()
    changed["metrics"] = {**changed["metrics"], "accuracy": 0.123456}
    write_results([PointRecord.from_dict(changed)], tmp_path / "b2")
    with pytest.raises(InputError, match="conflicting results.*jpeg @ 200 B.*cannot be told apart"):
        merge_results([tmp_path / "b1", tmp_path / "b2"])
    with pytest.raises(InputError):
        merge_results([])


def test_merge_results_prints_notes_when_not_collected(tmp_path, capsys):
    from semcom.experiments.report import merge_results

    write_results(make_records(), tmp_path / "b1")
    merge_results([tmp_path / "b1", tmp_path / "b1"])
    assert "read once" in capsys.readouterr().err


def test_write_report_writes_repeated_records_once(tmp_path, capsys, fake_bd_rate):
    records = [r for r in make_records() if r.channel == "ideal"]
    index = write_report(records + records, tmp_path)
    assert load_results(tmp_path) == records
    assert "duplicate records" in capsys.readouterr().err
    text = index.read_text(encoding="utf-8")
    assert text.count("<td>jpeg</td><td>200 B</td>") == 1


# --------------------------------------------------------------------------- roles, not names


def _role_curve(scheme: str, role: str, family: str, mult: float) -> list[PointRecord]:
    """Five points of one scheme: accuracy 0.1 .. 0.5 at ``mult`` x 200 .. 3200 bytes."""
    return [
        point_record(
            scheme=scheme,
            role=role,
            family=family,
            rate_label=f"{b} B",
            mean_bytes=b * mult,
            metrics={"accuracy": 0.1 * math.log2(b / 100), "psnr": 20.0 + math.log2(b)},
        )
        for b in (200, 400, 800, 1600, 3200)
    ]


@pytest.mark.parametrize(
    ("baseline", "proposed", "reference"),
    [
        ("toy-codec", "toy-new", "toy-ref"),
        ("patch-mean", "jpeg", "webp"),  # names that once meant other roles: roles decide
    ],
)
def test_a_new_scheme_is_compared_by_its_role(tmp_path, baseline, proposed, reference):
    records = (
        _role_curve(baseline, "baseline", "toy", 1.0)
        + _role_curve(proposed, "proposed", "toy2", 0.5)  # half the bytes: -50 %
        + _role_curve(reference, "reference", "toy-ref", 0.25)  # better still: never compared
    )
    assert default_anchor(records) == baseline
    (best,) = best_vs_best(records, "accuracy")
    assert (best.baseline, best.candidate) == (baseline, proposed)
    assert best.bd_rate == pytest.approx(-50.0, abs=0.5)
    assert [s for s, _, _ in best.ranking] == [proposed]
    # explicit lists still work, and a reference is left out even when named
    (swapped,) = best_vs_best(records, "accuracy", [baseline, reference], [proposed])
    assert (swapped.baseline, swapped.candidate) == (proposed, baseline)
    assert [s for s, _, _ in swapped.ranking] == [baseline]
    with pytest.raises(InputError):
        best_vs_best(records, "accuracy", candidates=proposed)  # a name, not a list

    (entry,) = bd_rate_table(records, "accuracy", baseline)
    assert entry.scheme == proposed and entry.bd_rate == pytest.approx(-50.0, abs=0.5)
    with pytest.raises(InputError, match="reference"):
        bd_rate_table(records, "accuracy", reference)

    index = write_report(records, tmp_path)
    text = index.read_text(encoding="utf-8")
    best_html = text.split('<table class="best">')[1].split("</table>")[0]
    assert f"<td>{proposed}</td><td>{baseline}</td>" in best_html
    assert reference not in best_html
    assert f"toy2: {proposed}" in text and f"toy: {baseline}" in text  # families, from records
    bd_html = text.split('id="bd-rate"')[1].split('<table class="bd">', 1)[1]
    assert f"<td>{proposed}</td>" in bd_html and f"<td>{reference}</td>" not in bd_html
    assert f"Reference schemes ({reference}) are plotted, never compared." in text
    summary = text.split('id="summary"')[1].split('id="plots"')[0]
    assert summary.count(f"<td>{reference}</td>") == 5  # reported, like every scheme

    # plotted, but the axes come from the compared schemes
    styles = _scheme_styles([baseline, proposed, reference])
    fig = _plot_figure(records, "psnr", "PSNR", "t", None, styles)
    (ax,) = fig.axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [baseline, proposed, reference]
    assert ax.get_xlim()[0] > min(r.mean_bytes for r in records if r.scheme == reference)

    console = Console(record=True, width=300, color_system=None)
    print_summary(records, console=console)
    (line,) = [x for x in console.export_text().splitlines() if "task BD-rate" in x]
    assert f"best proposed scheme {proposed} vs best baseline {baseline}: -" in line


def test_baselines_that_cannot_be_ranked_go_to_the_anchor():
    # one point each on a Pareto front: no BD-rate between the baselines at all
    records = [
        point_record(scheme=s, role="baseline", mean_bytes=b, metrics={"accuracy": a})
        for s in ("first", "second")
        for b, a in ((300, 0.5), (600, 0.4))
    ] + _role_curve("new", "proposed", "toy", 1.0)
    assert [e.baseline for e in best_vs_best(records, "accuracy")] == ["first"]
    assert [e.baseline for e in best_vs_best(records, "accuracy", anchor_scheme="second")] == [
        "second"
    ]


def test_families_share_a_marker_and_keep_their_colours():
    styles = _scheme_styles(["a", "b", "c"], {"a": "f", "b": "f", "c": "g"})
    assert styles["a"][1] == styles["b"][1] != styles["c"][1]
    assert len({styles[s][0] for s in "abc"}) == 3
    assert len({m for _, m in _scheme_styles(["a", "b", "c"]).values()}) == 3


def test_cost_and_session_columns_only_when_recorded(tmp_path, report_dir, fake_bd_rate):
    sessions = {"mean": 1.5, "max": 2, "bytes_per_step": [300.0, 120.0]}
    sessions["sessions_per_step"] = [8, 4]
    records = [
        make_record("patch-x", r, "ideal", cost={"patch_fraction": r / 1600}, messages=sessions)
        for r in (200, 800)
    ] + [make_record("jpeg", r, "ideal") for r in (200, 800)]
    paths = write_results(records, tmp_path)
    with paths["csv"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["cost.patch_fraction"] == "0.125" and rows[2]["cost.patch_fraction"] == ""
    assert rows[0]["messages.mean"] == "1.5" and rows[0]["messages.max"] == "2"
    assert json.loads(rows[0]["messages.bytes_per_step"]) == [300.0, 120.0]
    assert rows[3]["messages.mean"] == ""
    text = write_html(records, tmp_path, plots=[]).read_text(encoding="utf-8")
    assert ">messages</th>" in text and ">patch_<wbr>fraction</th>" in text
    row = next(m for m in re.findall(r"<tr>(.*?)</tr>", text, re.S) if "patch-x" in m)
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
    assert "1.5" in cells and "0.125" in cells
    jpeg = next(m for m in re.findall(r"<tr>(.*?)</tr>", text, re.S) if "<td>jpeg</td>" in m)
    assert jpeg.count(">–</td>") >= 2  # no sessions, no cost recorded
    # records without them: no such columns (today's reports unchanged)
    plain = report_dir[2].read_text(encoding="utf-8")
    assert "messages</th>" not in plain and "cost: " not in plain


def test_hostile_session_and_direction_fields_are_refused() -> None:
    from semcom.errors import InputError
    from semcom.experiments.records import PointRecord

    good = point_record(scheme="jpeg", metrics={"accuracy": 0.5}).to_dict()
    for bad in (
        {"lower_is_better": ["psnr"]},  # a metric the record does not have
        {"judges": {"miou": "x"}},
        {"messages": {"mean": -3}},
        {"messages": {"bytes_per_step": "z"}},
        {"messages": {"what": 1}},
    ):
        with pytest.raises(InputError):
            PointRecord.from_dict({**good, **bad})


def test_one_record_cannot_turn_a_metric_around() -> None:
    from semcom.experiments.report.groups import _lower

    a = point_record(scheme="a", metrics={"accuracy": 0.5}, lower_is_better=["accuracy"])
    b = point_record(scheme="b", metrics={"accuracy": 0.6})
    assert _lower([a, b]) == frozenset() and _lower([a]) == {"accuracy"}
