"""The sweep: records per point, honest failures, judges agree with direct evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from semcom.experiments.sweep import SweepConfig, judge, run_sweep, synthetic_evalset, zoo_judges


@pytest.fixture(scope="module")
def setup():
    return synthetic_evalset(24), zoo_judges()


def test_sweep_records(setup, tmp_path) -> None:
    evalset, judges = setup
    cfg = SweepConfig(
        schemes=["jpeg", "raw"],
        channels=["ideal", "bsc:3e-3"],
        rates={"jpeg": [250, 800]},
    )
    records = run_sweep(cfg, evalset, judges, progress=False)
    assert len(records) == (2 + 1) * 2
    by_key = {(r.scheme, r.settings["rate"], r.channel_config["type"]): r for r in records}
    ideal_lo, ideal_hi = by_key[("jpeg", 250, "ideal")], by_key[("jpeg", 800, "ideal")]
    assert ideal_lo.mean_bytes <= 250 and ideal_hi.mean_bytes <= 800
    assert ideal_lo.mean_bytes < ideal_hi.mean_bytes
    assert ideal_lo.failure_rate == 0.0
    assert ideal_hi.metrics["psnr"] > ideal_lo.metrics["psnr"]
    # at BER 3e-3 almost every ~800-byte message has an error the CRCs catch
    assert by_key[("jpeg", 800, "bsc")].failure_rate > 0.5
    for r in records:
        assert {"accuracy", "miou", "pixel_accuracy", "psnr", "ssim"} <= set(r.metrics)
        assert r.n_images == 24 and r.version
        json.dumps(r.to_dict())


def test_raw_over_ideal_matches_judges_on_originals(setup) -> None:
    evalset, judges = setup
    cfg = SweepConfig(schemes=["raw"], channels=["ideal"])
    (rec,) = run_sweep(cfg, evalset, judges, progress=False)
    direct = judge(evalset, evalset.images, judges)
    assert rec.metrics["accuracy"] == pytest.approx(direct["accuracy"])
    assert rec.metrics["miou"] == pytest.approx(direct["miou"])
    assert rec.metrics["psnr"] == pytest.approx(100.0)  # identical images, capped


def test_fallback_is_judged_not_skipped(setup) -> None:
    evalset, judges = setup
    grey = torch.full_like(evalset.images, 128)
    m = judge(evalset, grey, judges)
    assert m["accuracy"] < 0.5
