"""The report writer: records, results.json/.csv, plots, BD-rate tables, index.html."""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from semcom.errors import InputError
from semcom.experiments.records import PointRecord, higher_is_better, to_json_safe
from semcom.experiments.report import (
    bd_rate_table,
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
        dataset="synthetic",
        split="test",
        n_images=256,
        seed=0,
        mean_bytes=nbytes,
        mean_channel_bytes=nbytes * 1.1,
        bpp=nbytes * 8 / 64**2,
        metrics=metrics,
        failure_rate=0.125 if (noisy and scheme == "jpeg") else 0.0,
        timing={"encode_ms": 1.25, "decode_ms": 0.5},
        version="0.1.0",
        git_commit="abc1234",
        created="2026-05-09T07:35:25+00:00",
    )
    fields.update(overrides)
    return PointRecord(**fields)


def make_records() -> list[PointRecord]:
    return [
        make_record(scheme, rate, channel)
        for channel in CHANNELS
        for scheme, (rates, _, _) in SCHEMES.items()
        for rate in rates
    ]


@pytest.fixture
def fake_bd_rate(monkeypatch):
    """Replace semcom.metrics.bd_rate (or the whole module, if absent) with a recorder."""
    calls: list[tuple] = []
    behaviour: dict = {"result": -10.0}

    def bd_rate(rate_a, metric_a, rate_b, metric_b):
        calls.append((list(rate_a), list(metric_a), list(rate_b), list(metric_b)))
        result = behaviour["result"]
        if isinstance(result, Exception):
            raise result
        return result

    try:
        import semcom.metrics
    except ImportError:
        module = types.ModuleType("semcom.metrics")
        monkeypatch.setitem(sys.modules, "semcom.metrics", module)
    else:
        module = semcom.metrics
    monkeypatch.setattr(module, "bd_rate", bd_rate, raising=False)
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
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
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
    assert len(header) == 11 + 3 + 4 + 2 + 3 + 3
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
    metrics = pytest.importorskip("semcom.metrics")
    if not hasattr(metrics, "bd_rate"):
        pytest.skip("semcom.metrics.bd_rate not written yet")
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
