"""The progressive text scheme's building blocks: words, the text encoder's attention and
the text-to-image diffusion model (tiny random configurations)."""

from __future__ import annotations

import math

import pytest
import torch

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.text.words import BOS, EOS, PAD, UNK, Vocabulary, split_words, synthetic_vocabulary


def test_words_and_ids() -> None:
    from semcom.data import SyntheticWorld

    assert split_words("A red Circle, at the top-left.") == [
        "a",
        "red",
        "circle",
        "at",
        "the",
        "top-left",
    ]
    assert split_words("") == [] and split_words(" ,. ") == []
    v = synthetic_vocabulary()
    world = SyntheticWorld(size=32)
    for seed in range(200):  # every synthetic caption is in the vocabulary
        words = split_words(world.caption(seed))
        ids = v.encode(words)
        assert UNK not in ids and v.decode(ids) == words
    assert v.encode("a zebra on the left") == [
        v.id("a"),
        UNK,
        v.id("on"),
        v.id("the"),
        v.id("left"),
    ]
    assert v.id("<pad>") == UNK and "<eos>" not in v and "red" in v
    b = v.batch(["a red circle", "a"], bos=True, eos=True)
    assert b.tolist()[1] == [BOS, v.id("a"), EOS, PAD, PAD]
    assert v.decode(b[0]) == ["a", "red", "circle"]
    with pytest.raises(InputError):
        v.word(len(v))
    with pytest.raises(InputError):
        v.batch(["a " * 65])
    for bad in (["Red"], ["a", "a"], ["two words"], ["<unk>"]):
        with pytest.raises(InputError):
            Vocabulary(bad)
    with pytest.raises(InputError):
        split_words(3)  # type: ignore[arg-type]


def test_text_encoder_attention_is_row_stochastic_and_ignores_padding() -> None:
    torch.manual_seed(0)
    enc = create_model("text-encoder", vocab_size=20, dim=16, heads=2, depth=2, max_positions=12)
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0], [0, 0, 0, 0, 0]])
    hidden, atts = enc(ids, attentions=True)
    assert hidden.shape == (3, 5, 16) and len(atts) == 2
    for a in atts:
        assert a.shape == (3, 2, 5, 5)
        sums = a.sum(-1)
        assert torch.allclose(sums[0, :, :3], torch.ones(2, 3), atol=1e-6)
        assert (a[0, :, :, 3:] == 0).all() and (a[0, :, 3:] == 0).all()
        assert (a[2] == 0).all() and torch.isfinite(a).all()
    # padding changes nothing for the real words
    h_short, _ = enc(ids[:1, :3])
    assert torch.allclose(h_short, hidden[:1, :3], atol=1e-5)
    # positions matter: the same words elsewhere in the caption encode differently
    h_moved, _ = enc(ids[:1, :3], torch.tensor([[4, 5, 6]]))
    assert not torch.allclose(h_moved, h_short, atol=1e-4)
    assert enc(ids, attentions=False)[1] == []
    hidden.sum().backward()  # an all-padding caption keeps gradients finite
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    for bad in (torch.tensor([[20]]), torch.tensor([[-1]]), torch.tensor([1, 2]), ids.float()):
        with pytest.raises(InputError):
            enc(bad)
    with pytest.raises(InputError):
        enc(ids[:, :2], torch.tensor([[0, 12]] * 3))


TINY = dict(vocab_size=20, image_size=8, widths=(8, 8, 16), text_dim=16, text_depth=1,
            text_heads=2, max_positions=12, timesteps=50)  # fmt: skip


def test_diffusion_trains_and_generates_deterministically() -> None:
    from semcom.models.text_diffusion import cosine_alphas_cumprod, drop_words

    abar = cosine_alphas_cumprod(1000)
    assert abar.shape == (1000,) and (abar[1:] < abar[:-1]).all() and 0 < abar[-1] < 1e-3
    torch.manual_seed(0)
    m = create_model("text-diffusion", **TINY)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    pos = torch.arange(4).expand(2, 4)
    g = torch.Generator().manual_seed(0)
    dropped, _ = drop_words(ids.repeat(200, 1), pos.repeat(200, 1), g, p_uncond=0.2)
    kept = (dropped[::2] != 0).all(1).float().mean()  # E = 0.8 / 5 (keep p ~ U(0, 1))
    empty = (dropped[::2] == 0).all(1).float().mean()  # E = 0.2 + 0.8 / 5
    assert 0.08 < kept < 0.3 and 0.2 < empty < 0.55  # subsets of every size, some empty
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    images = torch.rand(2, 3, 16, 16)  # resized to image_size inside

    def held_out() -> float:  # the same times, noise and dropped words each time
        with torch.no_grad():
            return sum(m.loss(images, ids, pos, torch.Generator().manual_seed(k)).item()
                       for k in range(8))  # fmt: skip

    first = held_out()
    for _ in range(30):
        loss = m.loss(images, ids, pos, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out() < first
    m.eval()
    x = m.generate(ids, pos, seeds=[3, 4], steps=5, guidance=2.0)
    assert x.shape == (2, 3, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1
    # an image depends on its words and seed only, not on its batch
    alone = m.generate(ids[1:], pos[1:], seeds=[4], steps=5, guidance=2.0)
    assert torch.allclose(alone, x[1:], atol=1e-5)
    assert not torch.allclose(m.generate(ids[1:], pos[1:], seeds=[5], steps=5), alone)
    empty_caption = m.generate(torch.zeros(1, 0, dtype=torch.int64), seeds=[4], steps=5)
    assert empty_caption.shape == (1, 3, 8, 8)
    for kw in ({"steps": 0}, {"steps": 51}, {"guidance": -1.0}, {"seeds": [1]}):
        with pytest.raises(InputError):
            m.generate(ids, pos, **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        create_model("text-diffusion", **{**TINY, "widths": (8, 12, 16)})
    with pytest.raises(InputError, match="prediction"):
        create_model("text-diffusion", **{**TINY, "prediction": "x0"})


@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_the_network_output_splits_into_the_noise_and_the_image(prediction: str) -> None:
    m = create_model("text-diffusion", **{**TINY, "prediction": prediction})
    x0, eps = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 3, 8, 8)
    abar = torch.tensor([0.9, 0.05]).view(-1, 1, 1, 1)
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    out = abar.sqrt() * eps - (1 - abar).sqrt() * x0 if prediction == "v" else eps
    e, x = m.split(xt, out, abar)
    assert torch.allclose(e, eps, atol=1e-5) and torch.allclose(x, x0, atol=1e-4)


def test_word_attention_pools_tokens_into_words_and_drops_specials() -> None:
    from semcom.text.attention import word_attention

    # 5 tokens: <bos>, word0, word1 (two pieces), <eos>
    a = torch.tensor(
        [
            [0.2, 0.2, 0.2, 0.2, 0.2],
            [0.5, 0.1, 0.2, 0.2, 0.0],  # word0 -> word1 pieces 0.4 of the 0.5 left
            [0.0, 0.3, 0.3, 0.3, 0.1],
            [0.0, 0.1, 0.1, 0.7, 0.1],
            [0.2, 0.2, 0.2, 0.2, 0.2],
        ]
    )
    w = word_attention([a[None]], [-1, 0, 1, 1, -1])
    assert w.shape == (2, 2)
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=torch.float64))
    assert w[0].tolist() == pytest.approx([0.2, 0.8])  # (0.1 | 0.2 + 0.2) / 0.5
    row1 = (torch.tensor([0.3, 0.6]) / 0.9 + torch.tensor([0.1, 0.8]) / 0.9) / 2
    assert w[1].tolist() == pytest.approx(row1.tolist())
    # layers and heads are averaged (or picked)
    two = torch.stack([a, a.T.contiguous() / a.T.sum(1, keepdim=True)])
    both = word_attention([two], [-1, 0, 1, 1, -1])
    first = word_attention([two], [-1, 0, 1, 1, -1], heads=[0])
    assert torch.allclose(first, w) and not torch.allclose(both, w)
    assert word_attention([a[None]], [-1] * 5).shape == (0, 0)
    for kw in ({"layers": [1]}, {"heads": [2]}, {"layers": []}):
        with pytest.raises(InputError):
            word_attention([a[None]], [-1, 0, 1, 1, -1], **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        word_attention([a[None]], [0, 1, 1])
    with pytest.raises(InputError):
        word_attention([a[None]], [1, 0, 0, 0, 0])


def test_orderings() -> None:
    from semcom.text.orderings import (
        attentive_order,
        lowest_distance_order,
        natural_order,
        random_order,
    )

    assert natural_order(3) == [0, 1, 2]
    r = random_order(10, seed=1)
    assert sorted(r) == list(range(10)) and r == random_order(10, seed=1) != natural_order(10)
    w = torch.tensor(
        [
            [0.1, 0.6, 0.2, 0.1],
            [0.1, 0.1, 0.7, 0.1],
            [0.5, 0.3, 0.1, 0.1],
            [0.1, 0.5, 0.3, 0.1],
        ]
    )
    # column sums without the diagonal: 0.7, 1.4, 1.2, 0.3 -> word 1 first
    assert attentive_order(w, "most") == [1, 2, 0, 3]
    assert attentive_order(w, "least") == [1, 0, 3, 2]
    assert attentive_order(torch.zeros(0, 0)) == []
    with pytest.raises(InputError):
        attentive_order(w, "middle")
    with pytest.raises(InputError):
        attentive_order(torch.zeros(2, 3))

    target = {0: 5.0, 1: 1.0, 2: 3.0, 3: 2.0}  # each word's worth; the distance drops as
    calls: list[int] = []  # the set's worth grows

    def distance(sets: list[list[int]]) -> list[float]:
        calls.append(len(sets))
        return [10.0 - sum(target[i] for i in s) for s in sets]

    order, curve = lowest_distance_order(4, distance)
    assert order == [0, 2, 3, 1] and curve == [5.0, 2.0, 0.0, -1.0] and calls == [4, 3, 2, 1]
    calls.clear()
    order, curve = lowest_distance_order(4, distance, stop_at=2.5)
    assert order == [0, 2, 1, 3] and curve == [5.0, 2.0] and calls == [4, 3]


def test_the_generator_recipe_trains_on_captions_and_scores_semantic_success(
    tmp_path,  # noqa: ANN001
) -> None:
    from semcom.train.loop import train_patch_model
    from semcom.train.recipes.text_diffusion import CAPTION_LEN, CaptionSource

    x, ids, masks = CaptionSource("classify", seed=0, image_size=32).batch(0, 4)
    assert x.shape == (4, 3, 32, 32) and ids.shape == (4, CAPTION_LEN) and masks is not None
    assert (ids[:, :5] > 3).all()  # real words first, then padding
    kw = {"image_size": 8, "widths": [8, 8, 16], "text_dim": 16, "text_depth": 1,
          "text_heads": 2, "timesteps": 20}  # fmt: skip
    res = train_patch_model(
        "text-diffusion-synth", tmp_path, model_kw=kw, steps=2, batch_size=4, eval_n=4,
        quiet=True, ckpt_every=0, eval_steps=2,
    )  # fmt: skip
    m = res.metrics
    assert m["n"] == 4 and m["steps"] == 2
    for key in ("shape_accuracy", "shape_accuracy_half", "shape_accuracy_uncond"):
        assert 0.0 <= m[key] <= 1.0
    with pytest.raises(InputError, match="synthetic"):
        train_patch_model("text-diffusion-synth", tmp_path, dataset="camvid", data_root=tmp_path)
    # a second training starts from the first one's weights (--init)
    first = tmp_path / "text-diffusion-synth.safetensors"
    again = train_patch_model(
        "text-diffusion-synth", tmp_path / "again", model_kw=kw, steps=1, batch_size=4,
        eval_n=0, quiet=True, ckpt_every=0, init=str(first), lr=1e-9,
    )  # fmt: skip
    from semcom.models.zoo import load_model

    a, b = load_model(str(first)), load_model(str(again.checkpoint))
    close = zip(a.parameters(), b.parameters(), strict=True)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in close)
    # --ema: the final weights are the running average, not the last step's
    runs = [
        train_patch_model(
            "text-diffusion-synth",
            tmp_path / f"ema{d}",
            model_kw=kw,
            steps=3,
            batch_size=4,
            eval_n=0,
            quiet=True,
            ckpt_every=0,
            init=str(first),
            ema=d,
        )  # fmt: skip
        for d in (0.0, 0.5)
    ]
    plain, avg = (load_model(str(r.checkpoint)) for r in runs)
    pairs = zip(plain.parameters(), avg.parameters(), strict=True)
    assert not all(torch.equal(p, q) for p, q in pairs)
    with pytest.raises(InputError, match="ema"):
        train_patch_model("text-diffusion-synth", tmp_path / "x", model_kw=kw, steps=1, ema=1.0)
    with pytest.raises(InputError, match="init"):
        other = {**kw, "widths": [8, 16, 16]}
        train_patch_model("text-diffusion-synth", tmp_path / "bad", model_kw=other, steps=1,
                          batch_size=4, eval_n=0, quiet=True, init=str(first))  # fmt: skip


def test_bleu_and_caption_attributes() -> None:
    from semcom.text.metrics import caption_attributes, corpus_bleu

    ref = split_words("a large red circle in the center on a plain blue background")
    assert corpus_bleu([ref], [ref]) == pytest.approx(1.0)
    assert corpus_bleu([ref], [[]]) == 0.0
    short = ref[:-2]  # 10 of 12 words: every n-gram matches, brevity penalty exp(1 - 12/10)
    assert corpus_bleu([ref], [short]) == pytest.approx(math.exp(1 - 12 / 10))
    swapped = ref[:2] + ["green"] + ref[3:]
    assert 0 < corpus_bleu([ref], [swapped]) < 1
    a = caption_attributes(ref)
    assert a == {"size": "large", "color": "red", "shape": "circle", "objects": 1,
                 "texture": "plain", "bg_color": "blue"}  # fmt: skip
    assert caption_attributes([]) == dict.fromkeys(a)
    with pytest.raises(ValueError):
        corpus_bleu([ref], [])


def test_captioner_learns_teacher_forcing_and_decodes_greedily(tmp_path) -> None:  # noqa: ANN001
    from semcom.text.words import EOS
    from semcom.train.loop import train_patch_model
    from semcom.train.recipes.captioner import teacher_forcing

    ids = torch.tensor([[5, 6, 7], [8, 0, 0]])
    inp, tgt = teacher_forcing(ids)
    assert inp.tolist() == [[BOS, 5, 6, 7], [BOS, 8, 0, 0]]
    assert tgt.tolist() == [[5, 6, 7, EOS], [8, EOS, 0, 0]]
    torch.manual_seed(0)
    m = create_model("captioner", vocab_size=20, image_size=16, dim=16, depth=1, heads=2,
                     max_positions=8)  # fmt: skip
    images = torch.rand(2, 3, 16, 16)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(60):  # memorise two captions
        loss = torch.nn.functional.cross_entropy(
            m(images, inp).flatten(0, 1), tgt.flatten(), ignore_index=0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert m.caption(images) == [[5, 6, 7], [8]]
    assert m.caption(images, max_words=2) == [[5, 6], [8]]
    assert m(torch.rand(1, 3, 24, 24), inp[:1]).shape == (1, 4, 20)  # resized inside
    for bad in (torch.tensor([[20]]), torch.zeros(1, 9, dtype=torch.int64)):
        with pytest.raises(InputError):
            m(images[:1], bad)
    res = train_patch_model(
        "captioner-synth", tmp_path, model_kw={"dim": 16, "depth": 1, "heads": 2},
        image_size=16, steps=2, batch_size=4, eval_n=4, quiet=True, ckpt_every=0,
    )  # fmt: skip
    assert res.metrics["n"] == 4 and 0 <= res.metrics["bleu4"] <= 1
    assert {"exact_match", "word_accuracy", "attr_shape", "attr_bg_color"} <= set(res.metrics)
