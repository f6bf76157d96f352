"""The sweep: records per point, honest failures, judges agree with direct evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from semcom.experiments.sweep import SweepConfig, run_sweep, synthetic_evalset
from semcom.judges import default_judges
from semcom.judges.scoring import score
from semcom.schemes.session import Decoded


@pytest.fixture(scope="module")
def setup():
    return synthetic_evalset(24), default_judges()


def judge(evalset, x_hat, judges) -> dict[str, float]:
    """The judges' metrics of reconstructions ``x_hat`` (N, 3, H, W), scored directly."""
    finals = [Decoded(x_hat=x) for x in x_hat]
    got = score(evalset.images, evalset.labels, evalset.masks, finals, ("x_hat",), judges)
    return got.metrics


def has_segmenter(judges) -> bool:
    return any(j.yields == "segmentation" for j in judges)


def test_sweep_records(setup, tmp_path) -> None:
    evalset, judges = setup
    cfg = SweepConfig(
        schemes=["jpeg", "raw"],
        channels=["ideal", "bsc:3e-3"],
        rates={"jpeg": [450, 1200]},
    )
    records = run_sweep(cfg, evalset, judges, progress=False)
    assert len(records) == (2 + 1) * 2
    by_key = {(r.scheme, r.settings["rate"], r.channel_config["type"]): r for r in records}
    ideal_lo, ideal_hi = by_key[("jpeg", 450, "ideal")], by_key[("jpeg", 1200, "ideal")]
    assert ideal_lo.mean_bytes <= 450 and ideal_hi.mean_bytes <= 1200
    assert ideal_lo.mean_bytes < ideal_hi.mean_bytes
    assert ideal_lo.failure_rate == 0.0
    assert ideal_hi.metrics["psnr"] > ideal_lo.metrics["psnr"]
    # at BER 3e-3 almost every ~800-byte message has an error the CRCs catch
    assert by_key[("jpeg", 1200, "bsc")].failure_rate > 0.5
    expected = {"accuracy", "psnr", "ssim", "featdist[semcom-classifier]"}
    if has_segmenter(judges):
        expected |= {"miou", "pixel_accuracy"}
    for r in records:
        assert expected <= set(r.metrics)
        assert r.n_images == 24 and r.version
        json.dumps(r.to_dict())


def test_raw_over_ideal_matches_judges_on_originals(setup) -> None:
    evalset, judges = setup
    cfg = SweepConfig(schemes=["raw"], channels=["ideal"])
    (rec,) = run_sweep(cfg, evalset, judges, progress=False)
    direct = judge(evalset, evalset.images, judges)
    assert rec.metrics["accuracy"] == pytest.approx(direct["accuracy"])
    if has_segmenter(judges):
        assert rec.metrics["miou"] == pytest.approx(direct["miou"])
    assert rec.metrics["psnr"] == pytest.approx(100.0)  # identical images, capped


def test_fallback_is_judged_not_skipped(setup) -> None:
    """Messages the receiver cannot decode are judged as a mid-grey image, not dropped."""
    evalset, judges = setup
    cfg = SweepConfig(schemes=["raw"], channels=["bsc:0.2"])  # every raw message is hit
    (rec,) = run_sweep(cfg, evalset, judges, progress=False)
    assert rec.failure_rate == 1.0
    grey = judge(evalset, torch.full_like(evalset.images, 128), judges)
    assert rec.metrics == pytest.approx(grey)
    assert rec.metrics["accuracy"] < 0.5


def test_budget_misses_are_recorded(setup) -> None:
    """A budget below the codec's floor: the smallest message is sent and the point marked."""
    evalset, judges = setup
    cfg = SweepConfig(schemes=["jpeg", "patch-mean"], channels=["ideal"],
                      rates={"jpeg": [200, 600], "patch-mean": [0.25]})  # fmt: skip
    recs = {(r.scheme, r.settings["rate"]): r for r in run_sweep(cfg, evalset, judges, False)}
    low, ok = recs[("jpeg", 200)], recs[("jpeg", 600)]
    assert low.target_bytes == 200 and low.over_budget == 1.0 and low.mean_bytes > 200
    assert low.failure_rate == 0.0  # sent and decoded, only over budget
    assert ok.target_bytes == 600 and ok.over_budget == 0.0 and ok.mean_bytes <= 600
    patch = recs[("patch-mean", 0.25)]
    assert patch.target_bytes is None and patch.over_budget == 0.0


def test_demo_writes_the_whole_report(tmp_path) -> None:
    """The main job end to end on a few images: every available scheme (with the extra
    q2 configuration), the figures, and the headline BD-rate in the summary."""
    from semcom.experiments.demo import DEMO_EXTRA, available_schemes, run_demo
    from semcom.experiments.report import load_results

    index = run_demo(tmp_path / "r", n_images=4, channels=("ideal",), progress=False)
    assert index.is_file()
    schemes = {r.scheme for r in load_results(tmp_path / "r")}
    avail = set(available_schemes())
    assert avail <= schemes
    if "patch-mean" in avail:
        assert set(DEMO_EXTRA) <= schemes
        assert (tmp_path / "r" / "attention.png").is_file()
        assert "Attention-guided patch transmission" in index.read_text()
    assert (tmp_path / "r" / "samples.png").is_file()
