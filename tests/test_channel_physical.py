"""The physical-layer channel: torch backend always, Sionna backend when installed."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from semcom.channel import create_channel
from semcom.channel.physical import PhysicalChannel
from semcom.channel.qam import QAM, pam_levels
from semcom.errors import InputError

HAS_SIONNA = importlib.util.find_spec("sionna") is not None
#: Sionna is the optional ``[phy]`` extra (a large TensorFlow stack); the torch backend is
#: tested everywhere, the Sionna one where the extra is installed.
needs_sionna = pytest.mark.skipif(
    not HAS_SIONNA, reason="optional extra semcom[phy] (sionna-no-rt) not installed"
)
BACKENDS = ["torch", pytest.param("sionna", marks=needs_sionna)]


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _measured_ber(a: bytes, b: bytes) -> float:
    x = np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)
    return float(np.unpackbits(x).mean())


def _q(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _assert_close_to_theory(measured: float, theory: float, num_bits: int) -> None:
    sigma = math.sqrt(theory * (1 - theory) / num_bits)
    assert abs(measured - theory) < 6 * sigma + 1e-3 * theory, (measured, theory)


# --------------------------------------------------------------------------- QAM


@pytest.mark.parametrize("m", [2, 4, 6, 8])
def test_qam_unit_energy_gray_and_invertible(m: int) -> None:
    qam = QAM(m)
    pts = qam.points
    assert pts.dtype == torch.complex64 and pts.shape == (2**m,)
    assert abs(pts.abs().square().mean().item() - 1.0) < 1e-5
    # Gray labelling: nearest neighbours differ in exactly one bit
    d = (pts[:, None] - pts[None, :]).abs()
    d.fill_diagonal_(float("inf"))
    dmin = d.min().item()
    for i, j in (d < dmin * 1.001).nonzero().tolist():
        assert bin(i ^ j).count("1") == 1
    bits = torch.randint(0, 2, (m * 500,), dtype=torch.uint8)
    assert torch.equal(qam.demap_hard(qam.map(bits)), bits)


def test_pam_levels_are_odd_integers() -> None:
    assert sorted(pam_levels(2).tolist()) == [-3, -1, 1, 3]
    assert pam_levels(1).tolist() == [1, -1]


# --------------------------------------------------------------------------- channel


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fading", ["awgn", "rayleigh"])
def test_uncoded_qpsk_ber_matches_theory(backend: str, fading: str) -> None:
    """QPSK with Gray labelling: AWGN Q(sqrt(2 Eb/N0)); Rayleigh 0.5(1 - sqrt(g/(1+g)))."""
    ebno_db = 4.0
    g = 10 ** (ebno_db / 10)
    theory = _q(math.sqrt(2 * g)) if fading == "awgn" else 0.5 * (1 - math.sqrt(g / (1 + g)))
    data = _payload(25_000)
    ch = PhysicalChannel(fading, ebno_db=ebno_db, qam=4, block=1, backend=backend, seed=1)
    rx = ch(data)
    ber = _measured_ber(data, rx.data)
    assert rx.info["ber"] == pytest.approx(ber)
    assert rx.info["ber_raw"] == pytest.approx(ber)  # uncoded: nothing to decode
    _assert_close_to_theory(ber, theory, 8 * len(data))


def test_uncoded_16qam_awgn_ber_matches_theory() -> None:
    ebno_db = 8.0
    g = 10 ** (ebno_db / 10)
    a = math.sqrt(0.8 * g)
    theory = 0.75 * _q(a) + 0.5 * _q(3 * a) - 0.25 * _q(5 * a)
    data = _payload(25_000, seed=3)
    rx = PhysicalChannel("awgn", ebno_db=ebno_db, qam=16, backend="torch", seed=2)(data)
    _assert_close_to_theory(_measured_ber(data, rx.data), theory, 8 * len(data))


def test_snr_and_ebno_agree() -> None:
    """Es/N0 = Eb/N0 + 10 log10(m) uncoded: the two settings give the same noise."""
    a = PhysicalChannel("awgn", snr_db=10.0, qam=16, backend="torch", seed=5)
    b = PhysicalChannel("awgn", ebno_db=10.0 - 10 * math.log10(4), qam=16, backend="torch", seed=5)
    assert a.noise_var == pytest.approx(b.noise_var)
    data = _payload(3000)
    assert a(data).data == b(data).data


@pytest.mark.parametrize("backend", BACKENDS)
def test_physical_is_reproducible_from_seed(backend: str) -> None:
    data = _payload(2000)
    make = lambda seed: create_channel(  # noqa: E731
        f"rayleigh:snr_db=8,qam=16,block=8,backend={backend}", seed=seed
    )
    ch = make(3)
    first, second = ch(data), ch(data)
    assert first.data != second.data
    ch.reset()
    assert ch(data) == first
    assert make(3)(data) == first
    assert make(4)(data).data != first.data


def test_high_snr_is_error_free_and_accounting() -> None:
    data = _payload(1001)
    for qam, m in ((4, 2), (16, 4), (64, 6), (256, 8)):
        rx = create_channel(f"awgn:snr_db=60,qam={qam},backend=torch")(data)
        assert rx.data == data and rx.erasures == [] and rx.info["ber"] == 0
        symbols = math.ceil(8 * 1001 / m)
        assert rx.info["symbols"] == symbols
        assert rx.channel_bytes == math.ceil(symbols * m / 8)
    assert create_channel("awgn:snr_db=60,qam=64,backend=torch")(b"\x01").channel_bytes == 2


def test_empty_message_and_config() -> None:
    ch = create_channel("rayleigh:ebno_db=10,qam=4,backend=torch", seed=6)
    rx = ch(b"")
    assert rx.data == b"" and rx.channel_bytes == 0
    cfg = ch.config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg == {
        "type": "rayleigh",
        "ebno_db": 10.0,
        "qam": 4,
        "block": 64,
        "backend": "torch",
        "seed": 6,
    }
    assert ch.name == "rayleigh(ebno_db=10,qam=4)"
    assert create_channel(cfg).config() == cfg


def test_low_snr_gives_many_errors_but_same_length() -> None:
    data = _payload(500)
    rx = create_channel("awgn:snr_db=-5,qam=64,backend=torch")(data)
    assert len(rx.data) == len(data) and rx.info["ber"] > 0.2


# --------------------------------------------------------------------------- sionna


@needs_sionna
def test_sionna_and_torch_backends_agree_on_uncoded_qpsk() -> None:
    data = _payload(4000)
    for fading in ("awgn", "rayleigh"):
        a = PhysicalChannel(fading, ebno_db=3.0, qam=4, backend="torch", seed=9)(data)
        b = PhysicalChannel(fading, ebno_db=3.0, qam=4, backend="sionna", seed=9)(data)
        assert a.data == b.data  # same symbols, same noise, same decisions
        assert a.info["ber"] > 0


@needs_sionna
def test_sionna_import_leaves_global_torch_rng_alone() -> None:
    from semcom.channel.sionna_backend import import_sionna

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    import_sionna()
    assert torch.equal(torch.rand(3), expected)


@needs_sionna
def test_ldpc_half_rate_beats_uncoded() -> None:
    ebno_db = 2.5
    data = _payload(1024, seed=1)  # 8 codewords of k = 1024
    coded = create_channel(f"awgn:ebno_db={ebno_db},qam=4,ldpc=0.5", seed=2)
    uncoded = create_channel(f"awgn:ebno_db={ebno_db},qam=4", seed=2)
    rc, ru = coded(data), uncoded(data)
    assert rc.info["codewords"] == 8 and rc.info["code_rate"] == 0.5
    assert rc.channel_bytes == 8 * 2048 // 8  # parity counted
    assert rc.info["coded_bits"] == 8 * 2048
    # before decoding the coded bits see more noise (half the energy per coded bit)
    assert rc.info["ber_raw"] > ru.info["ber"] > 0.01
    assert rc.info["ber"] < ru.info["ber"] / 50
    assert rc.info["ber"] == pytest.approx(_measured_ber(data, rc.data))
    assert len(rc.data) == len(data)


@needs_sionna
def test_ldpc_padding_rayleigh_and_reproducible() -> None:
    data = _payload(300, seed=4)  # 2400 bits -> 3 codewords of k = 1000 (n = 2000)
    ch = create_channel("rayleigh:snr_db=14,qam=16,ldpc=0.5,n=2000,block=16", seed=1)
    rx = ch(data)
    assert rx.info["codewords"] == 3
    assert rx.channel_bytes == 3 * 2000 // 8
    assert len(rx.data) == 300 and rx.info["ber"] <= rx.info["ber_raw"]
    ch.reset()
    assert ch(data) == rx


@needs_sionna
def test_unsupported_ldpc_parameters() -> None:
    with pytest.raises(InputError):
        create_channel("awgn:snr_db=5,ldpc=0.5,n=20")  # k = 10 < 12
    with pytest.raises(InputError):
        create_channel("awgn:snr_db=5,ldpc=0.99")
