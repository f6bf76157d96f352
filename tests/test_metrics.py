"""Tests of semcom.metrics against independent computations and analytic cases."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from semcom.errors import InputError, SemcomError
from semcom.metrics import (
    FeatureDistance,
    LPIPSMetric,
    SegmentationMeter,
    accuracy,
    bd_metric,
    bd_rate,
    bits_per_pixel,
    bjontegaard,
    confusion_matrix,
    lpips_available,
    miou,
    pixel_accuracy,
    psnr,
    ssim,
)
from semcom.metrics._pchip import pchip_eval, pchip_integral, pchip_slopes

# ------------------------------------------------------------------------------- rate


def test_bits_per_pixel():
    assert bits_per_pixel(100, 10, 10) == 8.0
    assert bits_per_pixel(0, 3, 5) == 0.0
    assert bits_per_pixel(150.5, 64, 64) == pytest.approx(8 * 150.5 / 4096)
    for bad in [(-1, 4, 4), (10, 0, 4), (float("nan"), 4, 4), (float("inf"), 4, 4)]:
        with pytest.raises(InputError):
            bits_per_pixel(*bad)


# --------------------------------------------------------------------- classification


def test_accuracy_logits_predictions_and_topk():
    labels = torch.tensor([0, 1, 2, 1])
    logits = torch.tensor(
        [[5.0, 1, 0], [0, 1, 3], [0, 2, 1], [0, 9, 0]]
    )  # argmax: 0, 2, 1, 1 -> 2 of 4 right; top-2 adds samples 1 and 2
    assert accuracy(logits, labels) == 0.5
    assert accuracy(logits.argmax(1), labels) == 0.5
    assert accuracy(logits, labels, k=2) == 1.0
    assert accuracy(logits, labels, k=3) == 1.0
    with pytest.raises(InputError):
        accuracy(logits, labels[:3])
    with pytest.raises(InputError):
        accuracy(logits.argmax(1), labels, k=2)
    with pytest.raises(InputError):
        accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(InputError):
        accuracy(logits, labels.float())


# ----------------------------------------------------------------------- segmentation


def _np_confusion(pred: np.ndarray, target: np.ndarray, k: int, ignore: int) -> np.ndarray:
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(target.ravel(), pred.ravel(), strict=True):
        if t != ignore:
            cm[t, p] += 1
    return cm


def _random_seg(seed: int, k: int = 4, shape=(3, 9, 11)):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, shape, generator=g)
    target[torch.rand(shape, generator=g) < 0.2] = 255
    pred = torch.randint(0, k, shape, generator=g)
    return pred, target


def test_confusion_matrix_matches_a_plain_loop_and_logits_path():
    pred, target = _random_seg(0)
    cm = confusion_matrix(pred, target, 4)
    assert cm.dtype == torch.int64 and cm.shape == (4, 4)
    assert np.array_equal(cm.numpy(), _np_confusion(pred.numpy(), target.numpy(), 4, 255))
    assert int(cm.sum()) == int((target != 255).sum())
    logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float()
    assert torch.equal(confusion_matrix(logits, target, 4), cm)


def test_confusion_matrix_rejects_bad_labels():
    pred, target = _random_seg(1)
    with pytest.raises(InputError):
        confusion_matrix(pred, target, 3)  # label 3 present
    t = target.clone()
    t[0, 0, 0] = 7
    with pytest.raises(InputError):
        confusion_matrix(pred, t, 4)
    with pytest.raises(InputError):
        confusion_matrix(pred[:1], target, 4)
    # a bad prediction at an ignored pixel does not matter
    t = target.clone()
    p = pred.clone()
    t[0, 0, 0], p[0, 0, 0] = 255, 99
    confusion_matrix(p, t, 4)


def test_miou_hand_example_and_absent_class_convention():
    target = torch.tensor([[0, 0, 1, 1, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 3, 2]])
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 2, FP 1 -> 2/3; class 2, 3 only at ignored
    # pixels -> absent (NaN), left out
    res = miou(pred, target, 4)
    assert res.per_class[0].item() == pytest.approx(0.5)
    assert res.per_class[1].item() == pytest.approx(2 / 3)
    assert math.isnan(res.per_class[2].item()) and math.isnan(res.per_class[3].item())
    assert res.miou == pytest.approx((0.5 + 2 / 3) / 2)
    m, per_class = res  # unpacks
    assert m == res.miou and per_class.shape == (4,)
    assert pixel_accuracy(pred, target, 4) == pytest.approx(3 / 4)
    # a class predicted but absent from the target is present, with IoU 0
    res = miou(torch.tensor([[2, 0]]), torch.tensor([[0, 0]]), 3)
    assert res.per_class[2].item() == 0.0 and res.miou == pytest.approx((0.5 + 0.0) / 2)


def test_all_ignored_gives_nan():
    t = torch.full((1, 2, 2), 255)
    p = torch.zeros_like(t)
    assert math.isnan(miou(p, t, 2).miou)
    assert math.isnan(pixel_accuracy(p, t, 2))


def test_miou_against_independent_numpy():
    pred, target = _random_seg(2, k=5)
    cm = _np_confusion(pred.numpy(), target.numpy(), 5, 255).astype(float)
    ious = []
    for c in range(5):
        tp = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - tp
        if union > 0:
            ious.append(tp / union)
    assert miou(pred, target, 5).miou == pytest.approx(np.mean(ious))
    assert pixel_accuracy(pred, target, 5) == pytest.approx(np.trace(cm) / cm.sum())


def test_segmentation_meter_streams_like_one_big_batch():
    batches = [_random_seg(s, k=4) for s in range(4)]
    meter = SegmentationMeter(4)
    for p, t in batches:
        meter.update(p, t)
    allp = torch.cat([p for p, _ in batches])
    allt = torch.cat([t for _, t in batches])
    out = meter.compute()
    assert out["miou"] == pytest.approx(miou(allp, allt, 4).miou)
    assert out["pixel_accuracy"] == pytest.approx(pixel_accuracy(allp, allt, 4))
    assert torch.equal(meter.confusion, confusion_matrix(allp, allt, 4))
    assert meter.n_pixels == int((allt != 255).sum())
    # dataset-level, not the mean of per-batch mIoUs
    per_batch = np.mean([miou(p, t, 4).miou for p, t in batches])
    assert out["miou"] != pytest.approx(per_batch, abs=1e-12)
    meter.reset()
    assert meter.n_pixels == 0 and math.isnan(meter.compute()["miou"])


# ------------------------------------------------------------------------------- PSNR


def test_psnr_analytic():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g) * 0.8 + 0.1
    deltas = torch.tensor([0.1, 0.01, 0.05])
    y = x + deltas.view(3, 1, 1, 1)
    out = psnr(x, y)
    assert out.shape == (3,) and out.dtype == torch.float32
    expect = 10 * torch.log10(1 / deltas.double() ** 2)
    assert torch.allclose(out.double(), expect, atol=1e-4)
    assert torch.allclose(psnr(255 * x, 255 * y, data_range=255.0), out, atol=1e-4)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.equal(psnr(x, y), psnr(y, x))


def test_psnr_rejects_uint8_and_mismatch():
    x = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(InputError):
        psnr(x, x)
    with pytest.raises(InputError):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(InputError):
        psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))


# ------------------------------------------------------------------------------- SSIM


def _np_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Direct SSIM: explicit 11x11 weighted windows at every valid position; (N,)."""
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n, c, h, w = x.shape
    out = np.zeros(n)
    for i in range(n):
        vals = []
        for ch in range(c):
            for r in range(h - 10):
                for s in range(w - 10):
                    a = x[i, ch, r : r + 11, s : s + 11]
                    b = y[i, ch, r : r + 11, s : s + 11]
                    ma, mb = (w2 * a).sum(), (w2 * b).sum()
                    va = (w2 * (a - ma) ** 2).sum()
                    vb = (w2 * (b - mb) ** 2).sum()
                    cov = (w2 * (a - ma) * (b - mb)).sum()
                    vals.append(
                        (2 * ma * mb + c1)
                        * (2 * cov + c2)
                        / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                    )
        out[i] = np.mean(vals)
    return out


def test_ssim_matches_direct_windowed_computation():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 14, 16, generator=g, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(2, 3, 14, 16, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(x, y).numpy()
    ref = _np_ssim(x.numpy(), y.numpy())
    assert np.allclose(ours, ref, atol=1e-10, rtol=0)


def test_ssim_properties():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(1), atol=1e-6)
    noise = torch.randn(1, 3, 32, 32, generator=g)
    y = (x + 0.1 * noise).clamp(0, 1)
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-7)
    vals = [float(ssim(x, (x + s * noise).clamp(0, 1))) for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False))
    assert ssim(x.expand(3, -1, -1, -1), y.expand(3, -1, -1, -1)).shape == (3,)


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.3, 0.7
    c1 = 0.01**2
    x = torch.full((1, 3, 12, 12), a, dtype=torch.float64)
    y = torch.full((1, 3, 12, 12), b, dtype=torch.float64)
    expect = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(ssim(x, y)) == pytest.approx(expect, abs=1e-12)


def test_ssim_rejects_small_images():
    with pytest.raises(InputError):
        ssim(torch.zeros(1, 3, 10, 32), torch.zeros(1, 3, 10, 32))


# ---------------------------------------------------------------- feature distance


class _Backbone(nn.Module):
    """Returns [x, relu(conv(x)) at half resolution]; has a BatchNorm to test eval()."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, torch.relu(self.bn(self.conv(x)))]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward(x)


def test_featdist_identity_backbone_matches_hand_computation():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 5, 6, generator=g) + 0.05
    y = torch.rand(2, 3, 5, 6, generator=g) + 0.05
    fd = FeatureDistance(lambda t: [t], name="pixels")
    xn = x.numpy().astype(np.float64)
    yn = y.numpy().astype(np.float64)
    ux = xn / np.linalg.norm(xn, axis=1, keepdims=True)
    uy = yn / np.linalg.norm(yn, axis=1, keepdims=True)
    expect = ((ux - uy) ** 2).sum(axis=1).mean(axis=(1, 2))
    out = fd(x, y)
    assert out.shape == (2,) and out.dtype == torch.float32
    assert np.allclose(out.numpy(), expect, atol=1e-6)
    # per-position scale of the features does not matter (unit normalisation)
    scale = torch.rand(2, 1, 5, 6, generator=g) + 0.5
    assert torch.allclose(fd(x * scale, y), out, atol=1e-5)


def test_featdist_properties_layers_and_names():
    net = _Backbone()
    net.train()
    fd = FeatureDistance(net.features, name="toy")
    assert not net.training  # the owning module was switched to eval mode
    assert fd.name == "featdist[toy]" and fd.backbone_name == "toy"
    g = torch.Generator().manual_seed(6)
    x = torch.rand(3, 3, 16, 16, generator=g)
    y = (x + 0.1 * torch.randn(3, 3, 16, 16, generator=g)).clamp(0, 1)
    with torch.no_grad():
        d = fd(x, y)
        assert torch.allclose(fd(x, x), torch.zeros(3), atol=1e-6)
        assert torch.allclose(d, fd(y, x), atol=1e-6)
        assert (d > 0).all() and (d <= 4 * 2).all()
        d0 = FeatureDistance(net, layers=[0], name="toy")(x, y)
        d1 = FeatureDistance(net, layers=[1], name="toy")(x, y)
        assert torch.allclose(d0 + d1, d, atol=1e-5)
        # a pair's distance does not depend on the rest of the batch
        assert torch.allclose(fd(x[:1], y[:1]), d[:1], atol=1e-6)
        # farther images are farther
        z = (x + 0.4 * torch.randn(3, 3, 16, 16, generator=g)).clamp(0, 1)
        assert (fd(x, z) > d).all()
    assert FeatureDistance(net).name == "featdist[_Backbone]"
    assert FeatureDistance(lambda t: t, name="single")(x, y).shape == (3,)


def test_featdist_bad_arguments():
    with pytest.raises(InputError):
        FeatureDistance(42)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        FeatureDistance(lambda t: [t], name="a[b]")
    fd = FeatureDistance(lambda t: [t], layers=[3], name="x")
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(InputError):
        fd(x, x)
    with pytest.raises(InputError):
        FeatureDistance(lambda t: [t], name="x")(x, torch.rand(1, 3, 4, 5))


# ---------------------------------------------------------------------------- LPIPS


def test_importing_metrics_never_imports_lpips_or_torchvision():
    code = "import sys, semcom.metrics; print('lpips' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_lpips_unavailable_here_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    av = lpips_available()
    assert not av and isinstance(av.reason, str) and av.reason
    with pytest.raises(SemcomError, match="unavailable"):
        LPIPSMetric()
    with pytest.raises(InputError):
        lpips_available("resnet")


def _fake_lpips(root, with_lin: bool = True):
    pkg = root / "lpips"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import torch
            CALLS = []
            class LPIPS(torch.nn.Module):
                def __init__(self, net="alex", verbose=True, **kw):
                    super().__init__()
                    self.net = net
                def forward(self, x, y, normalize=False):
                    CALLS.append(normalize)
                    return ((x - y) ** 2).mean(dim=(1, 2, 3), keepdim=True)
            """
        )
    )
    if with_lin:
        (pkg / "weights" / "v0.1").mkdir(parents=True)
        (pkg / "weights" / "v0.1" / "alex.pth").write_bytes(b"fake")


def test_lpips_wrapper_with_a_stand_in_package(monkeypatch, tmp_path):
    _fake_lpips(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delitem(sys.modules, "lpips", raising=False)
    try:
        av = lpips_available("alex")
        assert not av and "weights" in av.reason  # backbone weights not cached yet
        ckpt = tmp_path / "torch" / "hub" / "checkpoints"
        ckpt.mkdir(parents=True)
        (ckpt / "alexnet-owt-7be5be79.pth").write_bytes(b"fake")
        assert lpips_available("alex")
        assert not lpips_available("vgg")  # its linear weights are missing
        metric = LPIPSMetric("alex")
        assert metric.name == "lpips[alex]"
        x = torch.zeros(2, 3, 8, 8)
        y = torch.full((2, 3, 8, 8), 0.5)
        out = metric(x, y)
        assert out.shape == (2,) and torch.allclose(out, torch.full((2,), 0.25))
        assert sys.modules["lpips"].CALLS == [True]  # inputs in [0, 1] are declared as such
    finally:
        sys.modules.pop("lpips", None)


# ------------------------------------------------------------------------- BD-rate

RATES = np.array([120.0, 250.0, 480.0, 1000.0, 2100.0])
PSNR = np.array([27.0, 30.1, 32.8, 35.9, 38.7])


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_of_scaled_rates_is_exact(method):
    for s in (0.8, 1.25, 0.5):
        assert bd_rate(RATES, PSNR, s * RATES, PSNR, method=method) == pytest.approx(
            (s - 1) * 100, abs=1e-9
        )
    assert bd_rate(RATES, PSNR, RATES, PSNR, method=method) == pytest.approx(0, abs=1e-12)
    # input order does not matter
    perm = [3, 0, 4, 2, 1]
    assert bd_rate(RATES[perm], PSNR[perm], 0.8 * RATES, PSNR, method=method) == pytest.approx(-20)


def test_bd_rate_with_different_sample_points_on_exact_curves():
    # metric linear in log rate: m = 10 + 4 ln r; B needs 0.8x the rate for the same m.
    ra = np.array([100.0, 180.0, 400.0, 700.0, 1500.0])
    rb = np.array([90.0, 200.0, 330.0, 800.0, 1300.0])
    ma = 10 + 4 * np.log(ra)
    mb = 10 + 4 * np.log(rb / 0.8)
    for method in ("pchip", "cubic"):
        assert bd_rate(ra, ma, rb, mb, method=method) == pytest.approx(-20, abs=1e-9)
        # at equal rate B scores 4 ln(1/0.8) more
        assert bd_metric(ra, ma, rb, mb, method=method) == pytest.approx(-4 * np.log(0.8))
    # log rate an exact cubic of the metric: the cubic fit recovers it from 5 samples
    p = np.array([0.002, -0.05, 0.9, 1.0])
    ma = np.array([5.0, 7.5, 9.0, 12.0, 14.0])
    mb = np.array([6.0, 8.0, 10.5, 11.0, 15.0])
    ra, rb = np.exp(np.polyval(p, ma)), 0.8 * np.exp(np.polyval(p, mb))
    assert bd_rate(ra, ma, rb, mb, method="cubic") == pytest.approx(-20, abs=1e-7)
    assert bd_rate(ra, ma, rb, mb, method="pchip") == pytest.approx(-20, abs=1.0)


def test_bd_metric_of_a_shifted_curve():
    for method in ("pchip", "cubic"):
        assert bd_metric(RATES, PSNR, RATES, PSNR + 0.5, method=method) == pytest.approx(0.5)


def test_lower_is_better_metric():
    dist = 1.0 / PSNR  # decreasing in rate
    assert bd_rate(RATES, dist, 0.8 * RATES, dist, higher_is_better=False) == pytest.approx(-20)
    assert math.isnan(bd_rate(RATES, dist, 0.8 * RATES, dist))  # wrong direction declared
    assert bd_metric(RATES, dist, RATES, dist - 0.001, higher_is_better=False) == pytest.approx(
        -0.001
    )


def test_few_points_fall_back_to_linear():
    res = bjontegaard(RATES[:3], PSNR[:3], 0.8 * RATES[:3], PSNR[:3])
    assert res.method == "linear" and res.bd_rate == pytest.approx(-20)
    res = bjontegaard(RATES[:2], PSNR[:2], RATES[:2], PSNR[:2] + 1)
    assert res.method == "linear" and res.bd_metric == pytest.approx(1)
    assert bjontegaard(RATES, PSNR, RATES, PSNR).method == "pchip"


def test_bd_incomparable_curves_give_nan_with_a_reason():
    bumpy = PSNR.copy()
    bumpy[2] = 29.0
    res = bjontegaard(RATES, PSNR, RATES, bumpy)
    assert math.isnan(res.bd_rate) and "curve B" in res.reason
    with pytest.raises(InputError, match="strictly"):
        bd_rate(RATES, PSNR, RATES, bumpy, strict=True)
    far = bjontegaard(RATES, PSNR, RATES * 100, PSNR + 50)
    assert math.isnan(far.bd_rate) and math.isnan(far.bd_metric) and "overlap" in far.reason
    with pytest.raises(InputError):
        bd_metric(RATES, PSNR, RATES * 100, PSNR + 50, strict=True)


def test_bd_input_validation():
    with pytest.raises(InputError):
        bd_rate([100], [30], [100, 200], [30, 33])
    with pytest.raises(InputError):
        bd_rate([100, 200], [30], [100, 200], [30, 33])
    with pytest.raises(InputError):
        bd_rate([0, 200], [30, 33], [100, 200], [30, 33])
    with pytest.raises(InputError):
        bd_rate([100, np.nan], [30, 33], [100, 200], [30, 33])
    with pytest.raises(InputError):
        bd_rate(RATES, PSNR, RATES, PSNR, method="akima")
    # exact duplicates are dropped, not an error
    r2 = np.concatenate([RATES, RATES[:1]])
    p2 = np.concatenate([PSNR, PSNR[:1]])
    assert bd_rate(r2, p2, 0.8 * RATES, PSNR) == pytest.approx(-20)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.05, 1.0), min_size=4, max_size=7),
    st.lists(st.floats(0.05, 1.0), min_size=4, max_size=7),
    st.floats(-3, 3),
)
def test_bd_rate_is_antisymmetric(steps_a, steps_b, offset):
    ma = 20 + np.cumsum(steps_a) * 5
    mb = 20 + offset + np.cumsum(steps_b) * 5
    ra = np.exp(np.linspace(4, 8, len(ma)))
    rb = np.exp(np.linspace(3.8, 8.3, len(mb)))
    ab = bd_rate(ra, ma, rb, mb)
    ba = bd_rate(rb, mb, ra, ma)
    if math.isnan(ab):
        assert math.isnan(ba)
    else:
        assert (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1, rel=1e-9)
        assert bd_metric(ra, ma, rb, mb) == pytest.approx(-bd_metric(rb, mb, ra, ma), abs=1e-9)


# --------------------------------------------------------------------------- PCHIP


def test_pchip_interpolates_is_monotone_and_reproduces_lines():
    x = np.array([0.0, 1.0, 1.5, 4.0, 5.0])
    y = np.array([0.0, 2.0, 2.1, 6.0, 6.1])
    t = np.linspace(0, 5, 501)
    v = pchip_eval(x, y, t)
    assert np.allclose(pchip_eval(x, y, x), y)
    assert np.all(np.diff(v) >= -1e-12)  # no overshoot on monotone data
    assert v.min() >= 0 and v.max() <= 6.1 + 1e-12
    line = 3 * x - 1
    assert np.allclose(pchip_slopes(x, line), 3)
    assert pchip_integral(x, line, 0.5, 4.5) == pytest.approx(
        (1.5 * 4.5**2 - 4.5) - (1.5 * 0.25 - 0.5)
    )
    # the exact integral agrees with dense numerical quadrature of the interpolant
    tt = np.linspace(0.3, 4.2, 200001)
    vv = pchip_eval(x, y, tt)
    quad = float(np.sum((vv[1:] + vv[:-1]) * np.diff(tt)) / 2)
    assert pchip_integral(x, y, 0.3, 4.2) == pytest.approx(quad, rel=1e-8)


#: ``scipy.interpolate.PchipInterpolator`` (scipy 1.17.1) on these knots, recorded here so
#: that the comparison always runs: scipy is no dependency of semcom (only the optional
#: ``[phy]`` extra brings it in). Per case: knots ``x``, ``y``; scipy's knot slopes; its
#: values at ``t = x_0 + L * (0.15, 0.4, 0.65, 0.9)``, ``L = x_{n-1} - x_0``; its integral
#: over ``[x_0 + 0.1 L, x_{n-1} - 0.2 L]``.
SCIPY_PCHIP = [
    # two knots: the straight line
    ([0.5, 2.0], [1.0, -2.0], [-2.0, -2.0], [0.55, -0.2, -0.95, -1.7], -0.3675),
    # the secants change sign at the middle knot: slope 0 there
    (
        [0.0, 1.0, 3.0],
        [0.0, 2.0, 1.0],
        [17 / 6, 0.0, -1.5],
        [1.2361874999999998, 1.9989999999999999, 1.8928281249999999, 1.385875],
        3.787923611111111,
    ),
    # both three-point end slopes overshoot: limited to 3 x the end secant
    (
        [0.0, 1.0, 2.0, 3.5],
        [0.0, 1.0, -9.0, -8.0],
        [3.0, 0.0, 0.0, 2.0],
        [0.8928281250000002, -2.5200000000000022, -8.993837962962964, -8.54937037037037],
        -10.564285821759258,
    ),
    # both three-point end slopes have the wrong sign: 0; uneven spacing inside
    (
        [0.0, 1.0, 2.0, 2.5],
        [0.0, 1.0, 11.0, 12.0],
        [0.0, 20 / 11, 90 / 29, 0.0],
        [0.15660511363636362, 1.0, 7.5411319553291545, 11.693965517241379],
        6.235401564132708,
    ),
    (
        [0.0, 0.3, 1.1, 1.5, 2.9, 3.0, 4.2],
        [0.0, 0.4, 0.4, -0.7, 1.3, 2.0, 1.9],
        [56 / 33, 0.0, 0.0, 0.0, 525 / 179, 0.0, -0.25],
        [0.4, -0.6684678241607895, 0.8338265977979393, 1.9725375],
        1.0401508547486042,
    ),
]


@pytest.mark.parametrize(("x", "y", "slopes", "values", "integral"), SCIPY_PCHIP)
def test_pchip_matches_scipy(x, y, slopes, values, integral):
    x, y = np.array(x), np.array(y)
    span = x[-1] - x[0]
    assert np.allclose(pchip_slopes(x, y), slopes, rtol=0, atol=1e-12)
    t = x[0] + span * np.array([0.15, 0.4, 0.65, 0.9])
    assert np.allclose(pchip_eval(x, y, t), values, rtol=0, atol=1e-12)
    a, b = x[0] + 0.1 * span, x[-1] - 0.2 * span
    assert pchip_integral(x, y, a, b) == pytest.approx(integral, abs=1e-12)
