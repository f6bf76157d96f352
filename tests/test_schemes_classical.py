"""Classical codecs as schemes: matched bytes, round trips, damaged messages."""

from __future__ import annotations

import pytest
import torch

from semcom.codec.container import unpack
from semcom.data.synthetic import SyntheticWorld
from semcom.errors import BitstreamError, BudgetError, InputError
from semcom.schemes import create_scheme, list_schemes


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    world = SyntheticWorld(size=64)
    return world.generate(world.split_seeds("test", 4)).images


def test_registry_knows_the_codecs() -> None:
    assert {"jpeg", "webp", "avif", "raw"} <= set(list_schemes())
    with pytest.raises(InputError):
        create_scheme("no-such-scheme")


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
@pytest.mark.parametrize("budget", [200, 500, 1200])
def test_message_fits_budget_or_says_the_smallest_size(images, name, budget) -> None:
    from semcom.codec.pillow import quality_range

    sch = create_scheme(name)
    for img in images:
        try:
            msg = sch.compress(img, budget)
        except BudgetError as exc:  # below the codec's floor: fail, naming the smallest size
            assert budget < 400 and exc.smallest > budget == 200
            assert f"at least {exc.smallest}" in str(exc) and "\n" not in str(exc)
            assert len(exc.message) == exc.smallest
            assert unpack(exc.message).fields["q"] == quality_range(name)[0]
            msg = exc.message
        else:
            assert len(msg) <= budget
        out = sch.decompress(msg)
        assert out["x_hat"].shape == img.shape and out["x_hat"].dtype == torch.uint8


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_scale_auto_searches_resolution_and_quality(images, name) -> None:
    from semcom.codec.pillow import quality_range

    full, auto = create_scheme(name), create_scheme(f"{name}[scale=auto]")
    low = {"jpeg": 330, "webp": 150, "avif": 380}[name]  # below the full-size floor
    with pytest.raises(BudgetError, match="scale=auto"):
        full.compress(images[0], low)
    for img in images:
        msg = auto.compress(img, low)
        assert len(msg) <= low and unpack(msg).fields["d"] > 0  # coded smaller
        out = auto.decompress(msg)
        assert out["x_hat"].shape == img.shape  # the receiver upsamples
        # at a generous budget auto keeps the full size at the highest quality
        big = unpack(auto.compress(img, 60_000))
        assert "d" not in big.fields and big.fields["q"] == quality_range(name)[1]
    # over a range of budgets, auto is never worse than the full size where both fit
    for budget in (500, 800):
        a = auto.decompress(auto.compress(images[0], budget))["x_hat"].float()
        f = full.decompress(full.compress(images[0], budget))["x_hat"].float()
        ref = images[0].float()
        assert (a - ref).pow(2).mean() <= (f - ref).pow(2).mean() + 1e-6


def test_scaled_message_fields_are_checked(images) -> None:
    from semcom.codec.container import Message, pack

    auto = create_scheme("webp[scale=auto]")
    msg = unpack(auto.compress(images[0], 150))
    for d in (0, msg.fields["d"] + 1, 99):
        bad = Message(msg.scheme, {**msg.fields, "d": d}, dict(msg.sections))
        with pytest.raises(BitstreamError):
            auto.decompress(pack(bad))


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_more_bytes_gives_better_fidelity(images, name) -> None:
    sch = create_scheme(name)
    err = []
    for budget in (500, 1500):
        x = torch.stack([sch.decompress(sch.compress(i, budget))["x_hat"] for i in images])
        err.append(float((x.float() - images.float()).pow(2).mean()))
    assert err[1] < err[0]


def test_raw_is_exact(images) -> None:
    sch = create_scheme("raw")
    msg = sch.compress(images[0], 24)
    assert len(msg) > 64 * 64 * 3
    assert torch.equal(sch.decompress(msg)["x_hat"], images[0])


def test_header_records_size_and_quality(images) -> None:
    msg = unpack(create_scheme("jpeg").compress(images[0], 400))
    assert msg.scheme_name == "jpeg"
    assert msg.fields["h"] == 64 and msg.fields["w"] == 64 and 1 <= msg.fields["q"] <= 95


def test_damaged_or_foreign_messages_raise(images) -> None:
    jpeg, webp = create_scheme("jpeg"), create_scheme("webp")
    msg = jpeg.compress(images[0], 400)
    with pytest.raises(BitstreamError):
        webp.decompress(msg)  # message of another scheme
    with pytest.raises(BitstreamError):
        jpeg.decompress(msg, erasures=[(len(msg) - 50, len(msg) - 10)])  # payload lost
    flipped = bytearray(msg)
    flipped[-20] ^= 0x01
    with pytest.raises(BitstreamError):
        jpeg.decompress(bytes(flipped))


@pytest.mark.parametrize("rate", [0, 10, float("nan"), -1])
def test_rate_out_of_range(rate) -> None:
    with pytest.raises(InputError):
        create_scheme("jpeg").validate_rate(rate)
