"""Tests of semcom.codec.pillow: round trips, matched bytes, metadata, hostile input."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, WebPImagePlugin, features

from semcom.codec import pillow as pc
from semcom.errors import BitstreamError, InputError

H, W = 48, 64


def _image(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """A smooth image with an edge and mild noise, uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    a = np.stack([np.sin(6 * x + 1) * 0.5 + 0.5, np.cos(4 * y) * 0.5 + 0.5, x * y], -1)
    a[h // 4 : h // 2, w // 4 : 3 * w // 4] = [0.9, 0.2, 0.1]
    a += rng.normal(0, 0.01, a.shape)
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


IMG = _image()


def needs(fmt: str) -> pytest.MarkDecorator:
    """Skip where this Pillow build lacks ``fmt``: its codecs are optional platform features
    (``test_available_formats_match_pillow_features`` checks the list is honest)."""
    return pytest.mark.skipif(
        fmt not in pc.available_formats(),
        reason=f"this Pillow build has no {fmt} codec (optional platform feature)",
    )


FMTS = [pytest.param(f, marks=needs(f)) for f in pc.FORMATS]


def test_available_formats_match_pillow_features():
    expect = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
    assert set(pc.available_formats()) == {f for f, k in expect.items() if features.check(k)}
    assert "jpeg" in pc.available_formats()


@pytest.mark.parametrize("fmt", FMTS)
def test_round_trip_shape_dtype_and_fidelity(fmt):
    hi = pc.QUALITY_RANGES[fmt][1]
    data = pc.encode_image(IMG, fmt, hi)
    out = pc.decode_image(data, fmt)
    assert out.dtype == torch.uint8 and tuple(out.shape) == (3, H, W)
    err = np.abs(out.permute(1, 2, 0).numpy().astype(int) - IMG.astype(int)).mean()
    assert err < 5.0  # 4:2:0 chroma subsampling blurs the colour edges
    lo_err = np.abs(
        pc.decode_image(pc.encode_image(IMG, fmt, pc.QUALITY_RANGES[fmt][0]), fmt)
        .permute(1, 2, 0)
        .numpy()
        .astype(int)
        - IMG.astype(int)
    ).mean()
    assert lo_err > err  # the lowest quality is visibly worse


@pytest.mark.parametrize("fmt", FMTS)
def test_torch_and_numpy_inputs_agree_and_encoding_is_deterministic(fmt):
    t = torch.from_numpy(IMG).permute(2, 0, 1)  # non-contiguous view
    a = pc.encode_image(IMG, fmt, 50)
    assert pc.encode_image(t, fmt, 50) == a
    assert pc.encode_image(IMG, fmt, 50) == a


@pytest.mark.parametrize("fmt", FMTS)
def test_size_grows_from_lowest_to_highest_quality(fmt):
    lo, hi = pc.QUALITY_RANGES[fmt]
    assert len(pc.encode_image(IMG, fmt, lo)) < len(pc.encode_image(IMG, fmt, hi))


def _jpeg_markers(data: bytes) -> list[int]:
    """Marker bytes of the segments before SOS."""
    pos, out = 2, []
    while pos < len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        out.append(marker)
        if marker == 0xDA:  # SOS
            break
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return out


def test_jpeg_has_no_app_segments_and_stripping_jfif_changes_no_pixel():
    data = pc.encode_image(IMG, "jpeg", 75)
    markers = _jpeg_markers(data)
    assert markers[-1] == 0xDA
    assert not [m for m in markers if 0xE0 <= m <= 0xEF]  # no APPn: no JFIF/EXIF/ICC
    buf = io.BytesIO()
    Image.fromarray(IMG).save(buf, "JPEG", quality=75, **pc.ENCODER_OPTIONS["jpeg"])
    full = buf.getvalue()
    assert len(full) - len(data) == 18
    ref = np.asarray(Image.open(io.BytesIO(full)).convert("RGB"))
    assert np.array_equal(pc.decode_image(data, "jpeg").permute(1, 2, 0).numpy(), ref)


@pytest.mark.parametrize("fmt", FMTS)
def test_no_metadata_even_if_the_source_had_some(fmt):
    data = pc.encode_image(IMG, fmt, 60)
    assert b"Exif" not in data and b"ICC_PROFILE" not in data and b"prof" not in data
    if fmt == "webp":
        assert data[12:16] == b"VP8 "  # simple lossy file: no VP8X, so no EXIF/ICCP/XMP chunks


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError):
        pc.encode_image(IMG, "png", 50)
    with pytest.raises(InputError):
        pc.encode_image(IMG, "jpeg", 96)
    with pytest.raises(InputError):
        pc.encode_image(IMG, "jpeg", 0)
    with pytest.raises(InputError):
        pc.encode_image(IMG, "webp", 50.0)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        pc.encode_image(IMG.astype(np.float32), "jpeg", 50)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        pc.encode_image(torch.from_numpy(IMG), "jpeg", 50)  # (H, W, 3) torch
    with pytest.raises(InputError):
        pc.encode_image(np.zeros((0, 4, 3), np.uint8), "jpeg", 50)
    with pytest.raises(InputError):
        pc.encode_to_budget(IMG, "jpeg", 500, min_quality=60, max_quality=50)
    with pytest.raises(InputError):
        pc.decode_image(b"\xff\xd8\xff", "jpeg", max_pixels=0)
    assert pc.encode_image(IMG, "JPG", 50) == pc.encode_image(IMG, "jpeg", 50)


# ------------------------------------------------------------------------ matched bytes


@pytest.mark.parametrize("fmt", FMTS)
def test_encode_to_budget_is_the_highest_quality_that_fits(fmt):
    lo, hi = pc.QUALITY_RANGES[fmt]
    smallest = len(pc.encode_image(IMG, fmt, lo))
    largest = len(pc.encode_image(IMG, fmt, hi))
    for frac in (0.15, 0.4, 0.7):
        budget = int(smallest + frac * (largest - smallest))
        enc = pc.encode_to_budget(IMG, fmt, budget)
        assert enc.fits and len(enc.data) == enc.n_bytes <= budget
        assert lo <= enc.quality < hi
        assert enc.data == pc.encode_image(IMG, fmt, enc.quality)
        assert len(pc.encode_image(IMG, fmt, enc.quality + 1)) > budget
        assert pc.decode_image(enc.data, fmt).shape == (3, H, W)


@pytest.mark.parametrize("fmt", FMTS)
def test_encode_to_budget_edges(fmt):
    lo, hi = pc.QUALITY_RANGES[fmt]
    big = pc.encode_to_budget(IMG, fmt, 10**7)
    assert big.fits and big.quality == hi
    tiny = pc.encode_to_budget(IMG, fmt, 10)
    assert not tiny.fits and tiny.quality == lo
    assert tiny.data == pc.encode_image(IMG, fmt, lo) and len(tiny.data) > 10
    assert not pc.encode_to_budget(IMG, fmt, -5).fits


def test_encode_to_budget_respects_quality_bounds():
    budget = len(pc.encode_image(IMG, "jpeg", 70))
    enc = pc.encode_to_budget(IMG, "jpeg", budget, min_quality=20, max_quality=40)
    assert enc.quality == 40 and enc.fits
    enc = pc.encode_to_budget(IMG, "jpeg", 10, min_quality=20, max_quality=40)
    assert enc.quality == 20 and not enc.fits
    enc = pc.encode_to_budget(IMG, "jpeg", budget, min_quality=33, max_quality=33)
    assert enc.quality == 33


# ------------------------------------------------------------------------ hostile input


def _encoded(fmt: str) -> bytes:
    return pc.encode_image(IMG, fmt, 50)


@pytest.mark.parametrize("fmt", FMTS)
def test_garbage_empty_and_truncated_raise_bitstream_error(fmt):
    data = _encoded(fmt)
    rng = np.random.default_rng(1)
    bad = [b"", b"\x00", rng.bytes(2000), data[:1], data[:20], data[: len(data) // 2], data[:-1]]
    bad += [data[:12] + rng.bytes(len(data) - 12)]  # a valid start, then noise
    for blob in bad:
        with pytest.raises(BitstreamError):
            pc.decode_image(blob, fmt)


@pytest.mark.parametrize("fmt", FMTS)
def test_other_formats_are_rejected(fmt):
    png = io.BytesIO()
    Image.fromarray(IMG).save(png, "PNG")
    with pytest.raises(BitstreamError):
        pc.decode_image(png.getvalue(), fmt)
    for other in pc.available_formats():
        if other != fmt:
            with pytest.raises(BitstreamError):
                pc.decode_image(_encoded(other), fmt)


@pytest.mark.parametrize("fmt", FMTS)
def test_bit_flips_decode_or_raise_bitstream_error_only(fmt):
    data = _encoded(fmt)
    rng = np.random.default_rng(2)
    for _ in range(60):
        b = bytearray(data)
        for p in rng.integers(0, len(b), 3):
            b[p] ^= 1 << int(rng.integers(8))
        try:
            out = pc.decode_image(bytes(b), fmt)
        except BitstreamError:
            continue
        assert out.dtype == torch.uint8 and out.shape[0] == 3


def test_max_pixels_is_exact():
    data = _encoded("jpeg")
    assert pc.decode_image(data, "jpeg", max_pixels=H * W).shape == (3, H, W)
    with pytest.raises(BitstreamError, match="max_pixels"):
        pc.decode_image(data, "jpeg", max_pixels=H * W - 1)


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Fail the test if any pixel buffer is decoded (ImageFile.load) or a WebP canvas made."""
    calls: list[str] = []

    def load(self, *a, **k):
        calls.append("load")
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    if features.check("webp"):
        real = WebPImagePlugin._webp.WebPAnimDecoder

        def anim(data, *a, **k):
            calls.append("webp-canvas")
            return real(data, *a, **k)

        monkeypatch.setattr(WebPImagePlugin._webp, "WebPAnimDecoder", anim)
    return calls


def _patch_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    k = data.find(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    assert k > 0
    return data[: k + 5] + struct.pack(">HH", h, w) + data[k + 9 :]


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


@pytest.mark.parametrize("w,h,limit", [(65535, 65535, pc.DEFAULT_MAX_PIXELS), (4000, 3000, 10**6)])
def test_jpeg_decompression_bomb_is_refused_before_decoding(no_pixel_decoding, w, h, limit):
    bomb = _patch_jpeg_size(_encoded("jpeg"), w, h)
    t = time.perf_counter()
    with pytest.raises(BitstreamError):
        pc.decode_image(bomb, "jpeg", max_pixels=limit)
    assert time.perf_counter() - t < 1.0
    assert no_pixel_decoding == []


@needs("webp")
@pytest.mark.parametrize("w,h,limit", [(16383, 16383, pc.DEFAULT_MAX_PIXELS), (4000, 3000, 10**6)])
def test_webp_bomb_is_refused_before_the_canvas_is_allocated(no_pixel_decoding, w, h, limit):
    data = _encoded("webp")
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    bomb = data[:26] + struct.pack("<HH", w, h) + data[30:]
    with pytest.raises(BitstreamError, match="max_pixels"):
        pc.decode_image(bomb, "webp", max_pixels=limit)
    assert no_pixel_decoding == []


@needs("avif")
@pytest.mark.parametrize(
    "w,h,limit", [(100000, 100000, pc.DEFAULT_MAX_PIXELS), (4000, 3000, 10**6)]
)
def test_avif_bomb_is_refused_before_decoding(no_pixel_decoding, w, h, limit):
    data = _encoded("avif")
    k = data.find(b"ispe")  # box type, version/flags (4), width (4), height (4)
    assert k > 0
    bomb = data[: k + 8] + struct.pack(">II", w, h) + data[k + 16 :]
    with pytest.raises(BitstreamError):
        pc.decode_image(bomb, "avif", max_pixels=limit)
    assert no_pixel_decoding == []


@pytest.mark.parametrize("fmt", FMTS)
def test_png_bomb_header_is_refused(no_pixel_decoding, fmt):
    with pytest.raises(BitstreamError):
        pc.decode_image(_png_header(100000, 100000), fmt)
    assert no_pixel_decoding == []


def test_grayscale_jpeg_is_replicated_and_cmyk_refused():
    buf = io.BytesIO()
    Image.fromarray(IMG[..., 0]).save(buf, "JPEG", quality=90)
    out = pc.decode_image(buf.getvalue(), "jpeg")
    assert out.shape == (3, H, W)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    buf = io.BytesIO()
    Image.fromarray(IMG).convert("CMYK").save(buf, "JPEG", quality=90)
    with pytest.raises(BitstreamError, match="mode"):
        pc.decode_image(buf.getvalue(), "jpeg")


@needs("webp")
def test_animated_or_alpha_webp_refused():
    frames = [Image.fromarray(IMG), Image.fromarray(IMG[::-1].copy())]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], quality=50)
    with pytest.raises(BitstreamError, match="frames"):
        pc.decode_image(buf.getvalue(), "webp")
    rgba = np.concatenate([IMG, np.full((H, W, 1), 128, np.uint8)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "WEBP", quality=50)
    with pytest.raises(BitstreamError, match="mode"):
        pc.decode_image(buf.getvalue(), "webp")


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_large_images_search_with_few_encodings(fmt) -> None:
    """Above PREVIEW_PIXELS the search guesses on a preview and interpolates: the same
    guarantee as bisection (q fits, q + 1 does not) in fewer full-size encodings."""
    from PIL import Image

    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((720, 720), Image.Resampling.BICUBIC))
    assert 720 * 720 > pc.PREVIEW_PIXELS
    lo, hi = pc.QUALITY_RANGES[fmt]
    counts = []
    for q_ref in (10, 30, 50, 70, 90):
        budget = len(pc.encode_image(img, fmt, q_ref)) + 7
        enc = pc.encode_to_budget(img, fmt, budget)
        assert enc.fits and enc.n_bytes <= budget
        assert enc.quality == hi or len(pc.encode_image(img, fmt, enc.quality + 1)) > budget
        counts.append(enc.encodes)
    assert max(counts) <= 2 * 9 and sum(counts) / len(counts) < 7, counts
