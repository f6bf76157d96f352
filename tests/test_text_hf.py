"""The real-model adapters (extra hf) on tiny random configurations, offline."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from semcom.errors import InputError  # noqa: E402
from semcom.text.hf import ClipWordAttention, token_words  # noqa: E402


def _clip_tokenizer(tmp_path: Path) -> object:
    chars = list(string.ascii_lowercase) + list("-,.'")
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["re"] = len(vocab)
    vocab["red</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nr e\nre d</w>\n")
    return transformers.CLIPTokenizerFast(
        str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")
    )


def _clip(tok: object, impl: str = "eager") -> object:
    torch.manual_seed(0)
    cfg = transformers.CLIPTextConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=0,
    )  # fmt: skip
    return (
        transformers.CLIPTextModel(cfg).eval()
        if impl == "eager"
        else (transformers.CLIPTextModel._from_config(cfg, attn_implementation=impl).eval())
    )


def test_token_words_maps_pieces_to_our_words() -> None:
    words, tw = token_words("A red, top-left", [(0, 0), (0, 1), (2, 5), (5, 6), (7, 10),
                                                 (10, 11), (11, 15), (0, 0)])  # fmt: skip
    assert words == ["a", "red", "top-left"]
    assert tw == [-1, 0, 1, -1, 2, 2, 2, -1]


def test_clip_word_attention_is_per_word_and_needs_eager(tmp_path: Path) -> None:
    tok = _clip_tokenizer(tmp_path)
    att = ClipWordAttention(_clip(tok), tok)
    words, w = att("a red circle, at the top-left")
    assert words == ["a", "red", "circle", "at", "the", "top-left"]
    assert w.shape == (6, 6) and torch.allclose(w.sum(1), torch.ones(6, dtype=torch.float64))
    from semcom.text.orderings import attentive_order

    order = attentive_order(w, "most")
    assert sorted(order) == list(range(6))
    one = ClipWordAttention(_clip(tok), tok, layers=[1], heads=[0])("a red circle")[1]
    assert one.shape == (3, 3)
    sdpa = _clip(tok, "sdpa")
    switched = ClipWordAttention(sdpa, tok)  # switched to eager, or refused
    assert switched("a red circle")[1].shape == (3, 3)
    with pytest.raises(InputError, match="no words"):
        att(" , ")


def test_adapters_refuse_missing_folders(tmp_path: Path) -> None:
    from semcom.text.hf import BlipCaptioner, DiffusersGenerator

    for cls in (ClipWordAttention, BlipCaptioner):
        with pytest.raises((InputError, OSError)):
            cls.from_pretrained(tmp_path / "nothing")
    pytest.importorskip("diffusers")
    with pytest.raises((InputError, OSError)):
        DiffusersGenerator.from_pretrained(tmp_path / "nothing")


def test_blip_captioner_captions_an_image_and_round_trips_a_folder(tmp_path: Path) -> None:
    from semcom.text.hf import BlipCaptioner

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "[DEC]"]
    (tmp_path / "vocab.txt").write_text("\n".join(words + list(string.ascii_lowercase)) + "\n")
    tok = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    pil = getattr(transformers, "BlipImageProcessorPil", transformers.BlipImageProcessor)
    proc = transformers.BlipProcessor(image_processor=pil(size={"height": 32, "width": 32}),
                                      tokenizer=tok)  # fmt: skip
    torch.manual_seed(0)
    text = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=16,
                bos_token_id=tok.convert_tokens_to_ids("[DEC]"), pad_token_id=0,
                sep_token_id=3, eos_token_id=3)  # fmt: skip
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, image_size=32, patch_size=16)  # fmt: skip
    model = transformers.BlipForConditionalGeneration(
        transformers.BlipConfig(text_config=text, vision_config=vision)
    )
    cap = BlipCaptioner(model, proc, max_new_tokens=4)
    img = torch.randint(
        0, 256, (3, 40, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    first = cap.caption(img)
    assert isinstance(first, str) and first == cap.caption(img)  # greedy: deterministic
    model.save_pretrained(tmp_path / "blip")
    proc.save_pretrained(tmp_path / "blip")
    assert BlipCaptioner.from_pretrained(tmp_path / "blip", max_new_tokens=4).caption(img) == first
    with pytest.raises(InputError):
        cap.caption(img.float())


def test_diffusers_generator_is_deterministic_given_the_seed(tmp_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers")
    from semcom.text.hf import DiffusersGenerator

    tok = _clip_tokenizer(tmp_path)
    tok.model_max_length = 77
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        attention_head_dim=2, norm_num_groups=4,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8,), latent_channels=4,
        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        norm_num_groups=4, sample_size=8,
    )  # fmt: skip
    sched = diffusers.DDIMScheduler(num_train_timesteps=50, clip_sample=False, steps_offset=1)
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=_clip(tok), tokenizer=tok, unet=unet, scheduler=sched,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    gen = DiffusersGenerator(pipe, steps=2)
    a = gen.generate("a red circle", 3, (16, 16))
    assert a.shape == (3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, gen.generate("a red circle", 3, (16, 16)))
    assert not torch.equal(a, gen.generate("a red circle", 4, (16, 16)))
    with pytest.raises(InputError):
        gen.generate("a red circle", 3, (12, 16))


def test_word_attention_from_a_bert_folder(tmp_path: Path) -> None:
    from semcom.text.hf import WordAttention

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "runs", "##s", "run"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32)  # fmt: skip
    transformers.BertModel(cfg).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    att = WordAttention.from_pretrained(tmp_path / "bert")
    got, w = att("A dog runs")
    assert got == ["a", "dog", "runs"] and w.shape == (3, 3)
    with pytest.raises(InputError, match="config.json"):
        WordAttention.from_pretrained(tmp_path)
