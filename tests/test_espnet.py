"""ESPNet (``semcom.models.espnet``): shapes, input checks, the safe loader, and (when the
shared file exists) a strict load of the authors' CamVid checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semcom.errors import InputError
from semcom.models import create_model, list_models
from semcom.models.espnet import MEAN_BGR, STD_BGR, ESPNet, load_espnet

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CKPT = SHARED / "models" / "espnet_p2_q8_camvid.pth"
CAMVID = SHARED / "camvid"
NBT = "num_batches_tracked"


def _keys(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(NBT)}


@pytest.fixture(scope="module")
def model() -> ESPNet:
    torch.manual_seed(0)
    return ESPNet().eval()


def test_registered_and_config() -> None:
    assert "espnet-camvid" in list_models()
    m = create_model("espnet-camvid")
    assert isinstance(m, ESPNet) and m.task == "segment"
    assert m.config == {"num_classes": 12, "p": 2, "q": 8}
    assert len(_keys(m)) == 189  # the authors' file has 189 tensors for p=2, q=8
    with pytest.raises(InputError):
        create_model("espnet-camvid", p=0)
    with pytest.raises(InputError):
        create_model("espnet-camvid", num_classes=True)
    with pytest.raises(InputError, match="num_classes"):
        create_model("espnet-camvid", num_classes=4)


@pytest.mark.parametrize("hw", [(64, 96), (8, 16)])
def test_output_shape_and_dtype(model: ESPNet, hw: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 12, *hw) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert model.predict(x).shape == (2, *hw)


def test_other_sizes() -> None:
    m = ESPNet(num_classes=5, p=1, q=2).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 3, 32, 24)).shape == (1, 5, 32, 24)


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(1, 3, 60, 64),  # H not a multiple of 8
        torch.rand(1, 3, 64, 36),  # W not a multiple of 8
        torch.rand(1, 3, 0, 0),
        torch.rand(3, 64, 64),  # no batch axis
        torch.rand(1, 1, 64, 64),  # grey
        torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
    ],
)
def test_bad_inputs_raise(model: ESPNet, x: torch.Tensor) -> None:
    with pytest.raises(InputError):
        model(x)


def test_normalisation_is_bgr_meanstd_over_255(model: ESPNet) -> None:
    x = torch.rand(1, 3, 8, 8)
    bgr255 = x.flip(1) * 255
    mean = torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
    std = torch.tensor(STD_BGR).view(1, 3, 1, 1)
    want = (bgr255 - mean) / std / 255
    torch.testing.assert_close(model.normalise(x), want, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_normalised(want), rtol=1e-4, atol=1e-5)


def test_round_trip_through_load_espnet(model: ESPNet, tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = ESPNet().eval()
    for m in src.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    f = tmp_path / "espnet.pth"
    torch.save(src.state_dict(), f)
    got = load_espnet(f)
    assert not got.training and got.num_classes == 12
    assert _keys(got) == _keys(src)
    for k, v in src.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(got(x), src(x))
    # without the num_batches_tracked counters (as in the authors' file), and DataParallel
    sd = {f"module.{k}": v for k, v in src.state_dict().items() if not k.endswith(NBT)}
    torch.save(sd, f)
    assert _keys(load_espnet(f)) == _keys(src)


def test_bad_files_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_espnet(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x04garbage" * 50)
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        load_espnet(junk)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        load_espnet(empty)
    lst = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], lst)
    with pytest.raises(InputError, match="not a state dict"):
        load_espnet(lst)


def _saved(tmp_path: Path, sd: dict) -> Path:
    f = tmp_path / "sd.pth"
    torch.save(sd, f)
    return f


def test_mismatched_state_dicts_name_the_key(model: ESPNet, tmp_path: Path) -> None:
    good = {k: v.clone() for k, v in model.state_dict().items()}
    k = "encoder.level3.3.d8.conv.weight"
    bad = dict(good)
    bad[k] = torch.zeros(25, 25, 3, 1)
    with pytest.raises(InputError, match=r"encoder\.level3\.3\.d8\.conv\.weight.*shape"):
        load_espnet(_saved(tmp_path, bad))
    missing = dict(good)
    del missing["br.running_var"]
    with pytest.raises(InputError, match=r"missing key 'br\.running_var'"):
        load_espnet(_saved(tmp_path, missing))
    extra = dict(good)
    extra["encoder.level3.8.c1.conv.weight"] = torch.zeros(25, 128, 1, 1)  # q=9 file
    with pytest.raises(InputError, match=r"unexpected key 'encoder\.level3\.8"):
        load_espnet(_saved(tmp_path, extra))
    with pytest.raises(InputError, match="classifier.weight"):
        load_espnet(_saved(tmp_path, {"a": torch.zeros(1)}))
    with pytest.raises(InputError, match="named tensor"):
        load_espnet(_saved(tmp_path, {**good, "x": 3}))


@pytest.mark.skipif(not CKPT.is_file(), reason=f"shared ESPNet checkpoint absent ({CKPT})")
def test_authors_checkpoint_loads_strictly() -> None:
    sd = torch.load(CKPT, map_location="cpu", weights_only=True)
    assert len(sd) == 189
    m = ESPNet()
    m.load_state_dict(sd, strict=True)
    got = load_espnet(CKPT)
    assert got.num_classes == 12 and _keys(got) == {k: tuple(v.shape) for k, v in sd.items()}
    img = CAMVID / "val" / "0016E5_07959.webp"
    lab = CAMVID / "valannot" / "0016E5_07959.png"
    if not (img.is_file() and lab.is_file()):
        return
    from PIL import Image

    rgb = np.asarray(Image.open(img).convert("RGB"), dtype=np.float32) / 255.0
    label = np.asarray(Image.open(lab))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()
    pred = got.predict(x)[0].numpy()
    keep = label < 11
    assert (pred[keep] == label[keep]).mean() > 0.8  # loose: ~0.95 on this image


def test_espnet_judge_maps_void_away_and_pads(tmp_path: Path, model: ESPNet) -> None:
    """The ``espnet-camvid=PATH`` judge: CamVid ids 0..10 only (void never predicted),
    any image size (padded to a multiple of 8, cropped back), a one-line error without
    a path or with a file that is not a checkpoint."""
    from semcom.judges import create_judge

    path = tmp_path / "espnet.pth"
    torch.save(model.state_dict(), path)
    judge = create_judge(f"espnet-camvid={path}")
    assert judge.yields == "segmentation" and judge.metrics == ("miou", "pixel_accuracy")
    x = torch.rand(2, 3, 36, 50)
    scores = judge(x, x)
    assert scores.shape == (2, 12, 36, 50)
    ids = judge.predict(x, x)
    assert ids.shape == (2, 36, 50) and int(ids.max()) <= 10 and int(ids.min()) >= 0
    voidy = scores.clone()
    voidy[:, 11] = 1e6  # void wins every pixel's raw argmax: a CamVid class is still given
    assert int(voidy.argmax(1).min()) == 11
    assert torch.equal(judge.labels(voidy), scores[:, :11].argmax(1))
    assert "segmentation (fraction of pixels)" in judge.describe(x[:1])
    with pytest.raises(InputError, match="needs the checkpoint"):
        create_judge("espnet-camvid")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        create_judge(f"espnet-camvid={bad}")
