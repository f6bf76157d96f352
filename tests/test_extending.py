"""The walk-through of docs/architecture.md: a scheme, a judge and a channel added from
outside the package (tests/extending/toys.py) run through the sweep, the report and the
command line without any change to them."""

from __future__ import annotations

import json

import pytest

import tests.extending.toys as toys
from semcom.cli import main
from semcom.experiments.sweep import SweepConfig, run_sweep, synthetic_evalset
from semcom.judges import create_judge, formula_judges, list_judges

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sweep_and_report_take_the_new_parts(tmp_path) -> None:
    from semcom.experiments.report import write_report

    evalset = synthetic_evalset(16)
    judges = [*formula_judges(), create_judge("mae")]
    cfg = SweepConfig(
        schemes=["mean-colour", "jpeg"],
        channels=["ideal", "drop:0.5"],
        rates={"jpeg": [400, 800, 1600]},
    )
    recs = {
        (r.scheme, r.channel, r.settings["rate"]): r for r in run_sweep(cfg, evalset, judges, False)
    }
    ideal = recs[("mean-colour", "ideal", 1.0)]
    assert ideal.mean_bytes < 40 and ideal.failure_rate == 0
    x = evalset.images.float() / 255
    means = x.mean((2, 3), keepdim=True)
    want = float((x - (means * 255).round() / 255).abs().mean((1, 2, 3)).mean())
    assert ideal.metrics["mae"] == pytest.approx(want, rel=1e-5)
    assert ideal.judges["mae"] == "mae" and ideal.lower_is_better == ["mae"]
    dropped = recs[("mean-colour", "drop(p=0.5)", 1.0)]
    assert 0.2 < dropped.failure_rate < 0.8  # about half the messages lost, judged as grey
    index = write_report(list(recs.values()), tmp_path / "r", screenshot=False)
    html = index.read_text()
    assert "mean-colour" in html and "drop(p=0.5)" in html
    assert (tmp_path / "r" / "plot_mae.png").is_file()


def test_command_line_takes_the_new_parts(tmp_path, capsys) -> None:
    assert "mae" in list_judges()
    assert main(["judges"]) == 0 and "mae" in capsys.readouterr().out
    assert main(["channels"]) == 0 and "drop" in capsys.readouterr().out
    out = tmp_path / "r"
    rc = main([
        "bench", "--schemes", "mean-colour,jpeg[rates=500/1000]", "--channels", "ideal,drop:0.3",
        "--judge", "mae", "--n-images", "8", "-o", str(out), "--no-progress",
    ])  # fmt: skip
    assert rc == 0
    records = json.loads((out / "results.json").read_text())
    records = records["records"] if isinstance(records, dict) else records
    assert {r["scheme"] for r in records} == {"mean-colour", "jpeg"}
    assert all("mae" in r["metrics"] for r in records)
    assert toys.MeanColourScheme.name == "mean-colour"


def test_plugins_named_in_the_environment_reach_the_command_line() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SEMCOM_PLUGINS": "tests.extending.toys"}
    run = [sys.executable, "-m", "semcom", "judges"]
    out = subprocess.run(run, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "mae" in out.stdout, out.stderr
    env["SEMCOM_PLUGINS"] = "no_such_plugin_module"
    out = subprocess.run(run, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no_such_plugin" in out.stderr
