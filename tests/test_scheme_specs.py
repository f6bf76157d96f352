"""Scheme specs (``name[key=value,...]``), checkpoint-path models, fine-tuned judges,
the headline best-vs-best BD-rate and the attention figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from semcom.errors import InputError
from semcom.experiments.records import PointRecord
from semcom.experiments.report import bd_rate_table, best_vs_best, pareto_front
from semcom.schemes import create_scheme, parse_scheme_spec, split_scheme_list

# ----------------------------------------------------------------------------- specs


def test_parse_spec_values_and_label() -> None:
    name, opts, label = parse_scheme_spec("patch-mean[pixels=webp:75, seed=3, paste_received=true]")
    assert name == "patch-mean"
    assert opts == {"pixels": "webp:75", "seed": 3, "paste_received": True}
    assert label == "patch-mean[pixels=webp:75,seed=3,paste_received=true]"
    assert parse_scheme_spec("jpeg") == ("jpeg", {}, None)
    # rates= and label= are not constructor options and stay out of the automatic label
    assert parse_scheme_spec("jpeg[rates=300/600]") == ("jpeg", {"rates": "300/600"}, None)
    assert parse_scheme_spec("patch-mean[label=mine,rates=0.5]")[2] == "mine"


@pytest.mark.parametrize(
    "bad",
    ["jpeg[", "jpeg]", "[x=1]", "jpeg[x]", "jpeg[x=1,x=2]", "jpeg[a=1]]", "jpeg[1a=2]", ""],
)
def test_malformed_specs_raise_input_error(bad: str) -> None:
    with pytest.raises(InputError):
        parse_scheme_spec(bad)


def test_split_scheme_list_keeps_bracketed_commas() -> None:
    text = "jpeg, patch-mean[pixels=q3,rates=0.25/0.5],webp,,"
    assert split_scheme_list(text) == ["jpeg", "patch-mean[pixels=q3,rates=0.25/0.5]", "webp"]


def test_create_scheme_from_spec() -> None:
    s = create_scheme("patch-mean[pixels=q3,rates=0.25/0.5]")
    assert s.pixels.kind == "q" and s.pixels.param == 3
    assert s.default_rates == (0.25, 0.5)
    assert s.label == "patch-mean[pixels=q3]" and s.name == "patch-mean"
    j = create_scheme("jpeg[rates=300/700,label=jpeg-lo]")
    assert j.default_rates == (300.0, 700.0) and j.label == "jpeg-lo"
    assert create_scheme("webp").label == "webp"
    # keyword arguments override spec options
    assert create_scheme("patch-mean[pixels=q3]", pixels="raw").pixels.kind == "raw"


@pytest.mark.parametrize(
    "bad",
    ["jpeg[quality=3]", "patch-mean[rates=0/0.5]", "patch-mean[rates=a/b]", "nope[x=1]"],
)
def test_create_scheme_rejects_bad_options(bad: str) -> None:
    with pytest.raises(InputError):
        create_scheme(bad)


# ------------------------------------------------------------- checkpoint-path models


def test_patch_scheme_takes_checkpoint_paths(tmp_path: Path) -> None:
    from semcom.models import create_model
    from semcom.models.checkpoint import save_checkpoint
    from semcom.models.zoo import is_checkpoint_path, load_model

    torch.manual_seed(0)
    vit = create_model("vit-edge-synth", num_classes=5, depth=1)
    path = save_checkpoint(vit, tmp_path / "vit.safetensors")
    assert is_checkpoint_path(path) and not is_checkpoint_path("vit-synth")
    loaded = load_model(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x)["logits"], vit.eval()(x)["logits"])

    s = create_scheme(f"patch-mean[vit={path},decoder=none]")
    assert s.unavailable_reason() is None
    imgs = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    want = vit(imgs.float() / 255.0, return_attention="mean")["attention"]
    assert torch.allclose(s.scores(imgs), want / want.sum(1, keepdim=True), atol=1e-6)
    out = s.decompress(s.compress(imgs[0], 0.25))
    assert out["x_hat"].shape == (3, 64, 64) and int(out["mask"].sum()) == 16

    missing = create_scheme(f"patch-mean[vit={tmp_path / 'nope.safetensors'}]")
    assert "nope.safetensors" in (missing.unavailable_reason() or "")
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")


def test_bench_refuses_a_missing_checkpoint_before_work(tmp_path: Path) -> None:
    from semcom.experiments.demo import run_bench

    with pytest.raises(InputError, match="cannot run"):
        run_bench(
            schemes=[f"patch-mean[vit={tmp_path / 'x.safetensors'}]"],
            channels=["ideal"],
            rates=None,
            dataset="synthetic",
            data_root=None,
            split="test",
            n_images=2,
            size=64,
            classifier=None,
            segmenter=None,
            seed=0,
            out=tmp_path / "r",
            progress=False,
        )


# ------------------------------------------------------------------ fine-tuned judge


def test_finetuned_judge_adds_accuracy_ft() -> None:
    from semcom.experiments.sweep import synthetic_evalset
    from semcom.judges.builtin import ClassifierJudge
    from semcom.judges.scoring import judge_reconstructions

    torch.manual_seed(0)
    ev = synthetic_evalset(12)

    class Fixed(torch.nn.Module):
        def __init__(self, cls: int) -> None:
            super().__init__()
            self.cls = cls

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(x.shape[0], 12)
            out[:, self.cls] = 1.0
            return out

    labels = ev.labels.tolist()
    common = max(set(labels), key=labels.count)
    base = ClassifierJudge(Fixed(common), "base", ("accuracy",))
    ft = ClassifierJudge(Fixed(common + 1), "ft", ("accuracy_ft",))
    args = (ev.images, ev.images, ev.labels, ev.masks)
    assert judge_reconstructions(base, *args) == {"accuracy": labels.count(common) / 12}
    assert judge_reconstructions(ft, *args) == {"accuracy_ft": labels.count(common + 1) / 12}
    assert judge_reconstructions(ft, ev.images, ev.images, None, None) == {}  # no labels


# ------------------------------------------------------------------ best vs best


def test_pareto_front() -> None:
    xs, ys = pareto_front([100, 200, 300, 400, 400], [0.5, 0.7, 0.7, 0.65, 0.9])
    assert (xs, ys) == ([100, 200, 400], [0.5, 0.7, 0.9])
    assert pareto_front([1, 2, 3], [3.0, 1.0, 2.0], higher=False) == ([1, 2], [3.0, 1.0])
    assert pareto_front([], []) == ([], [])


def _rec(scheme: str, nbytes: float, acc: float) -> PointRecord:
    from conftest import point_record

    return point_record(
        scheme=scheme,
        settings={"rate": nbytes},
        rate_label=f"{nbytes:g}",
        n_images=100,
        mean_bytes=nbytes,
        metrics={"accuracy": acc},
    )


def _curve(scheme: str, mult: float, saturate_at: float | None = None) -> list[PointRecord]:
    out = []
    for b in (200, 400, 800, 1600, 3200):
        acc = 0.1 * math.log2(b / 100)  # 0.1 .. 0.5
        if saturate_at is not None:
            acc = min(acc, saturate_at)
        out.append(_rec(scheme, b * mult, acc))
    return out


def test_best_vs_best_picks_both_winners() -> None:
    recs = (
        _curve("jpeg", 1.0)
        + _curve("webp", 0.8)  # the best codec: 20 % fewer bytes than jpeg
        + _curve("avif", 0.9)
        + _curve("patch-good", 0.5)  # 0.5 / 0.8 - 1 = -37.5 % vs webp
        + _curve("patch-bad", 1.2)
        + _curve("patch-flat", 0.4, saturate_at=0.1)  # one point on its Pareto front
    )
    (e,) = best_vs_best(recs, "accuracy")
    assert e.baseline == "webp" and e.candidate == "patch-good"
    assert e.bd_rate == pytest.approx(-37.5, abs=0.5)
    ranked = {s: (v, n) for s, v, n in e.ranking}
    assert ranked["patch-bad"][0] == pytest.approx(50.0, abs=0.5)
    assert ranked["patch-flat"][0] is None and e.ranking[-1][0] == "patch-flat"
    assert "1 point" in ranked["patch-flat"][1] and not e.dominates
    assert e.display() == f"{e.bd_rate:+.1f} %"


def test_best_vs_best_reports_domination_without_overlap() -> None:
    # the candidate's worst accuracy beats the codec's best, at fewer bytes: no BD-rate
    # (the quality ranges do not overlap), but it "dominates"
    codec = [_rec("webp", b, a) for b, a in ((200, 0.3), (400, 0.5), (800, 0.6))]
    better = [_rec("patch-q2", b, a) for b, a in ((300, 0.8), (600, 0.85))]
    worse = [_rec("patch-bad", b, a) for b, a in ((300, 0.1), (900, 0.2))]
    (e,) = best_vs_best(codec + better + worse, "accuracy")
    assert e.candidate == "patch-q2" and e.dominates and e.bd_rate is None
    assert "0.8 at 300 B" in e.display() and "0.6 at 800 B" in e.display()
    notes = {s: n for s, _, n in e.ranking}
    assert notes == {"patch-q2": "dominates", "patch-bad": "dominated"}


def test_bd_rate_table_uses_pareto_front() -> None:
    # a saturating anchor (repeated top value) still yields a finite BD-rate
    recs = _curve("jpeg", 1.0, saturate_at=0.4) + _curve("webp", 0.5)
    (entry,) = bd_rate_table(recs, "accuracy", "jpeg")
    assert entry.bd_rate == pytest.approx(-50.0, abs=0.5)


def test_best_vs_best_needs_both_sides() -> None:
    assert best_vs_best(_curve("jpeg", 1.0) + _curve("webp", 0.5), "accuracy") == []
    with pytest.raises(InputError):
        best_vs_best(_curve("jpeg", 1.0), "miou")


# ------------------------------------------------------------------ attention figure


def test_attention_figure_writes_png(tmp_path: Path) -> None:
    from PIL import Image

    from semcom.experiments.samples import attention_figure
    from semcom.experiments.sweep import synthetic_evalset

    images = synthetic_evalset(2).images
    path = attention_figure(images, tmp_path / "att.png", rate=0.25)
    with Image.open(path) as im:
        w, h = im.size
    assert w > h > 100  # 2 rows x 6 columns
