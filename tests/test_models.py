"""Registry and task-model behaviour (shapes, key names, errors)."""

from __future__ import annotations

import pytest
import torch

from semcom.errors import InputError
from semcom.models import ShapeClassifier, ShapeSegmenter, create_model, list_models
from semcom.models.registry import register_model

NC = 5


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_lists_builtin_models() -> None:
    names = list_models()
    assert {"shape-classifier", "shape-segmenter"} <= set(names)
    assert names == sorted(names)
    assert list_models("shape-*") == ["shape-classifier", "shape-segmenter"]


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(InputError) as ei:
        create_model("no-such-model")
    assert "shape-classifier" in str(ei.value) and "no-such-model" in str(ei.value)


def test_bad_kwargs_are_input_errors() -> None:
    with pytest.raises(InputError):
        create_model("shape-classifier", num_classes=NC, bogus=1)
    with pytest.raises(InputError):
        create_model("shape-classifier", num_classes=0)
    with pytest.raises(InputError):
        create_model("shape-segmenter", num_classes=NC, norm="layer")
    with pytest.raises(InputError):
        create_model("shape-segmenter", num_classes=NC, widths=(8, 16))


def test_register_and_create_custom_model() -> None:
    @register_model("test-tiny-linear")
    def _tiny(k: int = 2) -> torch.nn.Module:
        return torch.nn.Linear(3, k)

    m = create_model("test-tiny-linear", k=4)
    assert m.semcom_name == "test-tiny-linear" and m.config == {"k": 4}
    assert "test-tiny-linear" in list_models()
    with pytest.raises(InputError):
        register_model("test-tiny-linear")(lambda: torch.nn.Identity())


@pytest.mark.parametrize("size", [64, 32, 48])
def test_classifier_shapes_and_features(size: int) -> None:
    m = create_model("shape-classifier", num_classes=NC).eval()
    assert isinstance(m, ShapeClassifier) and m.semcom_name == "shape-classifier"
    x = torch.rand(2, 3, size, size)
    logits = m(x)
    assert logits.shape == (2, NC) and logits.dtype == torch.float32
    feats = m.features(x)
    assert [f.shape[1] for f in feats] == [24, 32, 64, 128]
    assert [f.shape[-1] for f in feats] == [size // 2, size // 4, size // 8, size // 16]
    full = create_model("shape-classifier", num_classes=NC, stem_stride=1).eval()
    assert [f.shape[-1] for f in full.features(x)] == [size, size // 2, size // 4, size // 8]
    assert m.predict(x).shape == (2,)


#: per model: the parameter-count range and some of its stable state-dict keys
SIZES_AND_KEYS = {
    "shape-classifier": (
        (100_000, 500_000),
        {"stem.conv.weight", "stem.norm.running_mean", "stages.0.down.conv.weight",
         "stages.2.block.norm.weight", "head.fc.weight", "head.fc.bias"},
    ),
    "shape-segmenter": (
        (100_000, 600_000),
        {"enc.0.conv1.conv.weight", "bottleneck.conv2.norm.weight", "dec.2.lateral.weight",
         "dec.0.conv.norm.weight", "head.conv.weight", "head.conv.bias"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", SIZES_AND_KEYS)
def test_param_count_and_keys(name: str) -> None:
    (lo, hi), keys = SIZES_AND_KEYS[name]
    m = create_model(name, num_classes=NC)
    assert lo <= sum(p.numel() for p in m.parameters()) <= hi
    assert keys <= set(m.state_dict())


def test_segmenter_shapes() -> None:
    m = create_model("shape-segmenter", num_classes=NC).eval()
    assert isinstance(m, ShapeSegmenter)
    x = torch.rand(2, 3, 64, 40)
    out = m(x)
    assert out.shape == (2, NC + 1, 64, 40)
    assert m.predict(x).shape == (2, 64, 40)


def test_models_reject_bad_input() -> None:
    clf = create_model("shape-classifier", num_classes=NC)
    seg = create_model("shape-segmenter", num_classes=NC)
    with pytest.raises(InputError):
        clf(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(InputError):
        clf(torch.zeros(1, 1, 32, 32))
    with pytest.raises(InputError):
        seg(torch.zeros(1, 3, 30, 32))


def test_group_norm_is_batch_independent() -> None:
    torch.manual_seed(0)
    m = create_model("shape-classifier", num_classes=NC, norm="group", dropout=0.0).train()
    x = torch.rand(4, 3, 32, 32)
    full = m(x)
    one = m(x[:1])
    torch.testing.assert_close(full[:1], one, rtol=1e-4, atol=1e-5)


def test_seeded_init_is_deterministic() -> None:
    torch.manual_seed(3)
    a = create_model("shape-segmenter", num_classes=NC)
    torch.manual_seed(3)
    b = create_model("shape-segmenter", num_classes=NC)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_classifier_can_learn_a_trivial_task() -> None:
    # Bright vs dark images: a handful of AdamW steps must separate them.
    torch.manual_seed(0)
    m = create_model("shape-classifier", num_classes=2, widths=(8, 8, 16, 16))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    x = torch.cat([torch.rand(16, 3, 16, 16) * 0.3, 0.7 + torch.rand(16, 3, 16, 16) * 0.3])
    y = torch.cat([torch.zeros(16), torch.ones(16)]).long()
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert (m(x).argmax(1) == y).float().mean() == 1.0


@pytest.mark.parametrize("name", ["shape-classifier", "shape-segmenter"])
def test_every_parameter_gets_gradient(name: str) -> None:
    # Guards against dead branches (e.g. a zero-initialised scale behind a ReLU, which
    # never receives gradient). Zero-init scales legitimately block their conv's
    # gradient at step 0, so check after one optimizer step.
    torch.manual_seed(0)
    m = create_model(name, num_classes=NC, widths=(8, 8, 16, 16)).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    x = torch.rand(4, 3, 32, 32)
    masks = torch.randint(0, NC + 1, (4, 32, 32))
    ce = torch.nn.functional.cross_entropy
    for _ in range(2):
        opt.zero_grad()
        if name == "shape-classifier":
            logits, aux = m(x, return_aux=True)
            st = 32 // aux.shape[-1]
            loss = ce(logits, masks[:, 0, 0].clamp(max=NC - 1)) + ce(aux, masks[:, ::st, ::st])
        else:
            loss = ce(m(x), masks)
        loss.backward()
        opt.step()
    dead = [
        k for k, p in m.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)
    ]
    assert not dead


def test_classifier_aux_head() -> None:
    m = create_model("shape-classifier", num_classes=NC)
    logits, aux = m(torch.rand(2, 3, 64, 64), return_aux=True)
    assert logits.shape == (2, NC) and aux.shape == (2, NC + 1, 4, 4)
    assert "aux.weight" in m.state_dict()
    plain = create_model("shape-classifier", num_classes=NC, aux_head=False)
    assert "aux.weight" not in plain.state_dict() and not plain.has_aux
    with pytest.raises(InputError):
        plain(torch.rand(1, 3, 32, 32), return_aux=True)


def test_edge_stem_option() -> None:
    a = create_model("shape-classifier", num_classes=NC)
    b = create_model("shape-classifier", num_classes=NC, edge_stem=False)
    assert a.state_dict()["stem.conv.weight"].shape[1] == 9
    assert b.state_dict()["stem.conv.weight"].shape[1] == 3
    assert set(a.state_dict()) == set(b.state_dict())  # the edge kernel is not state
    s = create_model("shape-segmenter", num_classes=NC, edge_stem=False)
    assert s.state_dict()["enc.0.conv1.conv.weight"].shape[1] == 3
    # Edges are colour- and polarity-invariant: an inverted image has the same edge maps.
    from semcom.models._common import EdgeFeatures

    x = torch.rand(1, 3, 16, 16)
    e1, e2 = EdgeFeatures()(x), EdgeFeatures()(1.0 - x)
    torch.testing.assert_close(e1[:, 3:], e2[:, 3:])
