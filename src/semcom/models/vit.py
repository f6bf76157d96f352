"""A plain-PyTorch Vision Transformer (ViT / DeiT) that exposes its attention.

Used by the attention-guided patch-transmission schemes (Mortaheb et al.,
arXiv 2405.01521; Im et al., collaborative edge-server inference): the CLS-token
attention of a ViT ranks the image patches, the transmitter sends only the top ones
and the server classifies from that token subset.

Parameter names follow timm's ``VisionTransformer`` / ``VisionTransformerDistilled``
exactly (``cls_token``, ``dist_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.{i}.norm1.*``, ``blocks.{i}.attn.qkv.*``, ``blocks.{i}.attn.proj.*``,
``blocks.{i}.norm2.*``, ``blocks.{i}.mlp.fc1.*``, ``blocks.{i}.mlp.fc2.*``, ``norm.*``,
``head.*``, ``head_dist.*``), so public timm / DeiT checkpoints load through
:func:`semcom.models.vit_timm.load_timm_state_dict`; timm itself is never imported.

The registered architectures (``vit-edge-synth``, ``deit-tiny-patch16-224``, ...) are
factories in the one model registry (:mod:`semcom.models.registry`); random init,
weights only ever come from files.

Tensor conventions
------------------
* ``x``: float ``(N, in_chans, img_size, img_size)`` (``[0, 1]`` for semcom's own models;
  public ImageNet checkpoints expect their own normalisation, applied by the caller).
* patches are numbered row-major over the ``(img_size // patch_size)`` grid:
  patch ``p`` covers rows ``(p // G) * patch_size`` and columns ``(p % G) * patch_size``.
* ``keep``: int64 ``(N, K)`` patch indices in ``[0, num_patches)``, distinct per row.
* tokens: ``[CLS] [DIST]? patch_0 ... patch_{P-1}`` (``T = P + num_prefix_tokens``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import list_models, model_entrypoint, register_model

__all__ = [
    "AttentionMode",
    "VisionTransformer",
    "count_flops",
    "create_vit",
]

AttentionMode = Literal["mean", "rollout", "rollout-ref"]
_ATTENTION_MODES = (None, "mean", "rollout", "rollout-ref")


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: ``(N, C, H, W) -> (N, P, D)`` via a strided conv."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` float ``(N, C, H, W)`` -> float ``(N, (H/p)*(W/p), D)``, row-major patches."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with an optional explicit (inspectable) softmax path."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend over the tokens.

        Args:
            x: float ``(N, T, D)``.
            need_weights: compute the softmax explicitly and return it; otherwise use
                ``F.scaled_dot_product_attention`` and return ``None``.

        Returns:
            ``(out, attn)``: ``out`` float ``(N, T, D)``; ``attn`` ``(N, H, T, T)`` in
            float32 or the input dtype if wider (rows sum to 1), or ``None``.
        """
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (N, H, T, hd)
        attn: Tensor | None = None
        if need_weights:
            scores = (q * self.scale) @ k.transpose(-2, -1)
            # softmax in float32 at least (bf16/fp16 models), float64 stays float64
            attn = scores.to(torch.promote_types(scores.dtype, torch.float32))
            del scores
            if attn.requires_grad:
                attn = attn.softmax(dim=-1)
            else:  # inference: in place, so only one (N, H, T, T) buffer is ever alive
                attn.sub_(attn.amax(dim=-1, keepdim=True)).exp_()
                attn.div_(attn.sum(dim=-1, keepdim=True))
            out = attn.to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(n, t, d)
        return self.proj(out), attn


class Mlp(nn.Module):
    """Two-layer MLP with exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, T, D) -> (N, T, D)``."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x`` float ``(N, T, D)`` -> ``(x, attn)``; see :meth:`Attention.forward`."""
        a, attn = self.attn(self.norm1(x), need_weights)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return x, attn


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return value


class VisionTransformer(nn.Module):
    """ViT / DeiT classifier with CLS-attention and attention-rollout outputs.

    Args:
        img_size: square input side in pixels; must be a multiple of ``patch_size``.
        patch_size: square patch side in pixels.
        in_chans: input channels.
        num_classes: classifier outputs (>= 1).
        embed_dim: token width ``D``; divisible by ``num_heads``.
        depth: number of transformer blocks ``L``.
        num_heads: attention heads ``H``.
        mlp_ratio: MLP hidden width / ``D``.
        qkv_bias: bias in the fused qkv projection.
        distilled: add DeiT's distillation token (``dist_token``) and head (``head_dist``);
            logits are then the mean of the two heads (timm's inference behaviour).
        class_token: prepend a CLS token. Without it the model average-pools the tokens and
            applies the final LayerNorm after pooling (timm's ``global_pool="avg"``, so that
            norm is named ``fc_norm``).

    Layout of the prefix: ``num_prefix_tokens = class_token + distilled`` tokens precede
    the ``num_patches`` patch tokens; ``pos_embed`` is ``(1, num_prefix_tokens +
    num_patches, D)`` (timm's default, position embeddings for the prefix included).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        distilled: bool = False,
        class_token: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("img_size", img_size),
            ("patch_size", patch_size),
            ("in_chans", in_chans),
            ("num_classes", num_classes),
            ("embed_dim", embed_dim),
            ("depth", depth),
            ("num_heads", num_heads),
        ):
            _check_positive_int(name, value)
        if img_size % patch_size:
            raise InputError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if embed_dim % num_heads:
            raise InputError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if not (isinstance(mlp_ratio, (int, float)) and math.isfinite(mlp_ratio)) or (
            int(embed_dim * mlp_ratio) < 1
        ):
            raise InputError(f"mlp_ratio must be a positive finite number, got {mlp_ratio!r}")
        if distilled and not class_token:
            raise InputError("distilled=True needs class_token=True (DeiT layout)")

        self.config: dict[str, Any] = dict(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=float(mlp_ratio),
            qkv_bias=bool(qkv_bias),
            distilled=bool(distilled),
            class_token=bool(class_token),
        )
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.distilled = bool(distilled)
        self.class_token = bool(class_token)
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.num_prefix_tokens = int(self.class_token) + int(self.distilled)

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        # Registration order matches timm's so state_dict() lists keys in the same order.
        if self.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_prefix_tokens + self.num_patches, embed_dim)
        )
        if self.distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)
        )
        if self.class_token:
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        else:
            self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        if self.distilled:
            self.head_dist = nn.Linear(embed_dim, num_classes)
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """timm-like init: truncated normal (std 0.02) for linears and position embeddings,
        N(0, 1e-6) for the CLS token, zeros for biases; LayerNorm (1, 0). Uses the global
        torch RNG (seed it with ``torch.manual_seed`` for a reproducible init)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.class_token:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.distilled:
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------- validation
    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise InputError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise InputError(f"x must be a float tensor (use semcom.data.to_float), got {x.dtype}")
        expected = (self.in_chans, self.img_size, self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise InputError(
                f"x must have shape (N, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {tuple(x.shape)}"
            )

    def _check_keep(self, keep: Tensor, n: int) -> Tensor:
        if not isinstance(keep, Tensor):
            raise InputError(f"keep must be a torch.Tensor, got {type(keep).__name__}")
        if keep.dtype.is_floating_point or keep.dtype.is_complex or keep.dtype == torch.bool:
            raise InputError(f"keep must be an integer tensor of patch indices, got {keep.dtype}")
        if keep.ndim != 2 or keep.shape[0] != n:
            raise InputError(f"keep must have shape (N={n}, K), got {tuple(keep.shape)}")
        k = keep.shape[1]
        if not 1 <= k <= self.num_patches:
            raise InputError(f"keep must hold 1..{self.num_patches} indices per row, got {k}")
        keep = keep.long()
        if n and (int(keep.min()) < 0 or int(keep.max()) >= self.num_patches):
            raise InputError(f"keep indices must lie in [0, {self.num_patches})")
        if k > 1 and n:
            s = keep.sort(dim=1).values
            if bool((s[:, 1:] == s[:, :-1]).any()):
                raise InputError("keep indices must be distinct within each row")
        return keep

    # ---------------------------------------------------------------- forward
    def _embed(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """Pixels -> token sequence ``(N, num_prefix_tokens + K, D)``; position embeddings
        are added before patches are dropped, so kept tokens keep their positions."""
        tokens = self.patch_embed(x) + self.pos_embed[:, self.num_prefix_tokens :]
        if keep is not None:
            idx = keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, idx)
        n = tokens.shape[0]
        prefix = []
        if self.class_token:
            prefix.append(self.cls_token.expand(n, -1, -1))
        if self.distilled:
            prefix.append(self.dist_token.expand(n, -1, -1))
        if prefix:
            pre = torch.cat(prefix, dim=1) + self.pos_embed[:, : self.num_prefix_tokens]
            tokens = torch.cat([pre, tokens], dim=1)
        return tokens

    def _head(self, x: Tensor) -> Tensor:
        """Final tokens ``(N, T, D)`` -> logits ``(N, num_classes)``."""
        if not self.class_token:
            return self.head(self.fc_norm(x.mean(dim=1)))
        x = self.norm(x)
        logits = self.head(x[:, 0])
        if self.distilled:
            logits = (logits + self.head_dist(x[:, 1])) / 2
        return logits

    def _patch_scores(self, rows: Tensor, keep: Tensor | None) -> Tensor:
        """Token-attention ``(N, T)`` -> patch scores ``(N, num_patches)`` float32 summing
        to 1 (prefix columns dropped; dropped patches scattered back as exact zeros)."""
        a = rows[:, self.num_prefix_tokens :]
        a = (a / a.sum(dim=1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)).float()
        if keep is None:
            return a
        out = a.new_zeros(a.shape[0], self.num_patches)
        return out.scatter_(1, keep, a)

    def _query_row(self, attn: Tensor) -> Tensor:
        """Pick the scoring row of a token-attention matrix ``(N, T, T) -> (N, T)``: the CLS
        query row, or (no CLS token) the mean over all query rows."""
        return attn[:, 0] if self.class_token else attn.mean(dim=1)

    def forward(
        self,
        x: Tensor,
        *,
        keep: Tensor | None = None,
        return_attention: AttentionMode | None = None,
    ) -> dict[str, Tensor]:
        """Classify, optionally from a patch subset, optionally returning patch attention.

        Args:
            x: float ``(N, in_chans, img_size, img_size)``. With ``keep``, pixels of the
                dropped patches never influence the output (they may be zeros).
            keep: optional integer ``(N, K)``, ``1 <= K <= num_patches``, distinct patch
                indices per row. Position embeddings are added before the other patches
                are dropped, so each kept token keeps its original position; the order of
                the indices within a row does not matter.
            return_attention: ``None``; ``"mean"`` -- last layer's attention of the CLS
                query, averaged over heads; ``"rollout"`` -- attention rollout (Abnar &
                Zuidema): per layer ``A' = 0.5 * mean_heads(A) + 0.5 * I`` with rows
                renormalised, ``R = A'_L ... A'_1``, the CLS row of ``R``; ``"rollout-ref"``
                -- the rollout of Im et al.'s public code, kept for comparison: per
                *head* ``A_h + I`` (not renormalised), multiplied over layers, then
                averaged over heads. Without a CLS token the mean over query rows is
                used instead of the CLS row.

        Returns:
            ``{"logits": (N, num_classes)}`` (input dtype), plus, when requested,
            ``"attention"``: float32 ``(N, num_patches)``, non-negative, each row summing
            to 1 over the patches (CLS / distillation columns removed, renormalised).
            With ``keep``, the attention over the ``K`` kept tokens is scattered back to
            their patch positions and dropped patches get exactly 0.

        Explicit softmax attention is computed only in the layers whose attention is
        needed (the last layer for ``"mean"``, every layer for ``"rollout"``); elsewhere
        ``F.scaled_dot_product_attention`` is used. Both give the same logits up to
        float rounding.

        Rollout memory: the product is accumulated layer by layer; besides the
        activations, at most one layer's explicit attention ``(N, H, T, T)`` (softmax
        taken in place when no gradient is needed) plus at most three ``(N, T, T)``
        float32 matrices (running product, new factor, new product) are alive at any
        time -- independent of depth. A store-every-layer implementation holds
        ``L * N * H * T * T`` floats.
        """
        if return_attention not in _ATTENTION_MODES:
            raise InputError(
                f"return_attention must be one of {_ATTENTION_MODES}, got {return_attention!r}"
            )
        self._check_input(x)
        if keep is not None:
            keep = self._check_keep(keep, x.shape[0])
            keep = keep.to(x.device)

        h = self._embed(x, keep)
        rollout: Tensor | None = None
        last_attn: Tensor | None = None
        for i, blk in enumerate(self.blocks):
            is_last = i == self.depth - 1
            need = return_attention == "rollout" or (return_attention == "mean" and is_last)
            need = need or return_attention == "rollout-ref"
            h, attn = blk(h, need_weights=need)
            if attn is None:
                continue
            if return_attention == "rollout-ref":  # per head, identity added, no renorm
                attn = attn + torch.eye(attn.shape[-1], dtype=attn.dtype, device=attn.device)
                rollout = attn if rollout is None else attn @ rollout
                continue
            a = attn.mean(dim=1)  # (N, T, T) float32 (or wider), rows sum to 1
            del attn
            if return_attention == "mean":
                last_attn = a
                continue
            # A' = 0.5 A + 0.5 I, rows renormalised (in place on the fresh head-mean).
            a.mul_(0.5)
            a.diagonal(dim1=-2, dim2=-1).add_(0.5)
            a.div_(a.sum(dim=-1, keepdim=True))
            rollout = a if rollout is None else torch.bmm(a, rollout)
            del a

        out = {"logits": self._head(h)}
        if return_attention == "mean":
            assert last_attn is not None
            out["attention"] = self._patch_scores(self._query_row(last_attn), keep)
        elif return_attention == "rollout":
            assert rollout is not None
            out["attention"] = self._patch_scores(self._query_row(rollout), keep)
        elif return_attention == "rollout-ref":
            assert rollout is not None
            out["attention"] = self._patch_scores(self._query_row(rollout.mean(dim=1)), keep)
        return out

    @torch.no_grad()
    def attention_maps(self, x: Tensor, *, keep: Tensor | None = None) -> list[Tensor]:
        """Every layer's explicit attention, for inspection and visualisation.

        Args:
            x, keep: as in :meth:`forward`.

        Returns:
            ``depth`` tensors ``(N, H, T, T)``, float32 (float64 for a float64 model);
            token order: prefix, then the kept patches in the order given. Memory:
            ``depth * N * H * T * T`` floats -- use ``forward(return_attention="rollout")``
            for rollout, which never holds them all.
        """
        self._check_input(x)
        if keep is not None:
            keep = self._check_keep(keep, x.shape[0]).to(x.device)
        h = self._embed(x, keep)
        maps = []
        for blk in self.blocks:
            h, attn = blk(h, need_weights=True)
            assert attn is not None
            maps.append(attn)
        return maps


# ------------------------------------------------------------------- FLOP counting
def count_flops(
    model: VisionTransformer | Mapping[str, Any],
    batch: int,
    *,
    return_attention: AttentionMode | None = None,
    num_kept: int | None = None,
) -> int:
    """Analytic forward FLOPs (multiply-add = 2 FLOPs) of the matrix products.

    Counts the patch projection, qkv / attention scores / attention-times-values / output
    projection and MLP of every block, the head(s) and, for ``"rollout"``, the ``L - 1``
    ``(T, T) @ (T, T)`` products. Element-wise work (LayerNorm, softmax, GELU, adds) is
    ignored -- it is a few percent for these sizes.

    Args:
        model: a :class:`VisionTransformer` or its ``config`` dict.
        batch: ``N``.
        return_attention: as in :meth:`VisionTransformer.forward`.
        num_kept: ``K`` patch tokens kept (default: all).
    """
    cfg = model.config if isinstance(model, VisionTransformer) else dict(model)
    if "stem_blocks" in cfg:
        raise InputError(
            "count_flops counts a pixel patch projection; for a hybrid ViT add "
            "semcom.models.vit_hybrid.stem_flops(config) to count_flops of its plain config"
        )
    d, depth = cfg["embed_dim"], cfg["depth"]
    p = cfg["patch_size"]
    n_patches = (cfg["img_size"] // p) ** 2
    prefix = int(cfg.get("class_token", True)) + int(cfg.get("distilled", False))
    k = n_patches if num_kept is None else num_kept
    t = prefix + k
    hidden = int(d * cfg.get("mlp_ratio", 4.0))
    c_in = cfg.get("in_chans", 3)
    flops = 2 * n_patches * c_in * p * p * d  # the conv projects every patch
    per_block = 2 * t * d * 3 * d + 2 * t * t * d * 2 + 2 * t * d * d + 2 * 2 * t * d * hidden
    flops += depth * per_block
    flops += 2 * d * cfg["num_classes"] * (2 if cfg.get("distilled", False) else 1)
    if return_attention == "rollout":
        flops += (depth - 1) * 2 * t**3
    return batch * flops


# ------------------------------------------------------------ registered architectures
def _vit(
    name: str,
    overrides: dict[str, Any],
    cls: type[VisionTransformer] | None = None,
    **defaults: Any,
) -> VisionTransformer:
    """``cls(**defaults | overrides)`` (default ``VisionTransformer``); ``num_classes=None``
    is the synthetic world's class count (``len(semcom.data.synthetic.CLASS_NAMES)``)."""
    cfg = {**defaults, **overrides}
    if cfg.get("num_classes") is None:
        try:
            from semcom.data.synthetic import CLASS_NAMES
        except ImportError as e:  # pragma: no cover - depends on the data module existing
            raise InputError(f"{name}: pass num_classes= (synthetic world unavailable: {e})") from e
        cfg["num_classes"] = len(CLASS_NAMES)
    try:
        return (cls or VisionTransformer)(**cfg)
    except TypeError as e:
        raise InputError(f"{name}: bad config override: {e}") from e


@register_model("vit-tiny-synth")
def vit_tiny_synth(**overrides: Any) -> VisionTransformer:
    """64x64 synthetic-world images, 8x8 patches, 6 blocks of width 192 (3 heads)."""
    return _vit(
        "vit-tiny-synth", overrides, img_size=64, patch_size=8, embed_dim=192, depth=6,
        num_heads=3, num_classes=None,
    )  # fmt: skip


@register_model("vit-edge-synth")
def vit_edge_synth(**overrides: Any) -> VisionTransformer:
    """64x64 synthetic-world images, 8x8 patches, 4 blocks of width 96 (3 heads): the
    zoo's ``vit-synth``."""
    return _vit(
        "vit-edge-synth", overrides, img_size=64, patch_size=8, embed_dim=96, depth=4,
        num_heads=3, num_classes=None,
    )  # fmt: skip


@register_model("deit-tiny-patch16-224")
def deit_tiny_patch16_224(**overrides: Any) -> VisionTransformer:
    """DeiT-Tiny: 224x224 ImageNet images, 16x16 patches, 12 blocks of width 192."""
    return _vit(
        "deit-tiny-patch16-224", overrides, img_size=224, patch_size=16, embed_dim=192,
        depth=12, num_heads=3, num_classes=1000,
    )  # fmt: skip


@register_model("deit-small-patch16-224")
def deit_small_patch16_224(**overrides: Any) -> VisionTransformer:
    """DeiT-Small: 224x224 ImageNet images, 16x16 patches, 12 blocks of width 384."""
    return _vit(
        "deit-small-patch16-224", overrides, img_size=224, patch_size=16, embed_dim=384,
        depth=12, num_heads=6, num_classes=1000,
    )  # fmt: skip


@register_model("vit-base-patch16-224")
def vit_base_patch16_224(**overrides: Any) -> VisionTransformer:
    """ViT-B/16: 224x224 ImageNet images, 16x16 patches, 12 blocks of width 768."""
    return _vit(
        "vit-base-patch16-224", overrides, img_size=224, patch_size=16, embed_dim=768,
        depth=12, num_heads=12, num_classes=1000,
    )  # fmt: skip


def create_vit(name: str, **overrides: Any) -> VisionTransformer:
    """Build a registered ViT architecture (random init) with optional config overrides.

    The same as ``create_model(name, **overrides)`` for the architectures of this file,
    without the registry's ``semcom_name`` stamp. The ``*-synth`` models default
    ``num_classes`` to the synthetic world's class count; pass ``num_classes``
    explicitly to avoid that import.

    Raises:
        InputError: unknown ``name`` or an invalid config value.
    """
    archs = list_models(module=__name__)
    if name not in archs:
        raise InputError(f"unknown ViT architecture {name!r}; known: {archs}")
    return model_entrypoint(name)(**overrides)
