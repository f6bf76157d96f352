"""The command line on real users' files: folders, odd modes, sizes, resizing, -o paths."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semcom.cli import main
from semcom.codec.container import unpack
from semcom.limits import MAX_SIDE

pytestmark = pytest.mark.usefixtures("one_thread")


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth photo-like RGB image (low-frequency noise upsampled)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header declares w x h (1-bit grey) with a tiny, truncated IDAT."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))


def test_an_image_wider_than_the_old_receiver_limit_round_trips(tmp_path, capsys):
    """Sender and receiver share one limit: what is sent can be received (was 4096)."""
    src = tmp_path / "wide.png"
    Image.fromarray(_photo(48, 5000)).save(src)
    msg = tmp_path / "m.smc"
    assert main(["send", str(src), "--scheme", "webp", "--rate", "20000", "-o", str(msg)]) == 0
    assert main(["receive", str(msg), "-o", str(tmp_path / "back.png")]) == 0
    assert Image.open(tmp_path / "back.png").size == (5000, 48)


def test_an_image_over_the_limit_is_refused_at_send_time(tmp_path, capsys):
    src = tmp_path / "long.png"
    _png_header_only(src, MAX_SIDE + 1, 1)
    assert main(["send", str(src), "--scheme", "raw", "-o", str(tmp_path / "m.smc")]) == 2
    line = _err_line(capsys)
    assert f"{MAX_SIDE + 1}x1" in line and str(MAX_SIDE) in line
    assert not (tmp_path / "m.smc").exists()


def test_send_a_folder_one_message_each(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_photo(40, 56, i)).save(folder / f"p{i}.png")
    Image.fromarray(_photo(40, 56, 9)).save(folder / "p0.jpg")  # same stem, other format
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "msgs"
    args = ["send", str(folder), "--scheme", "jpeg", "--rate", "900", "-o", str(out)]
    assert main([*args, "--no-progress"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["p0.jpg.smc", "p0.png.smc", "p1.png.smc", "p2.png.smc"]
    assert all(unpack((out / n).read_bytes()).scheme_name == "jpeg" for n in names)
    assert "4 of 4 images sent" in capsys.readouterr().out


def test_send_a_folder_with_a_broken_file_names_it_and_exits_2(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_photo(32, 32)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["send", str(folder), "--scheme", "raw", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "skipped broken.png" in err and "Traceback" not in err
    assert (tmp_path / "photos-smc" / "good.png.smc").is_file()


def test_an_empty_folder_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["send", str(tmp_path / "empty")]) == 2
    assert "no image files" in _err_line(capsys)


@pytest.mark.parametrize(
    ("fit", "check"),
    [
        ("fit", lambda a: (a[:8] == 255).all() and (a[-8:] == 255).all()),  # padded white
        ("crop", lambda a: not (a[:4] == 255).all()),  # fills the square
        ("stretch", lambda a: not (a[:4] == 255).all()),
    ],
)
def test_resize_keeps_the_aspect_ratio_unless_asked(tmp_path, capsys, fit, check):
    src = tmp_path / "landscape.png"
    Image.fromarray(np.full((100, 200, 3), 40, np.uint8)).save(src)  # 2:1, dark
    msg = tmp_path / "m.smc"
    args = ["send", str(src), "--scheme", "patch-mean[pixels=raw]", "--rate", "1", "-o", str(msg)]
    assert main([*args, "--resize", "--fit", fit]) == 0
    out = capsys.readouterr().out
    assert f"resized from 200x100 to 64x64 ({fit})" in out
    back = tmp_path / "back.png"
    assert main(["receive", str(msg), "-o", str(back), "--scheme", "patch-mean[decoder=none]"]) == 0
    assert check(np.asarray(Image.open(back)))


def test_send_reports_what_loading_did(tmp_path, capsys):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[16:48, 16:48, 3] = 255  # transparent border
    src = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(src)
    assert main(["send", str(src), "--scheme", "raw", "-o", str(tmp_path / "m.smc")]) == 0
    assert "alpha channel composited on white" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "bench", "report"])
def test_output_folder_that_is_a_file_is_one_line(tmp_path, capsys, command):
    target = tmp_path / "taken"
    target.write_text("x")
    args = {"demo": ["demo"], "bench": ["bench"], "report": ["report", str(tmp_path)]}[command]
    assert main([*args, "-o", str(target)]) == 2
    assert "existing file" in _err_line(capsys)


def test_a_byte_budget_is_a_promise(tmp_path, capsys):
    """768x512 at 400 B: JPEG cannot at full size -> one line with the smallest size."""
    src = tmp_path / "photo.png"
    Image.fromarray(_photo(512, 768)).save(src)
    msg = tmp_path / "m.smc"
    assert main(["send", str(src), "--scheme", "jpeg", "--rate", "400", "-o", str(msg)]) == 2
    line = _err_line(capsys)
    assert "smallest message it can make is" in line and "scale=auto" in line
    assert not msg.exists()
    args = ["send", str(src), "--scheme", "jpeg[scale=auto]", "--rate", "400", "-o", str(msg)]
    assert main(args) == 0
    assert msg.stat().st_size <= 400
    back = tmp_path / "back.png"
    assert main(["receive", str(msg), "-o", str(back)]) == 0
    assert Image.open(back).size == (768, 512)
