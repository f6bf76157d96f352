"""The command line: round trips, and bad input -> one line on stderr, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from semcom.cli import main
from semcom.data.synthetic import CLASS_NAMES, SyntheticWorld
from semcom.imageio import save_image


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    world = SyntheticWorld(size=64)
    batch = world.generate(world.split_seeds("test", 1))
    path = tmp_path_factory.mktemp("img") / "sample.png"
    save_image(batch.images[0], path)
    return path, CLASS_NAMES[int(batch.labels[0])]


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_send_receive_round_trip(image_file, tmp_path, capsys, fmt) -> None:
    img, _ = image_file
    msg = tmp_path / "m.smc"
    assert main(["send", str(img), "--scheme", fmt, "--rate", "400", "-o", str(msg)]) == 0
    assert 0 < msg.stat().st_size <= 400
    out_png = tmp_path / "rebuilt.png"
    assert main(["receive", str(msg), "-o", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "class:" in out and out_png.is_file()
    assert main(["inspect", str(msg)]) == 0
    text = capsys.readouterr().out
    assert fmt in text and "CRC ok" in text


def test_receive_json_reports_a_known_class(image_file, tmp_path, capsys) -> None:
    import json

    img, label = image_file
    msg = tmp_path / "m.smc"
    assert main(["send", str(img), "--scheme", "raw", "--rate", "24", "-o", str(msg)]) == 0
    capsys.readouterr()
    assert main(["receive", str(msg), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # raw is lossless: the zoo classifier (97.5 % accurate) names this image's true class
    assert result["class"] == label == _zoo_class(img)
    assert result["bytes"] == msg.stat().st_size
    assert result["classifier"]["name"] == "shape-classifier"
    assert "synthetic" in result["classifier"]["trained on"]
    assert result["domain"]["in_domain"] is True


def _zoo_class(path) -> str:
    """What the zoo classifier says of an image file, computed here directly."""
    import torch

    from semcom.imageio import load_image
    from semcom.models.zoo import load_pretrained

    x = load_image(path)[None].float() / 255
    with torch.no_grad():
        return CLASS_NAMES[int(load_pretrained("shape-classifier").eval()(x).argmax())]


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda good: bytes(range(256)) * 3,  # random-looking bytes
        lambda good: good[: len(good) // 2],  # truncated
        lambda good: good[:40] + bytes([good[40] ^ 0x10]) + good[41:],  # one bit flipped
        lambda good: b"",
    ],
)
def test_corrupted_message_exit_2(image_file, tmp_path, capsys, make_bad) -> None:
    img, _ = image_file
    good = tmp_path / "good.smc"
    assert main(["send", str(img), "--rate", "500", "-o", str(good)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.smc"
    bad.write_bytes(make_bad(good.read_bytes()))
    for cmd in ("receive", "inspect"):
        assert main([cmd, str(bad)]) == 2
        assert _err_line(capsys).startswith("semcom: error:")


@pytest.mark.parametrize(
    "args",
    [
        ["send", "does-not-exist.png"],
        ["send", "{img}", "--scheme", "no-such-scheme"],
        ["send", "{img}", "--scheme", "jpeg", "--rate", "-5"],
        ["send", "{notimg}"],
        ["receive", "does-not-exist.smc"],
        ["bench", "--schemes", "nope"],
        ["bench", "--channels", "bsc:0.9"],
        ["send", "{img}", "--rate", "abc"],
    ],
)
def test_bad_input_exit_2(image_file, tmp_path, capsys, args) -> None:
    img, _ = image_file
    notimg = tmp_path / "notimg.png"
    notimg.write_text("hello")
    argv = [a.format(img=img, notimg=notimg) for a in args]
    assert main(argv) == 2
    assert _err_line(capsys).startswith("semcom: error:")


def test_console_script_exit_code(tmp_path) -> None:
    bad = tmp_path / "bad.smc"
    bad.write_bytes(b"\x00" * 64)
    proc = subprocess.run(
        [sys.executable, "-m", "semcom.cli", "receive", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_help_lists_every_command(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "send", "receive", "inspect", "train", "bench"):
        assert cmd in out


def test_patch_send_receive_round_trip_and_resize(image_file, tmp_path, capsys) -> None:
    """A patch message decodes through the receiver registered for its wire name; an
    image of another size is refused with one line, or resized with --resize."""
    import json

    img, label = image_file
    msg = tmp_path / "p.smc"
    spec = "patch-mean[pixels=q4]"
    assert main(["send", str(img), "--scheme", spec, "--rate", "0.5", "-o", str(msg)]) == 0
    capsys.readouterr()
    assert main(["receive", str(msg), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scheme"] == "patch" and result["image"] == "64x64"
    rebuilt = tmp_path / "rebuilt.png"
    assert main(["receive", str(msg), "-o", str(rebuilt)]) == 0
    assert result["class"] == _zoo_class(rebuilt)  # the judge saw the decoder's output

    from PIL import Image

    big = tmp_path / "big.png"
    Image.open(img).resize((100, 80)).save(big)
    assert main(["send", str(big), "--scheme", spec, "--rate", "0.25", "-o", str(msg)]) == 2
    line = _err_line(capsys)
    assert "3x80x100" in line and "--resize" in line
    args = ["send", str(big), "--scheme", spec, "--rate", "0.25", "-o", str(msg), "--resize"]
    assert main(args) == 0
    assert "image 64x64" in capsys.readouterr().out
    # decoding with a decoder checkpoint that does not exist: one line, exit 2
    bad = ["receive", str(msg), "--scheme", f"patch-mean[decoder={tmp_path / 'no.safetensors'}]"]
    assert main(bad) == 2
    assert "does not exist" in _err_line(capsys)


def test_report_rebuilds_from_results(tmp_path, capsys) -> None:
    """`semcom report` re-renders (and merges) earlier results; a bad path is one line."""
    import json

    first = tmp_path / "a"
    args = ["bench", "--schemes", "jpeg[rates=400/900],raw", "--channels", "ideal"]
    args += ["--n-images", "4", "--no-progress", "-o", str(first)]
    assert main(args) == 0
    capsys.readouterr()
    out = tmp_path / "merged"
    assert main(["report", str(first), str(first / "results.json"), "-o", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    records = json.loads((out / "results.json").read_text())
    records = records["records"] if isinstance(records, dict) else records
    assert len(records) == 3 and (out / "index.html").is_file()  # the same run, once
    assert {r["scheme"] for r in records} == {"jpeg", "raw"}
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in _err_line(capsys)
