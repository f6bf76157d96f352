"""The physical-layer channel: bits -> (LDPC) -> QAM -> AWGN / Rayleigh fading -> bits.

Two interchangeable backends do the signal processing:

* ``"sionna"`` (default): NVIDIA Sionna's PyTorch PHY (optional extra ``semcom[phy]``):
  5G NR LDPC coding with belief-propagation decoding, APP demapping to LLRs.
* ``"torch"``: plain torch, uncoded Gray QAM with nearest-point decisions -- same API,
  no extra dependency.

For uncoded transmission both backends map the same bits to the same symbols and draw
the same noise from the same seed, so they agree symbol for symbol (QPSK) or up to
APP-vs-nearest-point decisions at region borders (higher orders).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

from semcom.channel.base import Channel, Received, check_int
from semcom.channel.qam import QAM, SUPPORTED_BITS
from semcom.errors import InputError

__all__ = ["PhysicalChannel", "TorchBackend", "BACKENDS", "FADINGS"]

BACKENDS = ("sionna", "torch")
FADINGS = ("awgn", "rayleigh")
MIN_RATE, MAX_RATE = 0.2, 0.95
DB_RANGE = (-50.0, 100.0)
CHUNK_SYMBOLS = 1 << 16  # demapping chunk (bounds the APP demapper's memory)
CHUNK_CODED_BITS = 1 << 17  # LDPC decoding chunk, in coded bits


class Backend(Protocol):
    """What :class:`PhysicalChannel` needs from a backend (see :class:`TorchBackend`)."""

    name: str
    m: int
    k: int | None
    n: int | None

    def ebno_to_no(self, ebno_db: float, code_rate: float) -> float: ...
    def complex_normal(self, num: int, var: float, generator: torch.Generator) -> torch.Tensor: ...
    def map(self, bits: torch.Tensor) -> torch.Tensor: ...
    def detect(
        self, y: torch.Tensor, no: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...
    def encode(self, u: torch.Tensor) -> torch.Tensor: ...
    def decode(self, llr: torch.Tensor) -> torch.Tensor: ...


class TorchBackend:
    """Uncoded Gray QAM in plain torch (no channel coding).

    Parameters
    ----------
    bits_per_symbol : int
        ``m`` in 2, 4, 6, 8.
    """

    name = "torch"
    k: int | None = None
    n: int | None = None

    def __init__(self, bits_per_symbol: int) -> None:
        self.m = bits_per_symbol
        self._qam = QAM(bits_per_symbol)

    def ebno_to_no(self, ebno_db: float, code_rate: float) -> float:
        """Noise variance per complex symbol: ``1 / (Eb/N0 * R * m)`` (``Es = 1``)."""
        return 1.0 / (math.pow(10.0, ebno_db / 10.0) * code_rate * self.m)

    def complex_normal(self, num: int, var: float, generator: torch.Generator) -> torch.Tensor:
        """``num`` i.i.d. CN(0, ``var``) samples (real parts drawn first): complex64 ``(num,)``."""
        std = math.sqrt(var / 2.0)
        re = torch.randn(num, generator=generator) * std
        im = torch.randn(num, generator=generator) * std
        return torch.complex(re, im)

    def map(self, bits: torch.Tensor) -> torch.Tensor:
        """uint8 ``(S * m,)`` -> complex64 ``(S,)``."""
        return self._qam.map(bits)

    def detect(self, y: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Nearest-point decisions: complex ``(S,)`` -> (uint8 ``(S * m,)``, no LLRs)."""
        return self._qam.demap_hard(y), None

    def encode(self, u: torch.Tensor) -> torch.Tensor:
        raise InputError("the torch backend has no channel coding (use backend='sionna')")

    def decode(self, llr: torch.Tensor) -> torch.Tensor:
        raise InputError("the torch backend has no channel coding (use backend='sionna')")


def _check_db(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number (dB), got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not DB_RANGE[0] <= value <= DB_RANGE[1]:
        raise InputError(f"{name} must be in [{DB_RANGE[0]:g}, {DB_RANGE[1]:g}] dB, got {value}")
    return value


class PhysicalChannel(Channel):
    """Message bits over a simulated radio link.

    Pipeline: message bits (MSB first) -> optional 5G LDPC encoding (zero-padded to a
    whole number of codewords of ``k = round(ldpc * n)`` information bits) -> Gray QAM
    (zero-padded to whole symbols, unit energy) -> channel -> equalisation -> demapping
    -> LDPC decoding or hard decisions -> bytes.

    Channel models: ``"awgn"``: ``y = x + w``; ``"rayleigh"``: flat block fading
    ``y = h x + w`` with ``h ~ CN(0, 1)`` i.i.d. per block of ``block`` symbols (a fresh
    block starts with each message) and perfect channel knowledge at the receiver
    (``y / h`` with noise variance ``N0 / |h|^2``). ``w ~ CN(0, N0)``.

    Noise level: ``snr_db`` = ``Es/N0`` per symbol, or ``ebno_db`` = ``Eb/N0`` per
    *information* bit (``N0 = 1 / (Eb/N0 * R * m)``, ``R`` the actual code rate ``k/n``,
    1 uncoded). Give exactly one.

    Parameters
    ----------
    fading : str
        ``"awgn"`` or ``"rayleigh"``.
    snr_db, ebno_db : float or None
        Exactly one, in ``[-50, 100]`` dB.
    qam : int
        Constellation size: 4 (QPSK), 16, 64 or 256.
    ldpc : float or None
        5G LDPC code rate in ``[0.2, 0.95]``; ``None`` for uncoded.
    n : int
        LDPC codeword length (default 2048).
    iters : int
        LDPC belief-propagation iterations (default 20).
    block : int
        Rayleigh coherence length in symbols (default 64; ignored for AWGN).
    backend : str
        ``"sionna"`` (default; needs ``semcom[phy]``) or ``"torch"`` (uncoded only).
    seed : int
        Seed of the fading and noise processes.

    Output
    ------
    ``data`` of length ``L`` (bit errors unknown to the receiver, ``erasures = []``);
    ``channel_bytes = ceil(transmitted coded bits / 8)`` (parity and padding
    included); ``info`` with ``ber_raw`` (hard-decision BER of the coded bits before
    decoding), ``ber`` (BER of the delivered message bits), ``bit_errors``,
    ``coded_bits``, ``symbols``, ``codewords``, ``code_rate``, ``no``, ``snr_db``,
    ``ebno_db``.

    Raises
    ------
    InputError
        Bad parameters, LDPC with the torch backend, or Sionna not installed.
    """

    kind = "awgn"  # replaced per instance by the fading model ("awgn" / "rayleigh")

    def __init__(
        self,
        fading: str = "awgn",
        snr_db: float | None = None,
        ebno_db: float | None = None,
        qam: int = 4,
        ldpc: float | None = None,
        n: int = 2048,
        iters: int = 20,
        block: int = 64,
        backend: str = "sionna",
        seed: int = 0,
    ) -> None:
        if fading not in FADINGS:
            raise InputError(f"fading must be one of {FADINGS}, got {fading!r}")
        self.kind = fading  # type: ignore[misc]  # spec keyword depends on the model
        self.fading = fading
        if (snr_db is None) == (ebno_db is None):
            raise InputError("give exactly one of snr_db (Es/N0) and ebno_db (Eb/N0)")
        self.snr_db = None if snr_db is None else _check_db("snr_db", snr_db)
        self.ebno_db = None if ebno_db is None else _check_db("ebno_db", ebno_db)
        qam = check_int("qam", qam, 4)
        bits = qam.bit_length() - 1
        if 2**bits != qam or bits not in SUPPORTED_BITS:
            raise InputError(f"qam must be one of {[2**b for b in SUPPORTED_BITS]}, got {qam}")
        self.qam = qam
        if ldpc is not None:
            if isinstance(ldpc, bool) or not isinstance(ldpc, (int, float, np.number)):
                raise InputError(f"ldpc (code rate) must be a number, got {ldpc!r}")
            ldpc = float(ldpc)
            if not MIN_RATE <= ldpc <= MAX_RATE:
                raise InputError(f"ldpc code rate must be in [{MIN_RATE}, {MAX_RATE}], got {ldpc}")
        self.ldpc = ldpc
        self.n = check_int("n", n, 24, 316 * 384)
        self.iters = check_int("iters", iters, 1, 1000)
        self.block = check_int("block", block, 1)
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self._impl: Backend
        if backend == "torch":
            if ldpc is not None:
                raise InputError("LDPC coding needs backend='sionna' (install semcom[phy])")
            self._impl = TorchBackend(bits)
        else:
            from semcom.channel.sionna_backend import SionnaBackend

            self._impl = SionnaBackend(bits, ldpc, self.n, self.iters)
        self._gen = torch.Generator(device="cpu")
        super().__init__(seed=seed)

    def reset(self) -> None:
        super().reset()
        self._gen.manual_seed(self.seed)

    @property
    def bits_per_symbol(self) -> int:
        """``m = log2(qam)``."""
        return self._impl.m

    @property
    def code_rate(self) -> float:
        """Actual code rate ``k / n`` (1.0 uncoded)."""
        if self._impl.k is None or self._impl.n is None:
            return 1.0
        return self._impl.k / self._impl.n

    @property
    def noise_var(self) -> float:
        """``N0``, noise variance per complex symbol (unit-energy symbols)."""
        if self.snr_db is not None:
            return math.pow(10.0, -self.snr_db / 10.0)
        assert self.ebno_db is not None
        return self._impl.ebno_to_no(self.ebno_db, self.code_rate)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.snr_db is not None:
            out["snr_db"] = self.snr_db
        else:
            out["ebno_db"] = self.ebno_db
        out["qam"] = self.qam
        if self.ldpc is not None:
            out.update(ldpc=self.ldpc, n=self.n, iters=self.iters)
        if self.fading == "rayleigh":
            out["block"] = self.block
        out["backend"] = self.backend
        return out

    def name_params(self) -> dict[str, Any]:
        out = self.params()
        for key in ("n", "iters", "block", "backend"):
            out.pop(key, None)
        return out

    def _transmit(self, data: bytes) -> Received:
        m = self.bits_per_symbol
        no = self.noise_var
        es_no_db = -10.0 * math.log10(no)
        ebno_db = es_no_db - 10.0 * math.log10(self.code_rate * m)
        info: dict[str, Any] = {
            "code_rate": self.code_rate,
            "no": no,
            "snr_db": es_no_db,
            "ebno_db": ebno_db,
        }
        if not data:
            info.update(ber_raw=0.0, ber=0.0, bit_errors=0, coded_bits=0, symbols=0, codewords=0)
            return Received(data=b"", erasures=[], channel_bytes=0, info=info)

        bits = torch.from_numpy(np.unpackbits(np.frombuffer(data, dtype=np.uint8)))
        num_bits = bits.numel()
        impl = self._impl
        codewords = 0
        if impl.k is not None and impl.n is not None:
            codewords = -(-num_bits // impl.k)
            u = torch.zeros(codewords * impl.k, dtype=torch.uint8)
            u[:num_bits] = bits
            coded = impl.encode(u.reshape(codewords, impl.k)).reshape(-1)
        else:
            coded = bits
        num_coded = coded.numel()
        num_symbols = -(-num_coded // m)
        tx_bits = torch.zeros(num_symbols * m, dtype=torch.uint8)
        tx_bits[:num_coded] = coded
        x = impl.map(tx_bits)

        # channel: fading coefficients first, then noise, from the channel's generator
        if self.fading == "rayleigh":
            num_blocks = -(-num_symbols // self.block)
            h = impl.complex_normal(num_blocks, 1.0, self._gen)
            h = h.repeat_interleave(self.block)[:num_symbols]
            w = impl.complex_normal(num_symbols, no, self._gen)
            gain = h.abs().square().clamp_min(1e-30)  # |h|^2 (never exactly 0)
            y = (h * x + w) * h.conj() / gain  # coherent equalisation with perfect CSI
            no_eff = (no / gain).to(torch.float32)
        else:
            w = impl.complex_normal(num_symbols, no, self._gen)
            y = x + w
            no_eff = torch.full((num_symbols,), no, dtype=torch.float32)

        hard_parts, llr_parts = [], []
        for s in range(0, num_symbols, CHUNK_SYMBOLS):
            hard, llr = impl.detect(y[s : s + CHUNK_SYMBOLS], no_eff[s : s + CHUNK_SYMBOLS])
            hard_parts.append(hard)
            if llr is not None:
                llr_parts.append(llr)
        hard = torch.cat(hard_parts)[:num_coded]
        raw_errors = int((hard != coded).sum())

        if impl.k is not None and impl.n is not None:
            llr = torch.cat(llr_parts)[:num_coded].reshape(codewords, impl.n)
            step = max(1, CHUNK_CODED_BITS // impl.n)
            decoded = torch.cat([impl.decode(llr[c : c + step]) for c in range(0, codewords, step)])
            bits_hat = decoded.reshape(-1)[:num_bits]
        else:
            bits_hat = hard[:num_bits]
        bit_errors = int((bits_hat != bits).sum())
        out = np.packbits(bits_hat.numpy().astype(np.uint8)).tobytes()
        info.update(
            ber_raw=raw_errors / num_coded,
            ber=bit_errors / num_bits,
            bit_errors=bit_errors,
            coded_bits=num_coded,
            symbols=num_symbols,
            codewords=codewords,
        )
        return Received(data=out, erasures=[], channel_bytes=-(-num_symbols * m // 8), info=info)
