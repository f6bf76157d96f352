"""Tests for semcom.patches: selection rules, spec parsing, the patch grid."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semcom.errors import InputError
from semcom.patches import (
    AttentionMass,
    AttentionSumThreshold,
    AttentionThreshold,
    RandomK,
    Rate,
    TopK,
    create_rule,
    mask_to_indices,
    mask_to_keep,
    patchify,
    unpatchify,
)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def kept(mask: torch.Tensor) -> list[list[int]]:
    return [row.nonzero().flatten().tolist() for row in mask]


# ------------------------------------------------------------ exact semantics
def test_topk_exact():
    s = t([[0.1, 0.4, 0.2, 0.3], [0.3, 0.1, 0.5, 0.1]])
    assert kept(TopK(2)(s)) == [[1, 3], [0, 2]]
    assert kept(TopK(1)(s)) == [[1], [2]]
    assert kept(TopK(9)(s)) == [[0, 1, 2, 3]] * 2  # k > P keeps everything
    # ties go to the lower index
    assert kept(TopK(2)(t([[0.2, 0.2, 0.2, 0.4]]))) == [[0, 3]]
    assert kept(TopK(3)(t([[0.25, 0.25, 0.25, 0.25]]))) == [[0, 1, 2]]
    assert TopK(2)(s).dtype == torch.bool


def test_rate_exact():
    s = torch.arange(10, dtype=torch.float32).flip(0).unsqueeze(0)  # best = index 0
    assert kept(Rate(0.25)(s)) == [[0, 1, 2]]  # 2.5 rounds half up to 3
    assert kept(Rate(0.2)(s)) == [[0, 1]]
    assert kept(Rate(0.01)(s)) == [[0]]  # at least one
    assert kept(Rate(1.0)(s)) == [list(range(10))]
    assert Rate(0.25).count(64) == 16 and Rate(0.5).count(1) == 1


def test_threshold_exact():
    s = t([[0.05, 0.3, 0.3, 0.35], [0.1, 0.2, 0.3, 0.4]])
    assert kept(AttentionThreshold(0.3)(s)) == [[1, 2, 3], [2, 3]]  # >= is inclusive
    assert kept(AttentionThreshold(0.31)(s)) == [[3], [3]]
    assert kept(AttentionThreshold(0.0)(s)) == [[0, 1, 2, 3]] * 2
    # none reaches delta: the single best patch is kept (lowest index on ties)
    assert kept(AttentionThreshold(0.9)(s)) == [[3], [3]]
    assert kept(AttentionThreshold(0.9)(t([[0.4, 0.2, 0.4]]))) == [[0]]


def test_cumsum_exact():
    s = t([[0.05, 0.5, 0.15, 0.3]])  # sorted: 0.5 (1), 0.3 (3), 0.15 (2), 0.05 (0)
    assert kept(AttentionSumThreshold(0.8)(s)) == [[1, 3]]  # 0.8 exactly: included
    assert kept(AttentionSumThreshold(0.79)(s)) == [[1]]  # the crossing patch is excluded
    assert kept(AttentionSumThreshold(0.95)(s)) == [[1, 2, 3]]
    assert kept(AttentionSumThreshold(0.4)(s)) == [[1]]  # at least one
    assert kept(AttentionSumThreshold(0.0)(s)) == [[1]]
    assert kept(AttentionSumThreshold(1.0)(s)) == [[0, 1, 2, 3]]
    # ties: lower index first
    assert kept(AttentionSumThreshold(0.5)(t([[0.25, 0.25, 0.25, 0.25]]))) == [[0, 1]]


def test_mass_keeps_the_crossing_patch():
    s = t([[0.05, 0.5, 0.15, 0.3]])  # sorted: 0.5 (1), 0.3 (3), 0.15 (2), 0.05 (0)
    assert kept(AttentionMass(0.8)(s)) == [[1, 3]]  # 0.8 reached exactly
    assert kept(AttentionMass(0.79)(s)) == [[1, 3]]  # 0.3 crosses 0.79: kept
    assert kept(AttentionMass(0.81)(s)) == [[1, 2, 3]]
    assert kept(AttentionMass(0.4)(s)) == [[1]]  # the top patch alone reaches it
    assert kept(AttentionMass(0.0)(s)) == [[1]]
    assert kept(AttentionMass(1.0)(s)) == [[0, 1, 2, 3]]
    # scores that never reach delta keep every patch; ties go to the lower index
    assert kept(AttentionMass(0.9)(t([[0.1, 0.1, 0.1]]))) == [[0, 1, 2]]
    assert kept(AttentionMass(0.5)(t([[0.25, 0.25, 0.25, 0.25]]))) == [[0, 1]]
    assert kept(AttentionMass(0.3)(t([[0.25, 0.25, 0.25, 0.25]]))) == [[0, 1]]
    assert create_rule("mass:0.9") == AttentionMass(0.9)
    with pytest.raises(InputError):
        create_rule("mass:1.5")


def test_cumsum_delta_one_keeps_all_of_a_softmax():
    g = torch.Generator().manual_seed(0)
    s = torch.softmax(torch.randn(8, 196, generator=g) * 3, dim=1)
    assert bool(AttentionSumThreshold(1.0)(s).all())


def test_random_exact_count_and_determinism():
    s = torch.zeros(5, 64)
    rule = RandomK(16, seed=3)
    m1, m2 = rule(s), rule(s)
    assert torch.equal(m1, m2)
    assert m1.sum(1).tolist() == [16] * 5
    assert torch.equal(rule(s, seed=3), m1) and torch.equal(RandomK(16, 3)(s), m1)
    assert not torch.equal(rule(s, seed=4), m1)
    assert not torch.equal(m1[0], m1[1])  # rows draw independently
    # the score values are ignored
    assert torch.equal(rule(torch.rand(5, 64)), m1)
    # row i depends on (seed, i) only, not on the batch size
    assert torch.equal(rule(torch.zeros(2, 64)), m1[:2])
    assert kept(RandomK(9)(torch.zeros(1, 4))) == [[0, 1, 2, 3]]


def test_random_per_row_seeds_are_position_independent():
    rule = RandomK(4)
    batch = rule(torch.zeros(3, 32), seed=[11, 12, 13])
    for i, seed in enumerate([11, 12, 13]):
        assert torch.equal(rule(torch.zeros(1, 32), seed=[seed])[0], batch[i])
    assert torch.equal(rule(torch.zeros(3, 32), seed=torch.tensor([11, 12, 13])), batch)
    with pytest.raises(InputError):
        rule(torch.zeros(3, 32), seed=[1, 2])
    with pytest.raises(InputError):
        rule(torch.zeros(1, 32), seed=-1)


def test_random_is_roughly_uniform():
    rule = RandomK(2)
    counts = torch.stack([rule(torch.zeros(1, 8), seed=s)[0] for s in range(2000)]).sum(0)
    assert counts.sum() == 4000
    assert bool((counts > 400).all() and (counts < 600).all()), counts  # expected 500 each


# ------------------------------------------------------ batch independence
RULES_UNDER_TEST = [
    TopK(3),
    Rate(0.3),
    AttentionThreshold(0.08),
    AttentionSumThreshold(0.6),
]


@pytest.mark.parametrize("rule", RULES_UNDER_TEST, ids=lambda r: r.spec)
def test_batch_independence(rule):
    g = torch.Generator().manual_seed(1)
    s = torch.softmax(torch.randn(6, 16, generator=g) * 2, dim=1)
    batch = rule(s)
    for i in range(6):
        assert torch.equal(rule(s[i : i + 1])[0], batch[i])
    assert torch.equal(rule(s.flip(0)), batch.flip(0))


score_rows = st.integers(1, 24).flatmap(
    lambda p: st.lists(
        st.lists(st.floats(0.0, 1.0, width=32), min_size=p, max_size=p), min_size=1, max_size=4
    )
)


@settings(max_examples=60, deadline=None)
@given(score_rows, st.floats(0.0, 1.0), st.integers(1, 30))
def test_rule_properties(rows, delta, k):
    s = t(rows)
    s = s / s.sum(1, keepdim=True).clamp_min(1e-12)
    p = s.shape[1]
    top = TopK(k)(s)
    assert top.sum(1).tolist() == [min(k, p)] * len(rows)
    # every kept score >= every dropped score
    for row, m in zip(s, top, strict=True):
        if (~m).any():
            assert float(row[m].min()) >= float(row[~m].max())
    thr = AttentionThreshold(delta)(s)
    for row, m in zip(s, thr, strict=True):
        if (row >= delta).any():
            assert torch.equal(m, row >= delta)
        else:
            assert int(m.sum()) == 1 and float(row[m]) == float(row.max())
    cum = AttentionSumThreshold(delta)(s)
    for row, m in zip(s.double(), cum, strict=True):
        n = int(m.sum())
        assert n >= 1
        ordered = row.sort(descending=True).values
        if n > 1:
            assert float(row[m].sum()) <= delta * (1 + 1e-6)
        if n < p:  # maximal: one more would cross delta
            assert float(ordered[: n + 1].sum()) > delta * (1 - 1e-6)
        assert float(row[m].min()) >= float(ordered[n - 1]) - 1e-12


# -------------------------------------------------------------- spec parsing
@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("topk:16", TopK(16)),
        ("random:16", RandomK(16, 0)),
        ("random:16:7", RandomK(16, 7)),
        ("threshold:0.01", AttentionThreshold(0.01)),
        ("cumsum:0.9", AttentionSumThreshold(0.9)),
        ("rate:0.25", Rate(0.25)),
        ("rate:1", Rate(1.0)),
        (" TopK : 4 ", TopK(4)),
        ("threshold:0", AttentionThreshold(0.0)),
        ("cumsum:1e-1", AttentionSumThreshold(0.1)),
    ],
)
def test_create_rule(spec, rule):
    got = create_rule(spec)
    assert got == rule
    assert create_rule(got.spec) == got


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "topk",
        "topk:",
        "topk:0",
        "topk:-1",
        "topk:1.5",
        "topk:16.0",
        "topk:1e2",
        "topk:3:4",
        "random:x",
        "random:4:x",
        "random:4:1:2",
        "rate:0",
        "rate:0.0",
        "rate:1.5",
        "rate:-0.25",
        "rate:abc",
        "threshold:1.2",
        "threshold:-0.1",
        "threshold:nan",
        "cumsum:inf",
        "cumsum:-0.1",
        "cumsum:1.0001",
        "foo:1",
        "topk:16:",
        "bicubic",
    ],
)
def test_create_rule_rejects(spec):
    with pytest.raises(InputError):
        create_rule(spec)


def test_constructor_validation():
    for bad in (
        lambda: TopK(0),
        lambda: TopK(True),
        lambda: TopK(2.0),
        lambda: RandomK(0),
        lambda: RandomK(3, seed=-1),
        lambda: RandomK(3, seed=1.5),
        lambda: Rate(0.0),
        lambda: Rate(float("nan")),
        lambda: AttentionThreshold(1.5),
        lambda: AttentionSumThreshold(float("inf")),
        lambda: create_rule(16),
    ):
        with pytest.raises(InputError):
            bad()


def test_score_validation():
    rule = TopK(1)
    for bad in (
        torch.rand(5),  # 1-D
        torch.zeros(2, 0),  # no patches
        torch.ones(2, 3, dtype=torch.long),
        t([[0.1, float("nan")]]),
        [[0.1, 0.2]],
    ):
        with pytest.raises(InputError):
            rule(bad)
    for attention_rule in (AttentionThreshold(0.1), AttentionSumThreshold(0.5)):
        with pytest.raises(InputError):
            attention_rule(t([[0.5, -0.1, 0.6]]))
    assert TopK(1)(t([[-1.0, 2.0]])).tolist() == [[False, True]]  # topk takes any real


# ------------------------------------------------------------ index helpers
def test_mask_to_keep_and_indices():
    mask = torch.tensor([[True, False, True, False], [False, True, True, False]])
    assert mask_to_keep(mask).tolist() == [[0, 2], [1, 2]]
    assert [r.tolist() for r in mask_to_indices(mask)] == [[0, 2], [1, 2]]
    assert [r.tolist() for r in TopK(2).indices(t([[0.1, 0.4, 0.2, 0.3]]))] == [[1, 3]]
    with pytest.raises(InputError):
        mask_to_keep(torch.tensor([[True, False], [True, True]]))
    with pytest.raises(InputError):
        mask_to_keep(torch.tensor([[False, False]]))
    with pytest.raises(InputError):
        mask_to_keep(torch.tensor([[1, 0]]))


def test_selected_patches_drive_the_vit():
    from semcom.models.vit import VisionTransformer

    torch.manual_seed(0)
    m = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=3, num_classes=4
    ).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        scores = m(x, return_attention="mean")["attention"]
        keep = mask_to_keep(Rate(0.25)(scores))
        assert keep.shape == (3, 4)
        out = m(x, keep=keep, return_attention="mean")
    assert out["logits"].shape == (3, 4)
    assert bool((out["attention"] > 0).eq(Rate(0.25)(scores)).all())


# --------------------------------------------------------------- patch grid
def test_patchify_roundtrip_and_numbering():
    x = torch.arange(2 * 3 * 16 * 24, dtype=torch.int32).reshape(2, 3, 16, 24)
    p = patchify(x, 8)
    assert p.shape == (2, 6, 3, 8, 8)
    # patch 4 of a 2x3 grid is row 1, column 1
    assert torch.equal(p[:, 4], x[:, :, 8:16, 8:16])
    assert torch.equal(unpatchify(p, (2, 3)), x)
    sq = torch.rand(1, 3, 32, 32)
    assert torch.equal(unpatchify(patchify(sq, 8), 4), sq)
    with pytest.raises(InputError):
        patchify(x, 5)
    with pytest.raises(InputError):
        patchify(x[0], 8)
    with pytest.raises(InputError):
        unpatchify(p, 3)
