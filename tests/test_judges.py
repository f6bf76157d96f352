"""Judges as plug-ins: the registry and specs, class maps between label sets, resizing,
metric names that collide, and what `semcom receive --judge` says."""

from __future__ import annotations

import json

import pytest
import torch

from semcom.errors import InputError
from semcom.experiments.sweep import synthetic_evalset
from semcom.judges import create_judge, default_judges, list_judges, parse_judge_spec
from semcom.judges.builtin import ClassifierJudge
from semcom.judges.scoring import judge_reconstructions, score
from semcom.schemes.session import Decoded


class Oracle(torch.nn.Module):
    """Answers ``labels[i]`` for the i-th image of each call (in a permuted label set)."""

    def __init__(self, labels: torch.Tensor, perm: torch.Tensor, n_classes: int) -> None:
        super().__init__()
        self.labels, self.perm, self.n = labels, perm, n_classes
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        out = torch.zeros(x.shape[0], self.n)
        out[torch.arange(x.shape[0]), self.perm[self.labels[: x.shape[0]]]] = 1.0
        return out


def test_specs_and_registry() -> None:
    assert parse_judge_spec("classifier=runs/c.safetensors") == ("classifier", "runs/c.safetensors")
    assert parse_judge_spec(" psnr ") == ("psnr", None)
    for bad in ("", "=x", "classifier="):
        with pytest.raises(InputError):
            parse_judge_spec(bad)
    with pytest.raises(InputError, match="unknown judge"):
        create_judge("nope")
    with pytest.raises(InputError, match="takes no file"):
        create_judge("psnr=x")
    assert {"psnr", "ssim", "featdist", "classifier", "segmenter"} <= set(list_judges())
    names = [j.name for j in default_judges()]
    assert names[:2] == ["psnr", "ssim"]


def test_class_map_translates_another_label_set() -> None:
    """A judge whose classes are the dataset's in another order (plus classes the dataset
    does not have) is scored correctly through its class map."""
    ev = synthetic_evalset(12)
    c = int(ev.labels.max()) + 1
    perm = torch.randperm(c, generator=torch.Generator().manual_seed(0)) + 3  # 3 extra classes
    oracle = Oracle(ev.labels, perm, c + 3)
    cmap = torch.full((c + 3,), -1)
    cmap[perm] = torch.arange(c)
    right = ClassifierJudge(oracle, "mapped", ("accuracy",), class_map=cmap)
    wrong = ClassifierJudge(oracle, "unmapped", ("accuracy",))
    args = (ev.images, ev.images, ev.labels, None, 12)
    assert judge_reconstructions(right, *args) == {"accuracy": 1.0}
    assert judge_reconstructions(wrong, *args)["accuracy"] < 0.5
    short = ClassifierJudge(oracle, "short", ("accuracy",), class_map=cmap[:-1])
    with pytest.raises(InputError, match="class map"):
        judge_reconstructions(short, *args)


def test_judges_trained_at_another_size_see_resized_images() -> None:
    ev = synthetic_evalset(4, size=96)
    oracle = Oracle(ev.labels, torch.arange(12), 12)
    judge = ClassifierJudge(oracle, "small", ("accuracy",), input_size=64)
    assert judge_reconstructions(judge, ev.images, ev.images, ev.labels, None)["accuracy"] == 1.0
    assert oracle.sizes == [(64, 64)]


def test_colliding_metric_names_are_kept_apart() -> None:
    ev = synthetic_evalset(8)
    oracle = Oracle(ev.labels, torch.arange(12), 12)
    judges = [
        ClassifierJudge(oracle, "a", ("accuracy",)),
        ClassifierJudge(oracle, "b", ("accuracy",)),
    ]
    finals = [Decoded(x_hat=x, logits=torch.zeros(12)) for x in ev.images]
    got = score(ev.images, ev.labels, None, finals, ("x_hat", "logits"), judges, 8)
    assert got.judged_by == {"accuracy": "receiver", "accuracy[a]": "a", "accuracy[b]": "b"}
    assert got.metrics["accuracy[a]"] == got.metrics["accuracy[b]"] == 1.0


def test_receive_names_the_judges_it_was_given(tmp_path, capsys) -> None:
    from semcom.cli import main
    from semcom.imageio import save_image

    ev = synthetic_evalset(1)
    save_image(ev.images[0], tmp_path / "i.png")
    assert main(["send", str(tmp_path / "i.png"), "-o", str(tmp_path / "m.smc")]) == 0
    capsys.readouterr()
    assert main(["receive", str(tmp_path / "m.smc"), "--judge", "shape-classifier"]) == 0
    out = capsys.readouterr().out
    assert "class:" in out and "judge shape-classifier (zoo)" in out
    assert "segmentation" not in out  # only the judge asked for
    assert main(["receive", str(tmp_path / "m.smc"), "--judge", "nope"]) == 2
    capsys.readouterr()
    assert main(["receive", str(tmp_path / "m.smc"), "--judge", "psnr"]) == 0
    assert "not judged here: psnr" in capsys.readouterr().out  # it needs the original
    assert (
        main(["send", str(tmp_path / "i.png"), "--scheme", "raw", "-o", str(tmp_path / "r.smc")])
        == 0
    )
    capsys.readouterr()
    assert main(["receive", str(tmp_path / "m.smc"), str(tmp_path / "r.smc")]) == 2
    assert "one scheme" in capsys.readouterr().err


def test_segmenters_at_another_size_and_with_a_partial_class_map() -> None:
    from semcom.judges.builtin import SegmenterJudge

    ev = synthetic_evalset(4, size=32)
    seg = create_judge("shape-segmenter")  # trained at 64: scores come back at 32
    got = judge_reconstructions(seg, ev.images, ev.images, None, ev.masks)
    assert 0 < got["miou"] <= 1
    cmap = torch.full((13,), -1)
    cmap[:4] = torch.arange(4)  # knows background and three of the twelve shapes
    part = SegmenterJudge(
        seg.model, "part", ("miou", "pixel_accuracy"), input_size=64, class_map=cmap
    )
    assert 0 <= judge_reconstructions(part, ev.images, ev.images, None, ev.masks)["miou"] <= 1


def test_bench_refuses_twice_named_judges_and_reference_anchors(tmp_path, capsys) -> None:
    from semcom.cli import main

    base = [
        "bench",
        "--n-images",
        "2",
        "--channels",
        "ideal",
        "-o",
        str(tmp_path / "r"),
        "--no-progress",
    ]
    assert main([*base, "--schemes", "jpeg", "--judge", "ssim", "--judge", "ssim"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main([*base, "--schemes", "jpeg,raw", "--anchor", "raw"]) == 2
    assert "reference" in capsys.readouterr().err


def test_errors_in_worker_processes_are_one_line(tmp_path, capsys) -> None:
    from semcom.cli import main

    args = ["bench", "--schemes", "patch-mean", "--size", "32", "--n-images", "2", "--workers", "2",
            "--channels", "ideal", "-o", str(tmp_path / "r"), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "64" in err[0], err


def test_checkpoint_judges_refuse_the_wrong_kind_of_model() -> None:
    from semcom.models.zoo import zoo_dir

    with pytest.raises(InputError, match="'segment' model, not a 'classify'"):
        create_judge(f"classifier={zoo_dir() / 'shape-segmenter.safetensors'}")
    with pytest.raises(InputError, match="'reconstruct' model"):
        create_judge(f"segmenter={zoo_dir() / 'patch-decoder-synth.safetensors'}")
    a = create_judge(f"classifier={zoo_dir() / 'shape-classifier.safetensors'}")
    b = create_judge(f"classifier={zoo_dir() / 'shape-classifier-ft.safetensors'}")
    assert a.name != b.name  # named by their files, so neither hides the other


def test_judge_command_on_one_image(tmp_path, capsys) -> None:
    from semcom.cli import main
    from semcom.imageio import save_image

    ev = synthetic_evalset(2)
    save_image(ev.images[0], tmp_path / "a.png")
    save_image(ev.images[1], tmp_path / "b.png")
    args = ["judge", str(tmp_path / "a.png"), "--judge", "shape-classifier", "--judge", "psnr"]
    assert main([*args, "--ref", str(tmp_path / "a.png"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["psnr"]["value"] == 100.0 and got["psnr"]["better"] == "higher"
    assert got["class"] and got["classifier"]["name"] == "shape-classifier"
    assert main([*args, "--ref", str(tmp_path / "b.png")]) == 0
    assert "psnr:" in capsys.readouterr().out
    assert main(args) == 2  # a distance without --ref
    assert "--ref" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"not an image")
    assert main(["judge", str(tmp_path / "x.png"), "--judge", "shape-classifier"]) == 2


def test_check_judges_refuses_a_judge_the_data_cannot_score() -> None:
    """A classifier judge on data without labels, a segmenter on data without masks: one
    InputError each, before any work."""
    from semcom.errors import InputError
    from semcom.experiments.demo import check_judges
    from semcom.experiments.sweep import EvalSet
    from semcom.judges import create_judge

    images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    no_labels = EvalSet(images, None, torch.zeros(2, 64, 64, dtype=torch.long), "camvid")
    no_masks = EvalSet(images, torch.zeros(2, dtype=torch.long), None, "tiny-imagenet")
    with pytest.raises(InputError, match="gives class labels, but camvid has no labels"):
        check_judges([create_judge("shape-classifier")], {"x_hat"}, no_labels)
    with pytest.raises(InputError, match="gives segmentation maps, but tiny-imagenet has no"):
        check_judges([create_judge("shape-segmenter")], {"x_hat"}, no_masks)
    check_judges([create_judge("psnr")], {"logits"}, no_masks)  # formulas: never refused


def test_attention_comparison_figure(tmp_path) -> None:
    from semcom.experiments.samples import attention_comparison, main
    from semcom.experiments.sweep import synthetic_evalset

    images = synthetic_evalset(2).images
    out = attention_comparison(images, tmp_path / "a.png", [("zoo", "vit-synth")] * 2)
    assert out.is_file() and out.stat().st_size > 1000
    assert main(["--vit", "novit", "-o", str(tmp_path / "b.png")]) == 2
