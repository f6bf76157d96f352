"""Channel specs: parsing, config round trips and InputError on anything malformed."""

from __future__ import annotations

import sys

import pytest

from semcom.channel import (
    BinarySymmetricChannel,
    ByteBudgetChannel,
    IdealChannel,
    PacketErasureChannel,
    create_channel,
    parse_spec,
)
from semcom.errors import InputError


@pytest.mark.parametrize(
    ("spec", "cls", "params"),
    [
        ("ideal", IdealChannel, {}),
        ("  IDEAL ", IdealChannel, {}),
        ("budget:500", ByteBudgetChannel, {"max_bytes": 500}),
        ("budget:max_bytes=0", ByteBudgetChannel, {"max_bytes": 0}),
        ("bsc:1e-4", BinarySymmetricChannel, {"ber": 1e-4}),
        ("bsc:ber=0.5", BinarySymmetricChannel, {"ber": 0.5}),
        ("bsc(ber=1e-04)", BinarySymmetricChannel, {"ber": 1e-4}),
        ("erasure:0.1", PacketErasureChannel, {"loss": 0.1, "packet_size": 1024}),
        ("erasure:0.1:64", PacketErasureChannel, {"loss": 0.1, "packet_size": 64}),
        (
            "erasure:0.2,64,burst=4,ber=1e-5",
            PacketErasureChannel,
            {"loss": 0.2, "packet_size": 64, "burst": 4.0, "ber": 1e-5},
        ),
        (
            "erasure(loss=0.1,packet_size=64)",
            PacketErasureChannel,
            {"loss": 0.1, "packet_size": 64},
        ),
    ],
)
def test_specs_build_the_right_channel(spec: str, cls: type, params: dict) -> None:
    ch = create_channel(spec, seed=4)
    assert type(ch) is cls
    assert ch.params() == params
    assert ch.seed == 4
    assert create_channel(ch.name).config() == {**ch.config(), "seed": 0}


def test_default_seed_and_dict_seed() -> None:
    assert create_channel("bsc:0.1").seed == 0
    assert create_channel({"type": "bsc", "ber": 0.1, "seed": 7}).seed == 7
    assert create_channel({"type": "bsc", "ber": 0.1, "seed": 7}, seed=2).seed == 2
    assert create_channel({"type": "bsc", "ber": "0.1"}).params() == {"ber": 0.1}


def test_parse_spec() -> None:
    assert parse_spec("erasure:0.5:32") == ("erasure", {"loss": 0.5, "packet_size": 32})
    assert parse_spec("awgn:snr_db=5,qam=16,ldpc=0.5") == (
        "awgn",
        {"snr_db": 5.0, "qam": 16, "ldpc": 0.5},
    )
    assert parse_spec("awgn:snr_db=5,ldpc=none")[1]["ldpc"] is None


BAD_SPECS = [
    "",
    "   ",
    "foo",
    "foo:1",
    "bsc",
    "bsc:",
    "bsc:0.6",
    "bsc:-0.1",
    "bsc:nan",
    "bsc:inf",
    "bsc:abc",
    "bsc:1e-3,",
    "bsc:ber=",
    "bsc:=0.1",
    "bsc:ber=0.1,ber=0.2",
    "bsc:0.1,ber=0.2",
    "bsc:rate=0.1",
    "bsc:0.1:0.2",
    "ideal:3",
    "budget",
    "budget:-1",
    "budget:1.5",
    "budget:abc",
    "erasure",
    "erasure:1.5",
    "erasure:-0.1",
    "erasure:0.1:0",
    "erasure:0.1:1.5",
    "erasure:0.1:64:3",
    "erasure:0.1,burst=0.5",
    "erasure:packet_size=64",
    "erasure:loss=0.1,64",
    "awgn",
    "awgn:5",
    "awgn:qam=4,backend=torch",
    "awgn:snr_db=5,ebno_db=3,backend=torch",
    "awgn:snr_db=inf,backend=torch",
    "awgn:snr_db=500,backend=torch",
    "awgn:snr_db=5,qam=3,backend=torch",
    "awgn:snr_db=5,qam=2,backend=torch",
    "awgn:snr_db=5,qam=32,backend=torch",
    "awgn:snr_db=5,ldpc=0.1,backend=torch",
    "awgn:snr_db=5,ldpc=0.5,backend=torch",
    "awgn:snr_db=5,backend=gpu",
    "awgn:snr_db=5,foo=1,backend=torch",
    "awgn:snr_db=5,block=4,backend=torch",
    "rayleigh:snr_db=5,block=0,backend=torch",
    "rayleigh:snr_db=5,iters=0,backend=torch",
    "rayleigh(snr_db=5",
]


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_bad_specs_raise_input_error(spec: str) -> None:
    with pytest.raises(InputError):
        create_channel(spec)


@pytest.mark.parametrize(
    "spec",
    [
        None,
        3,
        {},
        {"ber": 0.1},
        {"type": "nope"},
        {"type": "bsc"},
        {"type": "bsc", "ber": 0.1, "extra": 1},
        {"type": "bsc", "ber": True},
        {"type": "budget", "max_bytes": 2.5},
        {"type": "erasure", "loss": "x"},
    ],
)
def test_bad_dict_specs_raise_input_error(spec: object) -> None:
    with pytest.raises(InputError):
        create_channel(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 0.5, "1", True])
def test_bad_seed_raises_input_error(seed: object) -> None:
    with pytest.raises(InputError):
        create_channel("bsc:0.1", seed=seed)  # type: ignore[arg-type]


def test_missing_sionna_asks_for_the_phy_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Sionna absent, physical specs fail with a clear InputError; backend=torch works."""
    for name in [m for m in sys.modules if m == "sionna" or m.startswith("sionna.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sionna", None)
    with pytest.raises(InputError, match=r"semcom\[phy\]"):
        create_channel("awgn:snr_db=5,qam=16,ldpc=0.5")
    with pytest.raises(InputError, match=r"semcom\[phy\]"):
        create_channel("rayleigh:ebno_db=10,qam=4")
    assert create_channel("awgn:snr_db=5,backend=torch")(b"x").channel_bytes == 1
