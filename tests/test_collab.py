"""Collaborative edge-server inference: gates, the collab scheme's sessions and costs,
the server's token-subset classification, the vit-server recipe."""

from __future__ import annotations

import json
import math

import pytest
import torch

from semcom.errors import BitstreamError, InputError
from semcom.models.vit import create_vit
from semcom.schemes import create_receiver, create_scheme
from semcom.schemes.collab import CollabScheme
from semcom.schemes.gates import confident, gate_score


def _vit(seed: int, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = dict(embed_dim=16, depth=2, num_heads=2, num_classes=12)
    cfg.update(kw)
    return create_vit("vit-edge-synth", **cfg).eval()


def _images(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)


# ------------------------------------------------------------------------ gates
def test_gate_scores_are_the_definitions() -> None:
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25] * 4])
    assert torch.allclose(
        gate_score(p, "entropy"), torch.tensor([1.5, 0.0, 2.0], dtype=torch.float64)
    )
    assert torch.allclose(
        gate_score(p, "min-entropy"), torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    )
    assert torch.allclose(
        gate_score(p, "margin"), torch.tensor([0.25, 1.0, 0.0], dtype=torch.float64)
    )
    # confident: entropy / min-entropy below eta, margin above
    assert confident(p, "entropy", 1.5).tolist() == [False, True, False]
    assert confident(p, "entropy", 1.51).tolist() == [True, True, False]
    assert confident(p, "min-entropy", 1.5).tolist() == [True, True, False]
    assert confident(p, "margin", 0.2).tolist() == [True, True, False]
    assert confident(p, "never", 0).all() and not confident(p, "always", 0).any()
    for gate, eta in (("margin", 1.5), ("entropy", -1.0), ("entropy", math.inf), ("nope", 1)):
        with pytest.raises(InputError):
            confident(p, gate, eta)


# ------------------------------------------------------------------- the scheme
def _scheme(**kw) -> CollabScheme:
    opts = dict(edge=_vit(0), server=_vit(1, embed_dim=32), gate="min-entropy", rule="mass:0.5")
    opts.update(kw)
    return CollabScheme(**opts)


def test_confident_images_send_nothing_and_keep_the_edge_answer() -> None:
    s = _scheme(gate="never")
    txs = s.transmit_batch(_images(4), 0.0)
    assert all(tx.messages == [] for tx in txs)
    logits = s.vit(_images(4).float() / 255)["logits"]
    assert torch.allclose(torch.stack([tx.local.logits for tx in txs]), logits, atol=1e-5)
    assert s.measured_cost(0.0, txs) == {
        "offload_fraction": 0.0,
        "patch_fraction": 0.0,
        "patches_per_offload": 0.0,
    }  # fmt: skip  (no division by zero when every image is confident)


def test_uncertain_images_send_the_selected_patches_and_the_server_classifies_them() -> None:
    s = _scheme(gate="always", rule="topk:5")
    imgs = _images(3)
    txs = s.transmit_batch(imgs, 0.0)
    assert all(len(tx.messages) == 1 and tx.stats["patches"] == 5 for tx in txs)
    cost = s.measured_cost(0.0, txs)
    assert cost["offload_fraction"] == 1.0 and cost["patch_fraction"] == pytest.approx(5 / 64)
    out = s.decompress_batch([tx.messages[0] for tx in txs])
    # the server classified exactly the 5 patches the edge's attention ranked highest
    att = s.vit(imgs.float() / 255, return_attention="mean")["attention"]
    keep = att.topk(5, dim=1).indices.sort(dim=1).values
    want = s.server(imgs.float() / 255, keep=keep)["logits"]
    for d, w, k in zip(out, want, keep, strict=True):
        assert torch.allclose(d.logits, w, atol=1e-5)
        assert d.aux["mask"].nonzero().flatten().tolist() == k.tolist()
    # a receiver built from the wire name decodes with its own (default) models: refuses
    # a message made for other server weights
    assert create_receiver("collab").name == "collab"


def test_the_gate_threshold_decides_how_many_are_offloaded() -> None:
    s = _scheme(gate="entropy")
    imgs = _images(8)
    offloaded = [
        s.measured_cost(e, s.transmit_batch(imgs, e))["offload_fraction"] for e in (0.0, 3.0, 4.0)
    ]
    assert offloaded[0] == 1.0 and offloaded[-1] == 0.0  # log2(12) = 3.58 bits at most
    assert offloaded[0] >= offloaded[1] >= offloaded[2]
    with pytest.raises(InputError):
        s.validate_rate(-0.5)
    with pytest.raises(InputError):
        _scheme(gate="margin").validate_rate(2.0)


def test_a_message_for_other_server_weights_is_refused() -> None:
    from semcom.models.fingerprint import ModelMismatchError

    tx = _scheme(gate="always").transmit_batch(_images(1), 0.0)[0]
    other = _scheme(gate="always", server=_vit(7, embed_dim=32))
    with pytest.raises(ModelMismatchError):
        other.decompress(tx.messages[0])
    res = other.decompress_batch([tx.messages[0], b"junk"])
    assert all(isinstance(r, BitstreamError) for r in res)


def test_a_cnn_server_classifies_the_image_with_unsent_patches_black() -> None:
    class Mean(torch.nn.Module):  # logits = per-channel means (so black patches show)
        def forward(self, x):
            return x.mean(dim=(2, 3))

    s = _scheme(gate="always", rule="topk:8", server=Mean(), check_models=False)
    imgs = _images(2)
    tx = s.transmit_batch(imgs, 0.0)
    d = s.decompress_batch([t.messages[0] for t in tx])
    mask = d[0].aux["mask"].view(8, 8).repeat_interleave(8, 0).repeat_interleave(8, 1)
    want = (imgs[0].float() / 255 * mask).mean(dim=(1, 2))
    assert torch.allclose(d[0].logits, want, atol=1e-6)


def test_lost_pixels_leave_the_edge_answer(monkeypatch) -> None:
    from semcom.experiments.sweep import run_point, synthetic_evalset

    ev = synthetic_evalset(6)
    s = _scheme(gate="always", rule="rate:0.5")
    s.default_rates = (0.0,)
    txs = s.transmit_batch(ev.images, 0.0)
    rec = run_point(s, 0.0, txs, 1.0, "erasure:1.0", ev, [], seed=0)
    assert rec is not None and rec.failure_rate == 0.0  # every message lost: edge answers
    edge_acc = float(
        (torch.stack([t.local.logits for t in txs]).argmax(1) == ev.labels).float().mean()
    )
    assert rec.metrics["accuracy"] == pytest.approx(edge_acc)
    ideal = run_point(s, 0.0, txs, 1.0, "ideal", ev, [], seed=0)
    assert ideal.cost["offload_fraction"] == 1.0 and ideal.mean_bytes > 0


def test_spec_and_defaults() -> None:
    s = create_scheme("collab[gate=margin,attention=rollout,rule=threshold:0.02,pixels=q4]")
    assert s.gate == "margin" and s.selection == "rollout" and s.rule.spec == "threshold:0.02"
    assert s.default_rates[0] < s.default_rates[-1] <= 1
    assert s.rate_label(0.5) == "margin eta=0.5"
    with pytest.raises(InputError):
        create_scheme("collab[gate=bogus]")
    with pytest.raises(InputError):
        create_scheme("collab[rule=cumsum:7]")
    with pytest.raises(InputError, match="transmit"):
        s.compress(_images(1)[0], 0.5)


def test_rollout_ref_is_the_reference_code_rollout() -> None:
    vit = _vit(3)
    with torch.no_grad():  # peaky attention, so that the two rollouts differ
        for b in vit.blocks:
            b.attn.qkv.weight.mul_(30)
    x = _images(2).float() / 255
    maps = vit.attention_maps(x)
    eye = torch.eye(maps[0].shape[-1])
    r = maps[0] + eye
    for a in maps[1:]:
        r = (a + eye) @ r
    row = r.mean(1)[:, 0, 1:]
    want = row / row.sum(1, keepdim=True)
    got = vit(x, return_attention="rollout-ref")["attention"]
    assert torch.allclose(got, want, atol=1e-6)
    standard = vit(x, return_attention="rollout")["attention"]
    assert (got - standard).abs().max() > 1e-3


def test_vit_server_recipe_trains_on_token_subsets(tmp_path) -> None:
    from semcom.train.loop import fit
    from semcom.train.recipes import ServerRecipe

    r = ServerRecipe(model_kw={"embed_dim": 16, "depth": 1, "num_heads": 2}, min_rate=0.1)
    seen: list[int] = []
    real = r.loss

    def spy(net, model, batch):
        hook = model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(o[0].shape[1]))
        try:
            return real(net, model, batch)
        finally:
            hook.remove()

    r.loss = spy  # type: ignore[method-assign]
    res = fit(r, tmp_path, steps=6, batch_size=4, eval_n=8, quiet=True, resume=False)
    assert {"accuracy", "accuracy_rand_r0.25", "accuracy_rand_r0.5"} <= set(res.metrics)
    assert len(set(seen)) > 1 and min(seen) < 65  # token counts vary, subsets happen


def test_grid_frontier_and_summary(tmp_path) -> None:
    from semcom.experiments.collab import (
        collab_figure,
        frontier,
        grid_specs,
        summarise,
        write_summary,
    )
    from semcom.experiments.sweep import SweepConfig, run_sweep, synthetic_evalset

    assert frontier([(0, 0.5), (10, 0.4), (5, 0.6), (5, 0.7), (20, 0.9)]) == [
        (0, 0.5), (5, 0.7), (20, 0.9),
    ]  # fmt: skip
    specs = grid_specs("E", "S", gates=("margin",), attentions=("mean",), rules=("mass:0.5",))
    assert [create_scheme(s).label for s in specs] == [
        "client-only", "server-only", "collab:margin:mean:mass:0.5",
    ]  # fmt: skip
    edge, server = _vit(0), _vit(1, embed_dim=32)
    schemes = {
        "client-only": CollabScheme(edge=edge, server=server, gate="never"),
        "server-only": CollabScheme(edge=edge, server=server, gate="always", rule="rate:1.0"),
        "m": CollabScheme(edge=edge, server=server, gate="margin", rule="topk:8"),
    }
    for label, sch in schemes.items():
        sch._label = label
    import semcom.experiments.sweep as sweep_mod

    real = sweep_mod.plan_points
    sweep_mod.plan_points = lambda cfg: [  # in-memory schemes instead of specs
        (schemes["client-only"], 0.0), (schemes["server-only"], 0.0),
        (schemes["m"], 0.1), (schemes["m"], 0.9),
    ]  # fmt: skip
    try:
        recs = run_sweep(SweepConfig(schemes=[]), synthetic_evalset(8), [], progress=False)
    finally:
        sweep_mod.plan_points = real
    s = summarise(recs)
    assert s["client_only"] == recs[0].metrics["accuracy"]
    assert s["server_only_bytes"] == recs[1].mean_bytes > recs[3].mean_bytes >= 0
    rows = {(r["label"], r["eta"]): r for r in s["rows"]}
    assert rows[("m", 0.9)]["confident"] <= rows[("m", 0.1)]["confident"]
    assert s["frontier_bytes"][0][0] == 0.0  # client-only: free
    js, md = write_summary(s, tmp_path)
    assert "| client-only |" in md.read_text() and json.loads(js.read_text())["rows"]
    assert collab_figure(s, tmp_path / "c.png").stat().st_size > 1000


def test_a_classifier_server_trains_on_blanked_images(tmp_path) -> None:
    from semcom.train.loop import fit
    from semcom.train.recipes import ServerRecipe
    from semcom.train.recipes.server import blank_outside

    x = torch.ones(1, 3, 16, 16)
    out = blank_outside(x, torch.tensor([[0, 3]]), 8)
    assert out[0, :, :8, :8].eq(1).all() and out[0, :, 8:, 8:].eq(1).all()
    assert out[0, :, :8, 8:].eq(0).all() and out[0, :, 8:, :8].eq(0).all()
    r = ServerRecipe(arch="shape-classifier", model_kw={"widths": [8, 8, 8, 8]}, min_rate=0.1)
    res = fit(r, tmp_path, steps=3, batch_size=4, eval_n=8, quiet=True, resume=False)
    assert {"accuracy", "accuracy_rand_r0.25"} <= set(res.metrics)
    assert type(res.model).__name__ == "ShapeClassifier"


def test_a_vit_server_distils_from_a_classifier_server(tmp_path) -> None:
    """server-synth with a teacher: the loss mixes CE and the KL to the classifier's
    answer on the same blanked image (a = 1: the teacher's term only, which is 0 when
    the student already answers as the teacher does)."""
    from semcom.models.checkpoint import save_checkpoint
    from semcom.models.classifier import ShapeClassifier
    from semcom.train.loop import fit
    from semcom.train.recipes import ServerRecipe

    torch.manual_seed(0)
    teacher = ShapeClassifier(widths=[8, 8, 8, 8])
    tpath = tmp_path / "teacher.safetensors"
    save_checkpoint(teacher, tpath, name="shape-classifier")
    kw = {"embed_dim": 16, "depth": 1, "num_heads": 2}
    r = ServerRecipe(model_kw=kw, min_rate=0.1, teacher=str(tpath), distill_weight=1.0)
    res = fit(r, tmp_path / "run", steps=3, batch_size=4, eval_n=8, quiet=True, resume=False)
    assert r.teacher is not None and not r.teacher.training
    logits = torch.randn(4, 12)
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        t = r.teacher(x)
    y = torch.zeros(4, dtype=torch.long)
    assert float(r.distilled(t, y, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(r.distilled(logits, y, x)) > 0.01
    assert "accuracy" in res.metrics
    vit = tmp_path / "vit.safetensors"
    save_checkpoint(res.model, vit, name="vit-hybrid-synth")
    bad = ServerRecipe(model_kw=kw, teacher=str(vit))
    with pytest.raises(InputError, match="not a ViT"):
        fit(bad, tmp_path / "bad", steps=1, batch_size=2, eval_n=0, quiet=True, resume=False)


def test_server_rows_can_keep_the_edges_top_attention_patches(tmp_path) -> None:
    """--edge-attn-frac 1: every row keeps the edge ViT's top-k patches (the subsets it
    sends); --init starts from a checkpoint of the same config and refuses another."""
    from semcom.models.checkpoint import save_checkpoint
    from semcom.train.loop import fit
    from semcom.train.patch import cls_attention
    from semcom.train.recipes import ServerRecipe

    torch.manual_seed(0)
    edge = create_vit("vit-edge-synth", embed_dim=16, depth=1, num_heads=2).eval()
    epath = tmp_path / "edge.safetensors"
    save_checkpoint(edge, epath, name="vit-edge-synth")
    kw = {"embed_dim": 16, "depth": 1, "num_heads": 2}
    r = ServerRecipe(model_kw=kw, min_rate=0.1, edge_attn_frac=1.0, vit=str(epath), aux_weight=0.0)
    kept: list[torch.Tensor] = []
    xs: list[torch.Tensor] = []
    real = r.loss

    def spy(net, model, batch):
        orig = model.forward

        def fwd(x, **k):
            if k.get("keep") is not None:
                kept.append(k["keep"])
                xs.append(x)
            return orig(x, **k)

        model.forward = fwd
        try:
            return real(net, model, batch)
        finally:
            del model.forward

    r.loss = spy  # type: ignore[method-assign]
    res = fit(r, tmp_path / "a", steps=2, batch_size=4, eval_n=0, quiet=True, resume=False)
    assert kept, "the server saw no subset"
    for keep, x in zip(kept, xs, strict=True):
        want = cls_attention(r.vit, x).topk(keep.shape[1], dim=1).indices
        assert torch.equal(keep, want)
    ckpt = tmp_path / "s.safetensors"
    save_checkpoint(res.model, ckpt, name="vit-hybrid-synth")
    again = ServerRecipe(model_kw=kw, init=str(ckpt))
    fit(again, tmp_path / "b", steps=1, batch_size=2, eval_n=0, quiet=True, resume=False)
    other = ServerRecipe(model_kw={**kw, "embed_dim": 32}, init=str(ckpt))
    with pytest.raises(InputError, match="--init"):
        fit(other, tmp_path / "c", steps=1, batch_size=2, eval_n=0, quiet=True, resume=False)
