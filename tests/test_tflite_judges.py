"""TFLite judges (``tflite-classifier``, ``tflite-segmenter``) on tiny models the suite
builds (tests/tflite_models.py), class maps onto a dataset's labels, and their refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semcom.data.classmaps import CITYSCAPES_CLASSES, CITYSCAPES_TO_CAMVID, class_map
from semcom.data.folders import CAMVID_CLASSES
from semcom.errors import InputError

pytest.importorskip("ai_edge_litert.interpreter")
pytest.importorskip("tflite")
pytest.importorskip("flatbuffers")

import tests.tflite_models as tfm  # noqa: E402
from semcom.judges import create_judge  # noqa: E402
from semcom.judges.scoring import judge_reconstructions  # noqa: E402
from semcom.models.tflite import TFLiteModel  # noqa: E402

WNIDS = [f"n{i:08d}" for i in range(1000)]  # made-up ImageNet ids, output i + 1 <-> WNIDS[i]


def _colour(rgb: tuple[int, int, int], size: int = 16) -> torch.Tensor:
    """float (1, 3, size, size) image of one colour (0-255 channel values)."""
    return (torch.tensor(rgb, dtype=torch.float32) / 255).view(1, 3, 1, 1).expand(1, 3, size, size)


@pytest.fixture()
def classifier_dir(tmp_path: Path) -> Path:
    tfm.write_classifier(tmp_path / "clf.tflite", size=16)
    (tmp_path / "imagenet_synsets.txt").write_text("\n".join(WNIDS) + "\n")
    names = ["background"] + [f"thing {i}" for i in range(1000)]
    (tmp_path / "imagenet_labels.txt").write_text("\n".join(names) + "\n")
    return tmp_path


# ----------------------------------------------------------------------- the runtime
def test_runtime_reads_logits_and_dequantised_output(classifier_dir: Path) -> None:
    m = TFLiteModel(classifier_dir / "clf.tflite", num_threads=1)
    assert m.input_size == (16, 16) and m.output_shape == (1001,) and m.has_logits
    img = np.zeros((2, 16, 16, 3), np.uint8)
    img[0, ..., 0] = 250  # red: class 1
    img[1, ..., 2] = 200  # blue: class 3
    ref = tfm.classifier_reference(img)
    probs, logits = m.run(img), m.run(img, logits=True)
    assert probs.dtype == np.float32 and probs.shape == (2, 1001)
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probs, ref["output"] / 256.0, atol=1.01 / 256)
    assert logits.argmax(1).tolist() == [1, 3]


def test_runtime_refuses_wrong_images(classifier_dir: Path) -> None:
    m = TFLiteModel(classifier_dir / "clf.tflite", num_threads=1)
    with pytest.raises(InputError, match="images must be"):
        m.run(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        m.run(np.zeros((1, 16, 16, 3), np.float32))


@pytest.mark.parametrize("kind", ["text", "broken", "missing", "empty"])
def test_runtime_refuses_bad_files(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "m.tflite"
    if kind == "text":
        p.write_text("this is not a model, only some text\n")
    elif kind == "broken":
        tfm.write_broken_model(p)
    elif kind == "empty":
        p.write_bytes(b"")
    with pytest.raises(InputError, match="TFLite model") as e:
        TFLiteModel(p)
    assert "\n" not in str(e.value)


def test_missing_litert_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    with pytest.raises(InputError, match=r"semcom\[litert\]"):
        TFLiteModel(tfm.write_classifier(tmp_path / "c.tflite", num_classes=4))


# ---------------------------------------------------------------------- class maps
def test_class_map_by_equal_ids_and_refusal() -> None:
    assert class_map(["a", "b"], ["a", "b"]) is None
    m = class_map(["background", "x", "a", "b"], ["b", "a"])
    assert m.tolist() == [-1, -1, 1, 0]
    with pytest.raises(InputError, match="cover 1 of the 2 labels.*missing: c"):
        class_map(["a", "x"], ["a", "c"], judge="j", dataset="d")


def test_cityscapes_to_camvid_table_covers_camvid() -> None:
    m = class_map(CITYSCAPES_CLASSES, CAMVID_CLASSES)
    assert m is not None and (m >= 0).all()
    for i, name in enumerate(CITYSCAPES_CLASSES):
        assert CAMVID_CLASSES[int(m[i])] == CITYSCAPES_TO_CAMVID[name]
    assert set(m.tolist()) == set(range(len(CAMVID_CLASSES)))


def test_user_table_with_unknown_class_is_refused() -> None:
    with pytest.raises(InputError, match="not classes of the judge"):
        class_map(["a", "b"], ["a"], table={"zzz": "a"})


# ---------------------------------------------------------------------- classifier
def test_classifier_judge_maps_onto_dataset_labels(classifier_dir: Path) -> None:
    judge = create_judge(f"tflite-classifier={classifier_dir / 'clf.tflite'}")
    assert judge.yields == "logits" and judge.metrics == ("accuracy",)
    # the dataset knows three of the ImageNet classes, in another order
    judge.bind([WNIDS[2], WNIDS[0], WNIDS[1]], "toy")  # output 3 (blue) -> label 0, ...
    x = torch.cat([_colour((250, 0, 0)), _colour((0, 240, 0)), _colour((0, 0, 230))])
    assert judge.predict(x, x).tolist() == [1, 2, 0]
    labels = torch.tensor([1, 2, 1])
    images = (x * 255).round().to(torch.uint8)
    got = judge_reconstructions(judge, images, images, labels, None)
    assert got == {"accuracy": pytest.approx(2 / 3)}
    # and images of another size are resized to the model's 16 x 16
    big = torch.nn.functional.interpolate(x, size=(40, 40))
    assert judge.predict(big, big).tolist() == [1, 2, 0]


def test_classifier_judge_describe_names_class(classifier_dir: Path) -> None:
    judge = create_judge(f"tflite-classifier={classifier_dir / 'clf.tflite'}")
    out = judge.describe(_colour((0, 250, 0)))
    assert out["class"] == "thing 1" and out["class id"] == WNIDS[1]
    assert 0 < out["confidence"] <= 1 and out["classifier"]["name"] == "tflite-classifier"


def test_classifier_judge_refuses_uncovered_labels(classifier_dir: Path) -> None:
    judge = create_judge(f"tflite-classifier={classifier_dir / 'clf.tflite'}")
    with pytest.raises(InputError, match="cover 1 of the 2 labels of toy"):
        judge.bind([WNIDS[5], "n99999999"], "toy")


def test_classifier_judge_user_mapping(classifier_dir: Path) -> None:
    table = classifier_dir / "map.json"
    table.write_text(json.dumps({WNIDS[0]: "warm", WNIDS[1]: "cold", WNIDS[2]: "cold"}))
    judge = create_judge(f"tflite-classifier={classifier_dir / 'clf.tflite'},map={table}")
    judge.bind(["cold", "warm"], "toy")
    x = torch.cat([_colour((250, 0, 0)), _colour((0, 240, 0)), _colour((0, 0, 230))])
    assert judge.predict(x, x).tolist() == [1, 0, 0]


def test_classifier_judge_bad_specs(classifier_dir: Path, tmp_path: Path) -> None:
    clf = classifier_dir / "clf.tflite"
    with pytest.raises(InputError, match="needs its model file"):
        create_judge("tflite-classifier")
    with pytest.raises(InputError, match="bad option"):
        create_judge(f"tflite-classifier={clf},colour=red")
    short = tmp_path / "short.txt"
    short.write_text("n1\nn2\n")
    with pytest.raises(InputError, match="2 lines for a model with 1001 classes"):
        create_judge(f"tflite-classifier={clf},synsets={short}")
    seg = tfm.write_segmenter(tmp_path / "seg.tflite")
    with pytest.raises(InputError, match="not class scores"):
        create_judge(f"tflite-classifier={seg}")
    bad_map = tmp_path / "map.json"
    bad_map.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        create_judge(f"tflite-classifier={clf},map={bad_map}")


# ---------------------------------------------------------------------- segmenter
def test_segmenter_judge_cityscapes_ids_score_camvid(tmp_path: Path) -> None:
    seg = tfm.write_segmenter(tmp_path / "seg.tflite", size=17)
    (tmp_path / "cityscapes_labels.txt").write_text("\n".join(CITYSCAPES_CLASSES) + "\n")
    judge = create_judge(f"tflite-segmenter={seg}")
    assert judge.yields == "segmentation" and judge.metrics == ("miou", "pixel_accuracy")
    judge.bind(CAMVID_CLASSES, "camvid")
    # left half red (class 0 road), right half blue (class 2 building), 24 x 32 image
    img = torch.zeros(1, 3, 24, 32, dtype=torch.uint8)
    img[:, 0, :, :16] = 250
    img[:, 2, :, 16:] = 250
    road, building = CAMVID_CLASSES.index("road"), CAMVID_CLASSES.index("building")
    pred = judge.predict(img.float() / 255, img.float() / 255)
    assert pred.shape == (1, 24, 32)
    assert set(pred[0, :, :14].unique().tolist()) == {road}
    assert set(pred[0, :, 18:].unique().tolist()) == {building}
    mask = torch.full((1, 24, 32), road, dtype=torch.long)
    mask[:, :, 16:] = building
    mask[:, :2] = 255  # ignored rows
    got = judge_reconstructions(judge, img, img, None, mask)
    assert got["pixel_accuracy"] > 0.9 and got["miou"] > 0.8
    summary = judge.describe(img.float() / 255)["segmentation (fraction of pixels)"]
    assert set(summary) == {"road", "building"}


def test_segmenter_judge_needs_class_names(tmp_path: Path) -> None:
    seg = tfm.write_segmenter(tmp_path / "seg.tflite")
    with pytest.raises(InputError, match="labels=FILE"):
        create_judge(f"tflite-segmenter={seg}")


# ----------------------------------------------------------------------- the CLI
def _semcom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "semcom", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_judge_with_tflite_classifier(classifier_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "red.png"
    Image.new("RGB", (30, 20), (230, 10, 10)).save(photo)
    r = _semcom("judge", str(photo), "--judge", f"tflite-classifier={classifier_dir}/clf.tflite",
                "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["class"] == "thing 0" and "INFO" not in r.stderr
    r = _semcom("judge", str(photo), "--judge", f"tflite-classifier={photo}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a TFLite file" in r.stderr


def test_cli_bench_refuses_judge_of_other_labels(classifier_dir: Path, tmp_path: Path) -> None:
    r = _semcom("bench", "--n-images", "4", "--schemes", "jpeg", "--channels", "ideal",
                "--judge", f"tflite-classifier={classifier_dir}/clf.tflite",
                "-o", str(tmp_path / "out"))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "cover 0 of the 12 labels of synthetic" in r.stderr and r.stderr.count("\n") == 1
