"""Tests of semcom.imageio: image files as untrusted input, modes, orientation, resizing."""

from __future__ import annotations

import dataclasses
import resource
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, features

from semcom import imageio, limits
from semcom.errors import InputError
from semcom.imageio import (
    BACKGROUND,
    FittedImage,
    LoadedImage,
    fit_image,
    load_image,
    load_image_info,
    resize_image,
    save_image,
    to_rgb8,
    unfit_image,
)

# --------------------------------------------------------------------------- helpers


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png(
    width: int,
    height: int,
    idat: bytes,
    *,
    bit_depth: int = 8,
    colour_type: int = 0,
    extra: bytes = b"",
) -> bytes:
    """A PNG file from its parts (IHDR says whatever we like; ``idat`` is compressed)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _png16(arr: np.ndarray, colour_type: int, extra: bytes = b"") -> bytes:
    """A real 16-bit PNG of ``arr`` (uint16, (H, W) or (H, W, C)), unfiltered rows."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return _png(w, h, zlib.compress(raw), bit_depth=16, colour_type=colour_type, extra=extra)


def _wide_bilevel_png(width: int) -> bytes:
    """A real, valid 1-bit greyscale PNG of 1 x ``width`` pixels (all black), built in
    1 MB pieces so neither the test nor the file needs much memory (~8 kB per 67 MP)."""
    row = (width + 7) // 8
    comp = zlib.compressobj(9)
    parts = [comp.compress(b"\x00")]
    zeros = bytes(1 << 20)
    left = row
    while left:
        n = min(left, len(zeros))
        parts.append(comp.compress(zeros[:n]))
        left -= n
    parts.append(comp.flush())
    return _png(width, 1, b"".join(parts), bit_depth=1, colour_type=0)


def _px(t: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in t[:, y, x])


def _tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 numpy -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).contiguous()


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records the size of every image Pillow starts decoding (ImageFile.load)."""
    calls: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load

    def spy(self):  # type: ignore[no-untyped-def]
        calls.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


# --------------------------------------------------------------------------- untrusted input


def test_pillow_guard_set_to_project_limit() -> None:
    assert Image.MAX_IMAGE_PIXELS == limits.MAX_PIXELS
    assert "MAX_IMAGE_PIXELS" in (imageio.__doc__ or "")


def test_wide_png_refused_from_header_without_decoding(
    tmp_path: Path, load_calls: list[tuple[int, int]]
) -> None:
    """The issue's 1 x 67,000,000 PNG (a valid file): InputError, no decode, little memory."""
    path = tmp_path / "wide.png"
    path.write_bytes(_wide_bilevel_png(67_000_000))
    assert path.stat().st_size < 100_000
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as err:
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    assert "67000000x1" in msg and f"limit of {limits.MAX_SIDE}" in msg
    assert load_calls == []  # no pixel was decoded
    assert peak < 5_000_000  # Python/numpy allocations (a decode would be ~200 MB)
    # Pillow's C buffers are not traced: the process's peak RSS must not have grown much
    # (the old code grew it by ~650 MB here).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100_000


def test_tall_png_header_refused_without_decoding(
    tmp_path: Path, load_calls: list[tuple[int, int]]
) -> None:
    path = tmp_path / "tall.png"
    path.write_bytes(_png(1, 67_000_000, zlib.compress(b"\x00\x00")))
    with pytest.raises(InputError, match=r"1x67000000 pixels"):
        load_image_info(path)
    assert load_calls == []


def test_too_many_pixels_refused(tmp_path: Path, load_calls: list[tuple[int, int]]) -> None:
    """Within MAX_SIDE but above MAX_PIXELS: Pillow's guard (warning or error) or ours."""
    for side in (10_500, 16_384):  # 110 MP (Pillow warns), 268 MP (Pillow raises)
        path = tmp_path / f"big{side}.png"
        path.write_bytes(_png(side, side, zlib.compress(b"\x00")))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DecompressionBombWarning escapes
            with pytest.raises(InputError, match="too large|MP, more than") as err:
                load_image(path)
        assert str(path) in str(err.value)
    assert load_calls == []


def test_decompression_bomb_warning_and_error_become_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for side in (12, 20):  # 144 px: Pillow warns; 400 px (> 2 x 100): Pillow raises
        path = tmp_path / f"s{side}.png"
        Image.new("RGB", (side, side)).save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(InputError, match="too large"):
                load_image(path)


def test_max_pixels_lowers_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (10, 10)).save(path)
    assert load_image(path, 100).shape == (3, 10, 10)
    with pytest.raises(InputError, match="more than the limit of 99"):
        load_image(path, 99)


def test_missing_and_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="not a file"):
        load_image(tmp_path)


def _good_png(path: Path) -> bytes:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage",
    ["empty", "garbage", "truncated", "bad_crc", "corrupt_zlib", "truncated_jpeg"],
)
def test_broken_files_give_one_line_input_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "x.png"
    data = _good_png(path)
    if damage == "empty":
        data = b""
    elif damage == "garbage":
        data = b"this is not an image at all" * 10
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bad_crc":
        b = bytearray(data)
        b[60] ^= 0xFF  # inside IDAT: its CRC no longer matches
        data = bytes(b)
    elif damage == "corrupt_zlib":
        raw = zlib.compress(b"\x00" + bytes(3 * 4))
        data = _png(4, 1, raw[:2] + b"\xff" * (len(raw) - 2), colour_type=2)
    elif damage == "truncated_jpeg":
        path = tmp_path / "x.jpg"
        Image.new("RGB", (64, 64), (9, 99, 199)).save(path, quality=90)
        data = path.read_bytes()[:300]
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        load_image_info(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not a readable image (") and "\n" not in msg


@pytest.mark.parametrize(
    "exc",
    [
        OSError("broken data stream"),
        ValueError("bad tile"),
        SyntaxError("broken PNG file"),
        struct.error("unpack requires a buffer of 4 bytes"),
        EOFError(),
        MemoryError(),
        IndexError("list index out of range"),
    ],
)
def test_any_decoder_failure_is_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    path = tmp_path / "x.png"
    _good_png(path)

    def boom(self):  # type: ignore[no-untyped-def]
        raise exc

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    with pytest.raises(InputError) as err:
        load_image(path)
    msg = str(err.value)
    name = "struct.error" if isinstance(exc, struct.error) else type(exc).__name__
    assert msg.startswith(f"{path}: not a readable image ({name}")
    assert "\n" not in msg


def test_eps_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.eps"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n")
    with pytest.raises(InputError, match="EPS"):
        load_image(path)


# --------------------------------------------------------------------------- modes


def test_rgb_unchanged_and_load_image_is_info_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(arr).save(path)
    info = load_image_info(path)
    assert isinstance(info, LoadedImage)
    assert info.image.dtype == torch.uint8 and info.image.shape == (3, 5, 7)
    assert torch.equal(info.image, _tensor(arr))
    assert info.notes == () and info.mode == "RGB" and info.format == "PNG"
    assert info.original_size == (5, 7)
    assert torch.equal(load_image(path), info.image)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.mode = "L"  # type: ignore[misc]


def test_16bit_greyscale_png_scaled_not_white(tmp_path: Path) -> None:
    vals = np.array([[0, 255, 256, 257 * 100], [32768, 65280, 65534, 65535]], np.uint16)
    path = tmp_path / "g16.png"
    path.write_bytes(_png16(vals, colour_type=0))
    info = load_image_info(path)
    assert info.mode.startswith("I")  # "I;16" (or "I" with older Pillow)
    expected = (vals >> 8).astype(np.uint8)  # 0, 0, 1, 100, 128, 255, 255, 255
    for c in range(3):
        assert np.array_equal(info.image[c].numpy(), expected)
    assert "16-bit greyscale scaled to 8 bits" in info.notes


def test_16bit_greyscale_with_transparency_key(tmp_path: Path) -> None:
    vals = np.array([[1000, 50000]], np.uint16)
    path = tmp_path / "g16t.png"
    path.write_bytes(_png16(vals, 0, extra=_chunk(b"tRNS", struct.pack(">H", 1000))))
    info = load_image_info(path)
    assert _px(info.image, 0, 0) == BACKGROUND
    assert _px(info.image, 0, 1) == (50000 >> 8,) * 3
    assert any("composited on white" in n for n in info.notes)


def test_32bit_int_tiff(tmp_path: Path) -> None:
    vals = np.array([[0, 257 * 7, 65535, 70000, -5]], np.int32)
    path = tmp_path / "i.tif"
    Image.fromarray(vals).save(path)
    info = load_image_info(path)
    assert info.mode == "I"
    assert info.image[0, 0].tolist() == [0, 7, 255, 255, 0]
    assert any("clipped" in n for n in info.notes)


def test_float_tiff(tmp_path: Path) -> None:
    vals = np.array([[0.0, 0.25, 0.5, 1.0, 2.0, -1.0, np.nan]], np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(vals).save(path)
    info = load_image_info(path)
    assert info.mode == "F"
    assert info.image[1, 0].tolist() == [0, 64, 128, 255, 255, 0, 0]
    assert any("[0, 1]" in n and "clipped" in n for n in info.notes)
    Image.fromarray(vals[:, :4]).save(path)
    notes = load_image_info(path).notes
    assert notes == ("32-bit float greyscale mapped from [0, 1] to 8 bits",)


def test_16bit_rgb_and_rgba_png(tmp_path: Path) -> None:
    rgb = np.array([[[0, 256 * 10 + 200, 65535], [257 * 3, 300, 65280]]], np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png16(rgb, colour_type=2))
    info = load_image_info(path)
    assert info.mode == "RGB"  # Pillow opens 16-bit RGB as 8-bit RGB
    assert np.array_equal(info.image.permute(1, 2, 0).numpy(), (rgb >> 8).astype(np.uint8))
    assert any("16 bits per channel" in n for n in info.notes)

    rgba = np.concatenate([rgb, np.full((1, 2, 1), 65535, np.uint16)], axis=2)
    path = tmp_path / "rgba16.png"
    path.write_bytes(_png16(rgba, colour_type=6))
    info = load_image_info(path)
    assert np.array_equal(info.image.permute(1, 2, 0).numpy(), (rgb >> 8).astype(np.uint8))


def _blend(c: int, a: int, bg: int = 255) -> int:
    return round((c * a + bg * (255 - a)) / 255)


def test_rgba_composited_on_background(tmp_path: Path) -> None:
    arr = np.array([[[200, 10, 30, 255], [200, 10, 30, 0], [0, 100, 200, 128]]], np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path)
    info = load_image_info(path)
    assert _px(info.image, 0, 0) == (200, 10, 30)
    assert _px(info.image, 0, 1) == BACKGROUND == (255, 255, 255)
    got = _px(info.image, 0, 2)
    want = tuple(_blend(c, 128) for c in (0, 100, 200))
    assert all(abs(g - w) <= 1 for g, w in zip(got, want, strict=True))
    assert info.notes == ("alpha channel composited on white",)
    black = load_image_info(path, background=(0, 0, 0))
    assert _px(black.image, 0, 1) == (0, 0, 0)
    assert black.notes == ("alpha channel composited on black",)


def test_opaque_alpha_dropped_quietly(tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (3, 2), (1, 2, 3, 255)).save(path)
    info = load_image_info(path)
    assert _px(info.image, 1, 2) == (1, 2, 3) and info.notes == ()


def test_la(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    im = Image.new("LA", (2, 1), (100, 255))
    im.putpixel((1, 0), (100, 64))
    im.save(path)
    info = load_image_info(path)
    assert info.mode == "LA"
    assert _px(info.image, 0, 0) == (100, 100, 100)
    assert all(abs(v - _blend(100, 64)) <= 1 for v in _px(info.image, 0, 1))
    assert info.notes == ("alpha channel composited on white",)


def test_pa_via_to_rgb8() -> None:
    im = Image.new("PA", (2, 1))
    im.putpalette([10, 20, 30, 200, 100, 0])
    im.putpixel((0, 0), (0, 255))
    im.putpixel((1, 0), (1, 0))
    arr, notes = to_rgb8(im)
    assert arr.dtype == np.uint8 and arr.shape == (1, 2, 3)
    assert arr[0].tolist() == [[10, 20, 30], [255, 255, 255]]
    assert notes == ("alpha channel composited on white",)


def _palette_image() -> Image.Image:
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.putpixel((1, 0), 1)
    im.putpixel((2, 0), 2)
    return im


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"p{suffix}"
    _palette_image().save(path)
    info = load_image_info(path)
    assert info.mode == "P"
    assert [_px(info.image, 0, x) for x in range(3)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert info.notes == ()


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pt{suffix}"
    _palette_image().save(path, transparency=1)
    info = load_image_info(path)
    assert [_px(info.image, 0, x) for x in range(3)] == [(255, 0, 0), BACKGROUND, (0, 0, 255)]
    assert info.notes == ("transparency composited on white",)


def test_grey_l_and_bilevel(tmp_path: Path) -> None:
    path = tmp_path / "l.png"
    Image.fromarray(np.array([[0, 7, 128, 255]], np.uint8)).save(path)
    info = load_image_info(path)
    assert info.mode == "L" and info.notes == ()
    for c in range(3):
        assert info.image[c, 0].tolist() == [0, 7, 128, 255]

    path = tmp_path / "b.png"
    im = Image.new("1", (3, 1))
    im.putpixel((1, 0), 1)
    im.save(path)
    info = load_image_info(path)
    assert info.mode == "1"
    assert info.image[:, 0].tolist() == [[0, 255, 0]] * 3


def test_grey_with_transparency_key(tmp_path: Path) -> None:
    path = tmp_path / "lt.png"
    Image.fromarray(np.array([[7, 9]], np.uint8)).save(path, transparency=7)
    info = load_image_info(path)
    assert info.image[:, 0].tolist() == [[255, 9]] * 3
    assert info.notes == ("transparency composited on white",)


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_cmyk(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    im = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # red
    im.paste((255, 255, 0, 0), (8, 0, 16, 8))  # blue
    im.save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    info = load_image_info(path)
    assert info.mode == "CMYK"
    tol = 0 if suffix == ".tif" else 3
    for (y, x), want in {(4, 2): (255, 0, 0), (4, 13): (0, 0, 255)}.items():
        assert all(abs(g - w) <= tol for g, w in zip(_px(info.image, y, x), want, strict=True))
    assert info.notes == ("CMYK converted to RGB without a colour profile",)


def test_animation_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    info = load_image_info(path)
    assert _px(info.image, 1, 1) == (255, 0, 0)
    assert info.notes == ("only the first of 2 frames used",)


# --------------------------------------------------------------------------- orientation


def _quadrants(w: int = 32, h: int = 16) -> np.ndarray:
    """(h, w, 3): top-left red, top-right green, bottom-left blue, bottom-right white."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    return arr


def _colour_at(t: torch.Tensor, y: int, x: int) -> str:
    names = {(255, 0, 0): "red", (0, 255, 0): "green", (0, 0, 255): "blue"}
    names[(255, 255, 255)] = "white"
    px = np.array(_px(t, y, x))
    best = min(names, key=lambda c: int(np.abs(px - np.array(c)).sum()))
    assert np.abs(px - np.array(best)).max() <= 40, px
    return names[best]


def test_exif_orientation_6_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "o6.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_quadrants()).save(path, exif=exif, quality=95)
    info = load_image_info(path)
    assert info.original_size == (16, 32)
    assert info.image.shape == (3, 32, 16)  # rotated for display
    # Orientation 6: the viewer turns the stored picture 90 degrees clockwise.
    assert _colour_at(info.image, 4, 4) == "blue"  # stored bottom-left -> top-left
    assert _colour_at(info.image, 4, 12) == "red"  # stored top-left -> top-right
    assert _colour_at(info.image, 28, 4) == "white"  # stored bottom-right -> bottom-left
    assert _colour_at(info.image, 28, 12) == "green"  # stored top-right -> bottom-right
    assert "EXIF orientation 6 applied (rotated 90 degrees clockwise)" in info.notes


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: a[::-1, ::-1]),
        (4, lambda a: a[::-1]),
        (5, lambda a: a.transpose(1, 0, 2)),
        (6, lambda a: np.rot90(a, -1)),
        (7, lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientations_png_exact(tmp_path: Path, orientation: int, expected) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(orientation)
    arr = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    path = tmp_path / "o.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif)
    info = load_image_info(path)
    assert np.array_equal(info.image.permute(1, 2, 0).numpy(), expected(arr))
    assert any(n.startswith("EXIF orientation") for n in info.notes) == (orientation != 1)


# --------------------------------------------------------------------------- fit / resize


def _solid(h: int, w: int, rgb: tuple[int, int, int] = (10, 20, 30)) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, h, w).contiguous()


def test_fit_keeps_aspect_and_pads_centred() -> None:
    out = fit_image(_solid(50, 100), (64, 64), mode="fit")
    assert isinstance(out, FittedImage)
    assert out.image.shape == (3, 64, 64) and out.image.dtype == torch.uint8
    assert out.box == (16, 0, 32, 64)  # 50x100 -> 32x64, 16 rows above and below
    top, left, h, w = out.box
    assert h / w == pytest.approx(50 / 100)
    pic = out.image[:, top : top + h, left : left + w]
    assert (pic == torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1)).all()
    pad = torch.cat([out.image[:, :top], out.image[:, top + h :]], dim=1)
    assert pad.shape[1] == 32 and (pad == 255).all()


def test_fit_tall_odd_and_upscale() -> None:
    out = fit_image(_solid(30, 10), (16, 16))  # default mode is "fit"
    top, left, h, w = out.box
    assert (h, w) == (16, 5) and (top, left) == (0, 5)  # 16 * 10/30 = 5.33 -> 5
    assert (out.image[:, :, :5] == 255).all() and (out.image[:, :, 10:] == 255).all()
    up = fit_image(_solid(4, 8), (40, 40))
    assert up.box == (10, 0, 20, 40)


def test_fit_background_colour() -> None:
    out = fit_image(_solid(10, 20), (20, 20), background=(0, 128, 0))
    assert _px(out.image, 0, 0) == (0, 128, 0) and _px(out.image, 19, 19) == (0, 128, 0)


def test_crop_covers_and_keeps_centre() -> None:
    # 50x100: left quarter red, middle half green, right quarter blue.
    arr = np.zeros((50, 100, 3), np.uint8)
    arr[:, :25] = (255, 0, 0)
    arr[:, 25:75] = (0, 255, 0)
    arr[:, 75:] = (0, 0, 255)
    out = fit_image(_tensor(arr), (64, 64), mode="crop")
    assert out.image.shape == (3, 64, 64) and out.box == (0, 0, 64, 64)
    inner = out.image[:, :, 2:-2]
    assert (inner[1] >= 250).all() and (inner[0] <= 5).all() and (inner[2] <= 5).all()
    wide = fit_image(_tensor(arr), (10, 40), mode="crop")  # 100:50 -> 40:10, crop rows
    assert wide.image.shape == (3, 10, 40)
    assert _colour_at(wide.image, 5, 2) == "red" and _colour_at(wide.image, 5, 37) == "blue"


def test_stretch_is_resize_image() -> None:
    rng = np.random.default_rng(3)
    x = _tensor(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    out = fit_image(x, (16, 16), mode="stretch")
    assert out.image.shape == (3, 16, 16) and out.box == (0, 0, 16, 16)
    assert torch.equal(out.image, resize_image(x, (16, 16)))
    ref = Image.fromarray(x.permute(1, 2, 0).numpy()).resize((16, 16), Image.Resampling.BICUBIC)
    assert torch.equal(out.image, _tensor(np.asarray(ref)))


@pytest.mark.parametrize("mode", ["fit", "crop", "stretch"])
def test_same_size_unchanged(mode: str) -> None:
    rng = np.random.default_rng(4)
    x = _tensor(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    out = fit_image(x, (24, 24), mode=mode)  # type: ignore[arg-type]
    assert torch.equal(out.image, x) and out.box == (0, 0, 24, 24)
    assert torch.equal(fit_image(_solid(8, 8), (24, 24), mode=mode).image, _solid(24, 24))  # type: ignore[arg-type]


def test_unfit_restores_original_size() -> None:
    rng = np.random.default_rng(5)
    arr = np.repeat(np.repeat(rng.integers(0, 256, (5, 10, 3), dtype=np.uint8), 8, 0), 8, 1)
    x = _tensor(arr)  # 40x80, smooth enough blocks
    fitted = fit_image(x, (64, 64))
    back = unfit_image(fitted.image, fitted.box, (40, 80))
    assert back.shape == (3, 40, 80)
    assert (back.float() - x.float()).abs().mean() < 20
    with pytest.raises(InputError, match="not inside"):
        unfit_image(fitted.image, (60, 0, 10, 64), (40, 80))


def test_fit_rejects_bad_arguments() -> None:
    x = _solid(4, 4)
    with pytest.raises(InputError, match="unknown fit mode"):
        fit_image(x, (8, 8), mode="zoom")  # type: ignore[arg-type]
    for size in [(0, 8), (8, -1), (limits.MAX_SIDE + 1, 8), (10_001, 10_001), ("a", 1)]:
        with pytest.raises(InputError):
            fit_image(x, size)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="uint8"):
        fit_image(x.float(), (8, 8))
    with pytest.raises(InputError, match="uint8"):
        resize_image(x[None], (8, 8))


# --------------------------------------------------------------------------- save


_WRITABLE = [".png", ".PNG", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".tga"]
_WRITABLE += [".webp"] if features.check("webp") else []


@pytest.mark.parametrize("suffix", _WRITABLE)
def test_save_image_formats(tmp_path: Path, suffix: str) -> None:
    x = _solid(9, 13, (200, 100, 50))
    path = tmp_path / f"out{suffix}"
    save_image(x, path)
    back = load_image(path)
    assert back.shape == x.shape
    assert (back.int() - x.int()).abs().max() <= 12  # lossy formats / GIF palette


def test_save_image_round_trip_and_no_suffix(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    x = _tensor(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    save_image(x, tmp_path / "a.png")
    assert torch.equal(load_image(tmp_path / "a.png"), x)
    save_image(x[:, :, 1:], tmp_path / "noext")  # non-contiguous view, PNG
    assert Image.open(tmp_path / "noext").format == "PNG"
    assert torch.equal(load_image(tmp_path / "noext"), x[:, :, 1:])


def test_save_image_errors(tmp_path: Path) -> None:
    x = _solid(4, 4)
    with pytest.raises(InputError, match="cannot write"):
        save_image(x, tmp_path / "out.nosuchformat")
    assert not (tmp_path / "out.nosuchformat").exists()
    with pytest.raises(InputError, match="cannot write"):
        save_image(x, tmp_path / "missing_dir" / "out.png")
    with pytest.raises(InputError, match="cannot write"):
        save_image(x, tmp_path)  # a directory
    with pytest.raises(InputError, match="uint8"):
        save_image(x.float(), tmp_path / "f.png")
