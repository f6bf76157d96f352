"""The progressive text scheme's building blocks: words, the text encoder's attention and
the text-to-image diffusion model (tiny random configurations)."""

from __future__ import annotations

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
    first = None
    for _ in range(30):
        loss = m.loss(images, ids, pos, g)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
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
