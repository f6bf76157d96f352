"""An image captioner of our own (``captioner``): the transmitter's image-to-text model in
the progressive text scheme (Nam et al. use BLIP).

A small CNN turns the image into a grid of feature vectors (one per ``stride`` x
``stride`` cell, plus a learned position embedding per cell); a transformer decoder
reads the caption so far (word ids, :mod:`semcom.text.words`) with causal
self-attention and cross-attention to the grid, and predicts the next word.

Shapes: images float32 ``(B, 3, S, S)`` in ``[0, 1]`` (``S`` = ``image_size``, others
are resized, bilinear); ``ids`` int64 ``(B, T)`` starting with ``<bos>``; logits float32
``(B, T, V)``. :meth:`Captioner.caption` decodes greedily to ``<eos>``.

State-dict keys: ``cnn.*``, ``grid_pos`` ``(1, cells, D)``, ``embed.weight`` ``(V, D)``,
``pos.weight`` ``(P, D)``, ``decoder.layers.<l>.*`` (torch's TransformerDecoderLayer),
``norm.*``, ``head.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import register_model

__all__ = ["Captioner"]


@register_model("captioner")
class Captioner(nn.Module):
    """See the module docstring.

    Args:
        vocab_size: the vocabulary's length (specials included).
        image_size: side the CNN takes (a multiple of 8).
        dim: model width; depth: decoder layers; heads: attention heads.
        max_positions: longest caption in tokens (``<bos>`` and ``<eos>`` included).
    """

    task = "caption"

    def __init__(
        self,
        vocab_size: int = 48,
        image_size: int = 64,
        dim: int = 128,
        depth: int = 2,
        heads: int = 4,
        max_positions: int = 34,
    ) -> None:
        super().__init__()
        if image_size < 8 or image_size % 8 or dim % heads or depth < 1 or vocab_size < 5:
            raise InputError(
                "captioner: image_size a multiple of 8, heads dividing dim, depth >= 1, "
                "vocab_size >= 5"
            )
        self.vocab_size, self.image_size, self.max_positions = vocab_size, image_size, max_positions
        c = dim // 2

        def block(cin: int, cout: int) -> list[nn.Module]:
            down = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
            conv = nn.Conv2d(cout, cout, 3, padding=1)
            return [down, nn.BatchNorm2d(cout), nn.GELU(), conv, nn.BatchNorm2d(cout), nn.GELU()]

        self.cnn = nn.Sequential(*block(3, c // 2), *block(c // 2, c), *block(c, dim))
        cells = (image_size // 8) ** 2
        self.grid_pos = nn.Parameter(torch.zeros(1, cells, dim))
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_positions, dim)
        layer = nn.TransformerDecoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        nn.init.normal_(self.grid_pos, std=0.02)

    def features(self, images: Tensor) -> Tensor:
        """float ``(B, cells, D)``: the image grid the decoder attends to."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"captioner takes (B, 3, H, W) images, got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size,) * 2, mode="bilinear",
                                   align_corners=False)  # fmt: skip
        return self.cnn(images).flatten(2).transpose(1, 2) + self.grid_pos

    def forward(self, images: Tensor, ids: Tensor, memory: Tensor | None = None) -> Tensor:
        """Next-word logits ``(B, T, V)`` for every prefix of ``ids`` ``(B, T)``."""
        if ids.ndim != 2 or ids.shape[1] > self.max_positions:
            raise InputError(f"captioner ids must be (B, T <= {self.max_positions})")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise InputError(f"word ids must be in 0..{self.vocab_size - 1}")
        mem = self.features(images) if memory is None else memory
        t = ids.shape[1]
        x = self.embed(ids) + self.pos(torch.arange(t, device=ids.device))
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=ids.device), 1)
        y = self.decoder(x, mem, tgt_mask=causal, tgt_key_padding_mask=ids == 0)
        return self.head(self.norm(y))

    @torch.no_grad()
    def caption(self, images: Tensor, max_words: int | None = None) -> list[list[int]]:
        """Greedy captions: per image the word ids up to (not including) ``<eos>``."""
        from semcom.text.words import BOS, EOS

        limit = self.max_positions - 1
        if max_words is not None:
            limit = min(int(max_words), limit)
        mem = self.features(images)
        b = images.shape[0]
        ids = torch.full((b, 1), BOS, dtype=torch.int64)
        done = torch.zeros(b, dtype=torch.bool)
        for _ in range(limit):
            nxt = self.forward(images, ids, memory=mem)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        out = []
        for row in ids[:, 1:].tolist():
            words = []
            for i in row:
                if i == EOS:
                    break
                words.append(i)
            out.append(words)
        return out
