"""VQ-VAE image coding: codebook indices, entropy coded (the foundation of GOS-VAE).

Transmitter: a :class:`~semcom.models.vqvae.VQVAE` encodes the image to a grid of
codebook indices (``h = ceil(H / r)`` by ``w = ceil(W / r)``: an image whose sides are not
multiples of ``r`` is padded by repeating its edge pixels, and the receiver crops the
reconstruction back), which are coded losslessly and sent.
Receiver: the same model decodes the indices to ``x_hat``; the judges then score it.

Index coding (``coding=``):

* ``"prior"`` -- constriction's range coder with the model's static prior
  (``prior.probs``, fitted on training-set indices: :meth:`VQVAE.fit_prior`); the
  receiver must hold the same weights, which the fingerprint field checks;
* ``"fixed"`` -- ``ceil(log2 K)`` bits per index, most significant bit first, zero
  padded to a whole byte (the comparison without entropy coding);
* ``"adaptive"`` -- an adaptive Krichevsky-Trofimov model
  (:func:`semcom.codec.entropy.encode_adaptive`): no prior, learns the image's own
  index statistics as it goes;
* ``"context"`` -- the model's context-adaptive prior (:mod:`semcom.models.index_context`:
  each index given its left, upper, upper-left and upper-right neighbours, computed in
  fixed point so both ends agree bit for bit); needs a VQ-VAE built with ``context > 0``;
* ``"auto"`` (default) -- per message, the shortest of ``prior``, ``adaptive`` and (when
  the model has a fitted one) ``context`` (the header's ``c`` says which one the receiver
  decodes).

Slices and concealment (lossy channels): with ``slice_rows=S`` the index grid is cut into
slices of ``S`` rows, each coded on its own in its own section (its own CRC; the context
model sees nothing above a slice's first row), so a lost or corrupted packet costs only
the slices it touched. A receiver with ``conceal="prior"`` fills a lost slice with the
static prior's most probable index, with ``conceal="above"`` with copies of the last row
decoded above it (the prior's mode where there is none); ``conceal="none"`` (default)
refuses any damaged message. Each slice costs its section entry and CRC (about 7 bytes)
and the range coder's flush.

The rate is fixed by the model (``r``, ``K``, the prior): the scheme has one setting,
``1``; another rate is another model (``vqvae[model=PATH]``).

Message (scheme id of ``"vqvae"``, ``"gosvae"`` for GOS-VAE; see ``docs/architecture.md``)::

    fields   h, w   image size (the grid is ceil(h / r) x ceil(w / r)); h * w <= the
                    receiver's max_pixels
             r      the model's downsampling factor (must equal the receiver's)
             k      the codebook size K (must equal the receiver's)
             c      index coding: 0 prior, 1 fixed, 2 adaptive, 3 context
             fp     the first 4 bytes of the model weights' sha256
                    (:mod:`semcom.models.fingerprint`); a receiver holding other weights
                    refuses the message (unless check_models=false)
             s      (sliced messages only) rows of the index grid per slice
    sections idx    the (h / r) * (w / r) indices, row-major (context: wavefront order),
                    coded as ``c`` says -- or, with ``s``, sections s0, s1, ... one per
                    slice of ``s`` rows

The receiver checks every field against its model, decodes exactly ``(h / r) * (w / r)``
indices (every byte of each section consumed; fixed coding: the exact length, indices
below K, zero padding) and raises :class:`~semcom.errors.BitstreamError` naming what
differs; without concealment nothing of a damaged message is usable (no partial
decoding). With concealment, a damaged header still loses the message; a slice that is
erased, fails its CRC or does not decode is concealed, and ``stats["slices_lost"]`` says
how many were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.codec.container import Message, pack, unpack
from semcom.data.convert import to_uint8
from semcom.errors import BitstreamError, InputError
from semcom.models.fingerprint import FINGERPRINT_BYTES
from semcom.schemes.base import Erasures, parse_each, register_receiver, register_scheme
from semcom.schemes.learned import DEFAULT_MAX_PIXELS, LearnedCodecScheme
from semcom.schemes.session import Decoded

__all__ = [
    "CODINGS",
    "CONCEALMENTS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MODEL",
    "VQVAEScheme",
    "fixed_length_bits",
    "pack_fixed",
    "unpack_fixed",
]

#: Index coding -> header id (field ``c``).
CODINGS: dict[str, int] = {"prior": 0, "fixed": 1, "adaptive": 2, "context": 3}
#: Concealment of lost slices at the receiver.
CONCEALMENTS = ("none", "prior", "above")
#: Zoo name of the model loaded when none is given.
DEFAULT_MODEL = "vqvae-synth"

_FIELDS = ("h", "w", "r", "k", "c", "fp")
_WIRE_NAME = "vqvae"


def fixed_length_bits(num_codes: int) -> int:
    """Bits of one index in fixed-length coding: ``ceil(log2 K)`` (at least 1)."""
    return max(1, math.ceil(math.log2(num_codes)))


def pack_fixed(indices: np.ndarray, bits: int) -> bytes:
    """Indices (1-D, non-negative, below ``2 ** bits``) as ``bits`` bits each, MSB first,
    zero padded to whole bytes: ``ceil(n * bits / 8)`` bytes."""
    v = np.asarray(indices, dtype=np.int64).reshape(-1, 1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    return np.packbits(((v >> shifts) & 1).astype(np.uint8).flatten()).tobytes()


def unpack_fixed(data: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``n`` indices int64; BitstreamError unless ``data``
    is exactly ``ceil(n * bits / 8)`` bytes with zero padding bits."""
    need = (n * bits + 7) // 8
    if len(data) != need:
        raise BitstreamError(
            f"vqvae section 'idx' (fixed-length indices): {len(data)} bytes, expected "
            f"{need} for {n} indices of {bits} bits"
        )
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if flat[n * bits :].any():
        raise BitstreamError("vqvae section 'idx' (fixed-length indices): non-zero padding bits")
    weights = np.left_shift(1, np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat[: n * bits].reshape(n, bits).astype(np.int64) @ weights


@register_scheme("vqvae")
class VQVAEScheme(LearnedCodecScheme):
    """VQ-VAE codebook indices, entropy coded with the model's static prior.

    Args:
        model: the codec -- a :class:`~semcom.models.vqvae.VQVAE` instance, a zoo name or
            a checkpoint path (loaded at first use); both ends must hold the same weights.
        coding: index coding, ``"auto"`` (default: the shortest of prior, adaptive and
            context, per message), ``"prior"`` (range coder with the model's static
            prior), ``"fixed"`` (ceil(log2 K) bits per index), ``"adaptive"`` (adaptive
            model, no prior) or ``"context"`` (the model's context-adaptive prior).
        batch_size, max_pixels, device, check_models: as
            :class:`~semcom.schemes.learned.LearnedCodecScheme`.
        slice_rows: rows of the index grid per independently coded slice (transmitter);
            0 (default): the whole grid in one section.
        conceal: what the receiver does with a lost or damaged slice: ``"none"``
            (refuse the message), ``"prior"`` (the static prior's most probable index) or
            ``"above"`` (copies of the row above it).
    """

    name: ClassVar[str] = "vqvae"
    wire_name: ClassVar[str] = _WIRE_NAME
    role: ClassVar[str] = "baseline"
    family: ClassVar[str] = "vq-vae"
    rate_range: ClassVar[str] = (
        "1 only: the rate is the model's (r, K, prior); another rate is another model="
    )
    model_attrs: ClassVar[tuple[str, ...]] = ("encode", "decode", "prior", "r", "num_codes")
    model_kind: ClassVar[str] = "VQ-VAE"

    def __init__(
        self,
        model: nn.Module | str = DEFAULT_MODEL,
        coding: str = "auto",
        batch_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        device: str | torch.device = "cpu",
        check_models: bool = True,
        slice_rows: int = 0,
        conceal: str = "none",
    ) -> None:
        if coding not in (*CODINGS, "auto"):
            raise InputError(
                f"vqvae: coding must be one of {', '.join([*CODINGS, 'auto'])}, got {coding!r}"
            )
        if isinstance(slice_rows, bool) or not isinstance(slice_rows, int) or slice_rows < 0:
            raise InputError(f"vqvae: slice_rows must be an int >= 0, got {slice_rows!r}")
        if conceal not in CONCEALMENTS:
            raise InputError(
                f"vqvae: conceal must be one of {', '.join(CONCEALMENTS)}, got {conceal!r}"
            )
        self.coding = coding
        self.slice_rows = slice_rows
        self.conceal = conceal
        super().__init__(model, batch_size, max_pixels, device, check_models)
        self._adopt()

    # ------------------------------------------------------------------ model
    def _prepare(self, model: nn.Module) -> nn.Module:
        model = super()._prepare(model)
        if self.coding in ("prior", "auto"):
            model.prior.table()  # type: ignore[union-attr, operator] - InputError if broken
        if self.coding == "context":
            from semcom.models.index_context import check_context

            check_context(getattr(model, "context", None))
        return model

    def _has_context(self) -> bool:
        ctx = getattr(self.model, "context", None)
        return ctx is not None and bool(ctx.fitted)

    # ------------------------------------------------------------------ rates
    def rate_label(self, rate: float) -> str:
        """``r=4,K=512,coding=auto``: the model's rate and the index coding (one label per
        model, so models of several r can share a label= and make one curve)."""
        if self.unavailable_reason() is not None:
            return f"coding={self.coding}"
        m = self.model
        return f"r={int(m.r)},K={int(m.num_codes)},coding={self.coding}"

    def settings(self, rate: float) -> dict[str, Any]:
        out: dict[str, Any] = {**super().settings(rate), "coding": self.coding}
        if self.slice_rows:
            out["slice_rows"] = self.slice_rows
        if self._model is not None:
            out.update(r=int(self._model.r), K=int(self._model.num_codes))
        return out

    # ------------------------------------------------------------- transmitter
    def _check_images(self, images: Tensor) -> Tensor:
        """Checked uint8 images, padded (edge pixels repeated) to multiples of ``r``."""
        images = self.check_images(images)
        r = int(self.model.r)
        h, w = images.shape[-2:]
        if h % r or w % r:
            pad = (0, (-w) % r, 0, (-h) % r)
            images = F.pad(images.float(), pad, mode="replicate").to(torch.uint8)
        return images

    def encode_indices(self, indices: np.ndarray, coding: str | None = None) -> bytes:
        """One section of indices int ``(n,)`` in ``[0, K)``, coded as ``coding`` says
        (default :attr:`coding`; ``"prior"``, ``"fixed"`` or ``"adaptive"``: the codings
        of a flat sequence -- the context coding needs the grid, :meth:`encode_grid`)."""
        from semcom.codec import entropy

        coding = coding or self.coding
        model = self.model
        k = int(model.num_codes)
        if coding == "fixed":
            return pack_fixed(indices, fixed_length_bits(k))
        if coding == "adaptive":
            return entropy.encode_adaptive(indices, k)
        if coding == "prior":
            return entropy.encode_categorical(indices, model.prior.table())  # type: ignore[union-attr, operator]
        raise InputError(f"vqvae: encode_indices codes prior, fixed or adaptive, not {coding!r}")

    def encode_grid(self, grid: np.ndarray, coding: str | None = None) -> tuple[str, list[bytes]]:
        """The sections of one index grid int ``(h, w)``: ``(coding used, one byte string
        per slice of slice_rows rows)``; ``coding`` defaults to :attr:`coding`, and
        ``"auto"`` picks the shortest in total (ties: prior, then adaptive, then context)."""
        coding = coding or self.coding
        if coding == "auto":
            options = ["prior", "adaptive"] + (["context"] if self._has_context() else [])
            coded = [self.encode_grid(grid, c) for c in options]
            return min(coded, key=lambda cs: sum(len(b) for b in cs[1]))
        g = np.asarray(grid)
        if coding == "context":
            from semcom.models.index_context import encode_grid

            return coding, encode_grid(g, self.model.context, self.slice_rows)  # type: ignore[arg-type]
        step = self.slice_rows or g.shape[0]
        return coding, [
            self.encode_indices(g[top : top + step].reshape(-1), coding)
            for top in range(0, g.shape[0], step)
        ]

    def choose_coding(self, indices: np.ndarray) -> tuple[str, bytes]:
        """``coding=auto`` on a flat sequence: the shorter of the static-prior and the
        adaptive codings of ``indices`` (ties go to the prior)."""
        prior = self.encode_indices(indices, "prior")
        adaptive = self.encode_indices(indices, "adaptive")
        return ("adaptive", adaptive) if len(adaptive) < len(prior) else ("prior", prior)

    def compress_batch(self, images: Tensor, rate: float) -> list[bytes]:
        """uint8 ``(N, 3, H, W)`` -> N messages (one encoder forward per ``batch_size``)."""
        self.validate_rate(rate)
        _, _, h, w = images.shape if isinstance(images, Tensor) else (0, 0, 0, 0)
        images = self._check_images(images)
        model = self.model
        fields: dict[str, Any] = {
            "h": int(h),
            "w": int(w),
            "r": int(model.r),
            "k": int(model.num_codes),
            "c": 0,
            "fp": self.fingerprint(),
        }
        if self.slice_rows:
            fields["s"] = self.slice_rows
        out = []
        with torch.inference_mode():
            for lo in range(0, images.shape[0], self.batch_size):
                x = images[lo : lo + self.batch_size].to(self.device).float().div_(255.0)
                idx = model.encode(x).cpu().numpy()
                for grid in idx:
                    coding, parts = self.encode_grid(grid)
                    fields["c"] = CODINGS[coding]
                    if self.slice_rows:
                        sections = {f"s{i}": b for i, b in enumerate(parts)}
                    else:
                        sections = {"idx": parts[0]}
                    msg = Message(scheme=self.wire_name, fields=fields, sections=sections)
                    out.append(pack(msg))
        return out

    # ---------------------------------------------------------------- receiver
    def _parse(self, data: bytes, erasures: Erasures) -> Decoded:
        """One message -> its indices (``aux["indices"]`` int64 ``(h, w)``), no decoder run;
        BitstreamError if anything disagrees with this receiver's model (or, without
        concealment, if any slice is lost)."""
        conceal = self.conceal != "none"
        msg = unpack(data, erasures=erasures, allow_damaged=conceal)
        msg.expect_scheme(self.wire_name)
        msg.expect_fields(_FIELDS, optional=("s",))
        model = self.model
        r, k = int(model.r), int(model.num_codes)
        h, w = msg.image_size()
        sent_r = msg.int_field("r", 1, 1 << 16)
        sent_k = msg.int_field("k", 1, 1 << 32)
        if (sent_r, sent_k) != (r, k):
            raise BitstreamError(
                f"vqvae header: r={sent_r}, K={sent_k}, but this receiver's model has r={r}, K={k}"
            )
        if h * w > self.max_pixels:
            raise BitstreamError(
                f"vqvae header: image {w}x{h} is larger than this receiver's "
                f"max_pixels={self.max_pixels}"
            )
        c = msg.int_field("c", 0, max(CODINGS.values()))
        coding = next(name for name, i in CODINGS.items() if i == c)
        self.check_fingerprint(msg.bytes_field("fp", FINGERPRINT_BYTES))
        gh, gw = -(-h // r), -(-w // r)  # padded to multiples of r by the sender
        rows = msg.int_field("s", 1, 1 << 32) if "s" in msg.fields else 0
        step = min(rows, gh) if rows else gh
        tags = [f"s{i}" for i in range(-(-gh // step))] if rows else ["idx"]
        msg.expect_sections(tags)
        payloads = [msg.sections[t] for t in tags]
        if coding == "context" and not self._has_context():
            raise BitstreamError(
                "vqvae: the indices are coded with a context model, which this receiver's "
                "VQ-VAE does not have (or has not fitted)"
            )
        grid, errors = self._decode_slices(payloads, coding, gh, gw, step if rows else 0)
        lost = [i for i, e in enumerate(errors) if e is not None]
        if lost and not conceal:
            raise BitstreamError(f"vqvae section {tags[lost[0]]!r}: {errors[lost[0]]}")
        for i in lost:
            self._conceal(grid, i * step, min(gh, (i + 1) * step))
        n = gh * gw
        stats = {
            "coding": coding,
            "grid": f"{gw}x{gh}",
            "bits_per_index": 8.0 * sum(len(p or b"") for p in payloads) / max(n, 1),
            "slices": len(tags),
            "slices_lost": len(lost),
        }
        indices = torch.from_numpy(grid.astype(np.int64))
        return Decoded(stats=stats, aux={"indices": indices, "size": (h, w)})

    def _decode_slices(
        self, payloads: list[bytes | None], coding: str, gh: int, gw: int, slice_rows: int
    ) -> tuple[np.ndarray, list[str | None]]:
        """The ``(gh, gw)`` grid (``-1`` where a slice is lost) and, per slice, why it could
        not be decoded (``None``: decoded)."""
        from semcom.codec import entropy

        model = self.model
        k = int(model.num_codes)
        if coding == "context":
            from semcom.models.index_context import decode_grid

            return decode_grid(payloads, model.context, gh, gw, slice_rows)  # type: ignore[arg-type]
        step = slice_rows or gh
        grid = np.full((gh, gw), -1, dtype=np.int64)
        errors: list[str | None] = []
        for i, payload in enumerate(payloads):
            top = i * step
            n = min(step, gh - top) * gw
            if payload is None:
                errors.append("lost or damaged")
                continue
            try:
                if coding == "fixed":
                    idx = unpack_fixed(payload, n, fixed_length_bits(k))
                elif coding == "adaptive":
                    idx = entropy.decode_adaptive(payload, k, n, max_symbols=n)
                else:
                    table = model.prior.table()  # type: ignore[union-attr, operator]
                    idx = entropy.decode_categorical(payload, table, n, max_symbols=n)
                if idx.shape != (n,):
                    raise BitstreamError(f"{idx.size} indices, expected {n}")
                if n and (int(idx.min()) < 0 or int(idx.max()) >= k):
                    raise BitstreamError(f"index {int(idx.max())} is out of range for K={k}")
            except BitstreamError as exc:
                errors.append(str(exc))
                continue
            grid[top : top + n // gw] = idx.reshape(-1, gw)
            errors.append(None)
        return grid, errors

    def _conceal(self, grid: np.ndarray, top: int, bottom: int) -> None:
        """Fill rows ``top:bottom`` of ``grid`` as :attr:`conceal` says (in place)."""
        mode = int(np.argmax(self.model.prior.table()))  # type: ignore[union-attr, operator]
        if self.conceal == "above" and top > 0 and (grid[top - 1] >= 0).all():
            grid[top:bottom] = grid[top - 1]
        else:
            grid[top:bottom] = mode

    def _run_decoder(self, grids: list[Tensor]) -> list[Tensor]:
        """Index grids int64 ``(h, w)`` -> uint8 ``(3, h r, w r)``, decoded in batches of
        one grid size."""
        model = self.model
        out: list[Tensor | None] = [None] * len(grids)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, g in enumerate(grids):
            by_size.setdefault(tuple(g.shape), []).append(i)
        with torch.inference_mode():
            for members in by_size.values():
                for lo in range(0, len(members), self.batch_size):
                    part = members[lo : lo + self.batch_size]
                    idx = torch.stack([grids[i] for i in part]).to(self.device)
                    x_hat = to_uint8(model.decode(idx).float()).cpu()
                    for j, i in enumerate(part):
                        out[i] = x_hat[j]
        return out  # type: ignore[return-value]

    def decompress_batch(
        self, messages: Sequence[bytes], erasures: Sequence[Erasures] | None = None
    ) -> list[Decoded | BitstreamError]:
        """Decode many messages, the decoder run once per ``batch_size`` of them (per grid
        size); a message that fails comes back as its BitstreamError (not raised)."""
        results, good = parse_each(self._parse, messages, erasures)
        if good:
            parsed = [results[i] for i in good]
            x_hat = self._run_decoder([d.aux["indices"] for d in parsed])  # type: ignore[union-attr]
            for d, x in zip(parsed, x_hat, strict=True):
                h, w = d.aux["size"]  # type: ignore[union-attr]
                d.x_hat = x[:, :h, :w].contiguous()  # type: ignore[union-attr]
        return results

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> Decoded:
        """Message -> :class:`Decoded` with ``x_hat`` uint8 ``(3, H, W)``, stats ``coding``,
        ``grid`` and ``bits_per_index`` (of section ``idx``), aux ``indices`` int64
        ``(ceil(H / r), ceil(W / r))``.

        Raises:
            BitstreamError: a damaged message, or one that disagrees with this receiver's
                model (r, K, weights fingerprint, size).
        """
        out = self.decompress_batch([data], [erasures])[0]
        if isinstance(out, BitstreamError):
            raise out
        return out


@register_scheme("gos-vae")
class GosVaeScheme(VQVAEScheme):
    """GOS-VAE (Chao et al.): the messages and receiver of :class:`VQVAEScheme` under
    their own wire id (``gosvae``, so that ``semcom receive`` picks the GOS-VAE model,
    not the MSE one), with a VQ-VAE trained to imitate a frozen segmenter
    (``gos-vae-synth``, :mod:`semcom.train.recipes.gos_vae`); the proposed scheme of
    its family in reports. ``model=`` names the checkpoint (default the zoo's
    ``gos-vae-synth``)."""

    name: ClassVar[str] = "gos-vae"
    wire_name: ClassVar[str] = "gosvae"
    role: ClassVar[str] = "proposed"
    family: ClassVar[str] = "gos-vae"

    def __init__(self, model: nn.Module | str = "gos-vae-synth", **kw: Any) -> None:
        super().__init__(model, **kw)


register_receiver("gosvae", GosVaeScheme)
