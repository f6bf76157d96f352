"""Physical-layer blocks from NVIDIA Sionna (PyTorch PHY, package ``sionna-no-rt`` 2.x).

This is the only module of semcom that imports ``sionna``; it is imported lazily by
:class:`~semcom.channel.physical.PhysicalChannel` when ``backend="sionna"``. Sionna is
an optional extra (``pip install semcom[phy]``).

Randomness never comes from Sionna's global RNG (``sionna.phy.config``): every random
draw takes the calling channel's own ``torch.Generator``, so channels are reproducible
from their seed and independent of each other.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from semcom.errors import InputError

__all__ = ["SionnaBackend", "import_sionna"]

DEVICE = "cpu"


def import_sionna() -> Any:
    """Import ``sionna.phy``; raise ``InputError`` telling how to install it if missing.

    Importing Sionna reseeds torch's global default generator (its config does so on
    start-up); the global RNG state is saved and restored around the import so that
    importing it never changes other code's random stream.
    """
    state = torch.random.get_rng_state()
    try:
        import sionna.phy
    except ImportError as err:
        raise InputError(
            "the physical channel with backend='sionna' needs NVIDIA Sionna: "
            "install semcom[phy] (pip install sionna-no-rt), or use backend='torch' "
            f"(uncoded only) [{err}]"
        ) from err
    finally:
        torch.random.set_rng_state(state)
    return sionna.phy


class SionnaBackend:
    """QAM (de)mapping, noise and optional 5G LDPC coding through Sionna.

    Parameters
    ----------
    bits_per_symbol : int
        ``m`` in 2, 4, 6, 8.
    code_rate : float or None
        LDPC code rate ``R``; ``None`` for uncoded transmission.
    n : int
        LDPC codeword length (``k = round(R * n)`` information bits per codeword).
    iters : int
        Belief-propagation iterations.
    """

    name = "sionna"

    def __init__(self, bits_per_symbol: int, code_rate: float | None, n: int, iters: int) -> None:
        phy = import_sionna()
        from sionna.phy.mapping import Demapper, Mapper
        from sionna.phy.utils import complex_normal, ebnodb2no

        self._phy = phy
        self._complex_normal = complex_normal
        self._ebnodb2no = ebnodb2no
        self.m = bits_per_symbol
        self._mapper = Mapper("qam", bits_per_symbol, precision="single", device=DEVICE)
        self._demapper = Demapper("app", "qam", bits_per_symbol, precision="single", device=DEVICE)
        self.k: int | None = None
        self.n: int | None = None
        self._encoder = None
        self._decoder = None
        if code_rate is not None:
            from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

            k = int(round(code_rate * n))
            try:
                self._encoder = LDPC5GEncoder(
                    k=k,
                    n=n,
                    num_bits_per_symbol=bits_per_symbol,
                    precision="single",
                    device=DEVICE,
                    check_input=False,
                )
                self._decoder = LDPC5GDecoder(
                    self._encoder,
                    num_iter=iters,
                    hard_out=True,
                    return_infobits=True,
                    precision="single",
                    device=DEVICE,
                )
            except (ValueError, TypeError) as err:
                raise InputError(f"unsupported 5G LDPC code k={k}, n={n}: {err}") from err
            self.k, self.n = k, n

    def ebno_to_no(self, ebno_db: float, code_rate: float) -> float:
        """Noise variance per complex symbol for ``Eb/N0`` in dB (``Es = 1``)."""
        return float(self._ebnodb2no(ebno_db, self.m, code_rate, device=DEVICE))

    def complex_normal(self, num: int, var: float, generator: torch.Generator) -> torch.Tensor:
        """``num`` i.i.d. CN(0, ``var``) samples: complex64 ``(num,)``."""
        return self._complex_normal(
            [num], var=var, precision="single", device=DEVICE, generator=generator
        )

    def map(self, bits: torch.Tensor) -> torch.Tensor:
        """uint8 ``(S * m,)`` -> complex64 ``(S,)``."""
        return self._mapper(bits.to(torch.float32))

    def detect(self, y: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """APP demapping.

        Input
        -----
        y : complex64 ``(S,)`` equalised symbols
        no : float32 ``(S,)`` effective noise variance per symbol

        Output
        ------
        hard : uint8 ``(S * m,)``; llr : float32 ``(S * m,)`` (``log p(1)/p(0)``)
        """
        llr = self._demapper(y, no)
        return (llr > 0).to(torch.uint8), llr

    def encode(self, u: torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, k)`` information bits -> uint8 ``(C, n)`` codewords."""
        assert self._encoder is not None
        return self._encoder(u.to(torch.float32)).to(torch.uint8)

    def decode(self, llr: torch.Tensor) -> torch.Tensor:
        """float32 ``(C, n)`` channel LLRs -> uint8 ``(C, k)`` decided information bits."""
        assert self._decoder is not None
        return self._decoder(llr).to(torch.uint8)

    @staticmethod
    def snr_to_no(snr_db: float) -> float:
        """Noise variance per complex symbol for ``Es/N0`` in dB (``Es = 1``)."""
        return math.pow(10.0, -snr_db / 10.0)
