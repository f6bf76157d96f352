"""Hostile checkpoints: a config that disagrees with the file's own (small) tensors.

Each model kind a CLI checkpoint option loads gets a small valid checkpoint and hostile
copies whose metadata config asks for a huge model (``embed_dim=65536``, ``widths`` of
65536 channels, ``depth=10000``) while the tensors stay the original small ones. The
loader must refuse them with one ``BitstreamError`` line naming the mismatch, before it
allocates the model (checked as the peak RSS of a subprocess), and every CLI option must
answer with one error line and exit code 2, no traceback.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semcom.errors import BitstreamError
from semcom.models import create_model, load_checkpoint, save_checkpoint
from semcom.models.checkpoint import (
    MAX_MODEL_BYTES,
    read_safetensors,
    serialize_safetensors,
    state_dict_into,
)

pytestmark = pytest.mark.usefixtures("one_thread")

#: Small valid models, one per kind a CLI option loads (ViT, decoder, classifier,
#: segmenter), and the config change that makes each hostile (the ViT's embed_dim stays
#: divisible by its num_heads, 2, so that the config passes the ViT's own validation).
KINDS: dict[str, tuple[str, dict, dict]] = {
    "vit": (
        "vit-edge-synth",
        dict(embed_dim=24, depth=1, num_heads=2, num_classes=12),
        dict(embed_dim=65536),
    ),
    "decoder": (
        "patch-decoder",
        dict(widths=[4, 4, 8], bottleneck_dilations=[1]),
        dict(widths=[65536, 65536, 65536]),
    ),
    "classifier": (
        "shape-classifier",
        dict(widths=[4, 4, 8, 8], num_classes=12),
        dict(widths=[65536, 65536, 65536, 65536]),
    ),
    "segmenter": (
        "shape-segmenter",
        dict(widths=[4, 4, 8, 8], num_classes=12),
        dict(widths=[65536, 65536, 65536, 65536]),
    ),
}
#: Further hostile configs of the ViT: many blocks, and a size whose allocation succeeds
#: (the old loader reached 3.7 GB of RSS on embed_dim=4096 of the zoo's ViT file).
EXTRA = {"vit-depth": ("vit", dict(depth=10000)), "vit-4096": ("vit", dict(embed_dim=4096))}
MAX_RSS_MB = 600

#: Runs ``argv[2:]`` in a child *forked* from this small interpreter and writes the
#: child's own peak RSS (``ru_maxrss`` of ``wait4``, KiB) to the file ``argv[1]``.
#: A child that pytest starts directly cannot measure itself: CPython starts children
#: with ``vfork``, and on Linux ``exec`` folds the high-water RSS of the memory it
#: replaces, the *parent's* (or, after ``fork``, a copy of the parent's pages), into the
#: child's ``ru_maxrss``. Both the child's ``RUSAGE_SELF`` and the parent's ``wait4``
#: then report at least pytest's own peak (over 700 MB once earlier tests ran), not
#: what the child did. Forked from here, that floor is this launcher's ~10 MB.
_LAUNCH = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _run_measured(
    argv: list[str], tmp_path: Path, **kw: object
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``subprocess.run(argv)`` and the peak RSS (MB) of that process (and its children)."""
    out = tmp_path / "maxrss"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    res = subprocess.run(
        [sys.executable, "-c", _LAUNCH, str(out), *argv],
        text=True, env=env, timeout=120, **kw,
    )  # fmt: skip
    return res, int(out.read_text()) // 1024


def test_peak_measurement_is_the_childs_own(tmp_path: Path) -> None:
    """The measurement sees a child's allocation, and not pytest's peak (>= torch's)."""
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 > 150
    _, bare = _run_measured([sys.executable, "-c", "pass"], tmp_path)
    assert bare < 100, bare
    code = "b = bytearray(300 * 2**20)"
    _, big = _run_measured([sys.executable, "-S", "-c", code], tmp_path)
    assert 300 <= big < 400, big


def _rewrite(src: Path, dst: Path, **over: object) -> Path:
    """Copy of checkpoint ``src`` with its metadata config updated by ``over``."""
    tensors, meta = read_safetensors(src.read_bytes())
    cfg = json.loads(meta["config"])
    cfg.update(over)
    meta["config"] = json.dumps(cfg, sort_keys=True)
    dst.write_bytes(serialize_safetensors(tensors, meta))
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{kind: valid file, kind + "-hostile": hostile copy, ...}``."""
    d = tmp_path_factory.mktemp("hostile")
    out: dict[str, Path] = {}
    torch.manual_seed(0)
    for kind, (name, cfg, _) in KINDS.items():
        out[kind] = save_checkpoint(create_model(name, **cfg), d / f"{kind}.safetensors")
    for kind, (_, _, bad) in KINDS.items():
        out[f"{kind}-hostile"] = _rewrite(out[kind], d / f"{kind}-hostile.safetensors", **bad)
    for key, (kind, bad) in EXTRA.items():
        out[key] = _rewrite(out[kind], d / f"{key}.safetensors", **bad)
    # The same hostile config in a torch (.pt) file.
    name, cfg, bad = KINDS["vit"]
    sd = create_model(name, **cfg).state_dict()
    torch.save({"model": name, "config": {**cfg, **bad}, "state_dict": sd}, d / "vit-hostile.pt")
    out["vit-hostile-pt"] = d / "vit-hostile.pt"
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_valid_small_checkpoints_load(files: dict[str, Path], kind: str) -> None:
    name, cfg, _ = KINDS[kind]
    model, meta = load_checkpoint(files[kind])
    assert meta.name == name and not model.training
    tensors, _ = read_safetensors(files[kind].read_bytes())
    for k, v in model.state_dict().items():
        assert torch.equal(v, tensors[k]), k


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("vit-hostile", "config embed_dim=65536 implies tensor 'cls_token' of shape (1, 1, 65536), "
         "the file has (1, 1, 24)"),
        ("decoder-hostile", "config widths=[65536,65536,65536] implies tensor"),
        ("classifier-hostile", "config widths=[65536,65536,65536,65536] implies tensor"),
        ("segmenter-hostile", "config widths=[65536,65536,65536,65536] implies tensor"),
        ("vit-depth", '"depth":10000'),
        ("vit-4096", "config embed_dim=4096 implies tensor"),
        ("vit-hostile-pt", "config embed_dim=65536 implies tensor 'cls_token'"),
    ],
)  # fmt: skip
def test_hostile_config_is_one_line_bitstream_error(
    files: dict[str, Path], key: str, needle: str
) -> None:
    with pytest.raises(BitstreamError) as info:
        load_checkpoint(files[key])
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 600, msg
    assert msg.startswith(str(files[key])) and needle in msg, msg
    if key == "vit-depth":
        assert "implies more than" in msg and "the file has" in msg, msg


def test_bounds_before_building(tmp_path: Path, files: dict[str, Path]) -> None:
    """Config values, constructor exceptions and the size budget, each one line."""
    vit = files["vit"]
    cases = {
        "int": (dict(depth=10**9), "out of range"),
        "nan": (dict(mlp_ratio=float("nan")), "not finite"),
        "overflow": (dict(mlp_ratio=1e300), 'cannot build model "vit-edge-synth".*Overflow'),
        "pretrained": (dict(pretrained=True), "pretrained"),
        "type": (dict(embed_dim="24"), "embed_dim"),
        "nested": (dict(num_classes=json.loads("[" * 40 + "]" * 40)), "deeper"),
    }
    for label, (over, needle) in cases.items():
        p = _rewrite(vit, tmp_path / f"{label}.safetensors", **over)
        with pytest.raises(BitstreamError, match=needle) as info:
            load_checkpoint(p)
        assert "\n" not in str(info.value)


class _Odd(torch.nn.Module):
    """A test-only model whose constructor misbehaves as its config says."""

    def __init__(self, mode: str = "ok", n: int = 1) -> None:
        super().__init__()
        self.config = {"mode": mode, "n": n}
        self.w = torch.nn.Parameter(torch.zeros(n))
        if mode == "zerodiv":
            n // 0
        elif mode == "assert":
            raise AssertionError("bad")
        elif mode == "memory":
            raise MemoryError()
        elif mode == "real":  # an explicit CPU allocation, not a meta one
            self.register_buffer("big", torch.zeros(n, 1024, device="cpu"))
        elif mode == "grow":  # a large result computed from a small real tensor
            self.register_buffer("big", torch.ones(1024).repeat(n))
        elif mode == "modules":
            self.many = torch.nn.ModuleList(torch.nn.ReLU() for _ in range(n))


@pytest.mark.parametrize(
    ("mode", "n", "needle"),
    [
        ("zerodiv", 1, "ZeroDivisionError"),
        ("assert", 1, "AssertionError: bad"),
        ("memory", 1, "MemoryError"),
        ("real", 20_000, "allocates more than"),
        ("grow", 20_000, "allocates more than"),
        ("modules", 100_000, "submodules"),
    ],
)
def test_constructor_misbehaviour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, n: int, needle: str
) -> None:
    from semcom.models import registry

    monkeypatch.setitem(registry._REGISTRY, "odd-test-model", _Odd)
    meta = {"format": "semcom-checkpoint", "model": "odd-test-model"}
    meta["config"] = json.dumps({"mode": mode, "n": n})
    p = tmp_path / "odd.safetensors"
    p.write_bytes(serialize_safetensors({"w": torch.zeros(n)}, meta))
    with pytest.raises(BitstreamError, match=needle) as info:
        load_checkpoint(p)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(p))
    meta["config"] = json.dumps({"mode": "ok", "n": 3})
    p.write_bytes(serialize_safetensors({"w": torch.ones(3)}, meta))
    model, _ = load_checkpoint(p)
    assert torch.equal(model.w, torch.ones(3))


def test_model_budget(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes a config implies are bounded by a multiple of the file's size."""
    import semcom.models.build_guard as build_guard
    import semcom.models.checkpoint as ck

    assert MAX_MODEL_BYTES >= 400 * 2**20  # fits vit-base-patch16-224 (346 MB)
    assert ck.model_budget(10**9) == MAX_MODEL_BYTES
    size = files["vit"].stat().st_size
    assert ck.model_budget(size) == ck.MODEL_BYTES_PER_FILE_BYTE * size + ck.MODEL_BYTES_SLACK
    monkeypatch.setattr(ck, "MODEL_BYTES_SLACK", 0)
    monkeypatch.setattr(ck, "MODEL_BYTES_PER_FILE_BYTE", 0)
    monkeypatch.setattr(build_guard, "_SMALL_NUMEL", -1)  # every tensor on meta while building
    with pytest.raises(BitstreamError, match="bytes of parameters and buffers, more than"):
        ck.load_checkpoint(files["vit"])
    monkeypatch.setattr(build_guard, "_SMALL_NUMEL", 4096)  # small tensors are real: counted
    with pytest.raises(BitstreamError, match="allocates more than 0 bytes"):
        ck.load_checkpoint(files["vit"])


def test_data_section_must_be_covered(tmp_path: Path) -> None:
    raw = serialize_safetensors({"a": torch.zeros(2), "b": torch.ones(2)}, {})
    p = tmp_path / "gap.safetensors"
    p.write_bytes(raw + b"\0" * 8)  # trailing bytes no tensor covers
    with pytest.raises(BitstreamError, match="cover"):
        load_checkpoint(p, expected_name="shape-classifier")


def test_tensor_data_is_bounded_before_reading(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import semcom.models.tensor_files as tf

    monkeypatch.setattr(tf, "MAX_MODEL_BYTES", 100)
    with pytest.raises(BitstreamError, match="bytes of tensor data exceed the limit of 100"):
        load_checkpoint(files["vit"])
    monkeypatch.setattr(tf, "MAX_HEADER_BYTES", 100)
    with pytest.raises(BitstreamError, match="zip records declare"):
        load_checkpoint(files["vit-hostile-pt"])


def test_plain_state_dict_checks(files: dict[str, Path]) -> None:
    from semcom.models.checkpoint import load_state_dict_file

    name, cfg, _ = KINDS["vit"]
    model = create_model(name, **cfg)
    sd, _ = load_state_dict_file(files["vit"], like=model)
    state_dict_into(model, sd)
    other = create_model(name, **{**cfg, "embed_dim": 32})
    with pytest.raises(BitstreamError, match="has shape"):
        load_state_dict_file(files["vit"], like=other)
    with pytest.raises(BitstreamError, match="has shape"):
        state_dict_into(other, sd)


def test_legacy_torch_format_refused(tmp_path: Path) -> None:
    p = tmp_path / "legacy.pt"
    torch.save({"a": torch.zeros(2)}, p, _use_new_zipfile_serialization=False)
    with pytest.raises(BitstreamError, match="zip"):
        load_checkpoint(p, expected_name="shape-classifier")


def test_peak_memory_of_hostile_loads(files: dict[str, Path], tmp_path: Path) -> None:
    """Load every hostile file in one fresh interpreter; its peak RSS stays small."""
    hostile = [str(p) for k, p in files.items() if k not in KINDS]
    code = (
        "import sys\n"
        "from semcom.errors import BitstreamError\n"
        "from semcom.models.checkpoint import load_checkpoint\n"
        "for f in sys.argv[1:]:\n"
        "    try:\n"
        "        load_checkpoint(f)\n"
        "    except BitstreamError:\n"
        "        continue\n"
        "    raise SystemExit(f'{f} loaded')\n"
    )
    res, peak = _run_measured([sys.executable, "-c", code, *hostile], tmp_path, capture_output=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert peak < MAX_RSS_MB, peak


# ------------------------------------------------------------------------- the CLIs


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from semcom.imageio import save_image

    p = tmp_path_factory.mktemp("img") / "x.png"
    g = torch.Generator().manual_seed(0)
    save_image(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g), p)
    return p


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from semcom.cli import main

    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def _one_error_line(err: str, prefix: str = "semcom: error: ") -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), err[-2000:]
    assert "Traceback" not in err
    return lines[0]


def _assert_refused(code: int, err: str, bad: str) -> None:
    """Exit status 2 and one error line naming the hostile file and what its config implies."""
    assert code == 2
    line = _one_error_line(err)
    assert bad in line and "implies" in line, line


Files = dict[str, Path]
Capsys = pytest.CaptureFixture[str]


def test_cli_subprocess_peak_memory(files: dict[str, Path], image: Path, tmp_path: Path) -> None:
    """The real console entry on the embed_dim=4096 file: exit 2, one line, small RSS."""
    bad = files["vit-4096"]
    argv = [sys.executable, "-m", "semcom.cli", "send", str(image), "--scheme"]
    argv += [f"patch-mean[vit={bad}]", "-o", str(tmp_path / "m.smc")]
    proc, peak = _run_measured(argv, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = proc.stderr
    assert proc.returncode == 2, text[-2000:]
    assert str(bad) in _one_error_line(text) and "embed_dim=4096" in text
    assert peak < MAX_RSS_MB, peak


@pytest.mark.parametrize(
    ("option", "kind"),
    [
        ("--classifier", "classifier"),
        ("--segmenter", "segmenter"),
        ("--ft-classifier", "classifier"),
        ("vit", "vit"),
        ("decoder", "decoder"),
    ],
)
def test_cli_bench(files: Files, tmp_path: Path, capsys: Capsys, option: str, kind: str) -> None:
    bad = str(files[f"{kind}-hostile"])
    argv = ["bench", "--n-images", "2", "--channels", "ideal", "--no-progress"]
    argv += ["--out", str(tmp_path / "r")]
    if option.startswith("--"):
        argv += ["--schemes", "raw", option, bad]
    else:
        argv += ["--schemes", f"patch-mean[{option}={bad}]"]
    _assert_refused(*_cli(argv, capsys), bad)


@pytest.mark.parametrize("option", ["vit", "decoder"])
def test_cli_send_receive(
    files: dict[str, Path],
    image: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
) -> None:
    bad = str(files[f"{option}-hostile"])
    msg = tmp_path / "m.smc"
    spec = f"patch-mean[{option}={bad}]"
    code, err = _cli(
        ["send", str(image), "--scheme", spec, "--rate", "0.5", "-o", str(msg)], capsys
    )
    if option == "vit":  # the sender runs the ViT
        assert code == 2 and bad in _one_error_line(err)
        code, err = _cli(["send", str(image), "--scheme", "patch-mean", "-o", str(msg)], capsys)
    # The sender only fingerprints the decoder's tensors (the small, valid ones).
    assert code == 0, err
    code, err = _cli(["receive", str(msg), "--scheme", f"patch-mean[{option}={bad}]"], capsys)
    _assert_refused(code, err, bad)


@pytest.mark.parametrize(
    ("recipe", "option", "kind"),
    [
        ("patch-decoder-synth", "--vit", "vit"),
        ("shape-classifier-ft", "--classifier", "classifier"),
        ("shape-classifier-ft", "--decoder", "decoder"),
    ],
)
@pytest.mark.parametrize("entry", ["semcom train", "python -m semcom.train"])
def test_cli_train(
    files: Files, tmp_path: Path, capsys: Capsys, entry: str, recipe: str, option: str, kind: str
) -> None:
    bad = str(files[f"{kind}-hostile"])
    argv = ["--model", recipe, option, bad, "--steps", "1", "--batch-size", "2"]
    argv += ["--eval-n", "0", "--quiet", "--threads", "1", "--out", str(tmp_path / "t")]
    if entry == "semcom train":
        code, err = _cli(["train", *argv], capsys)
    else:
        from semcom.train import main as train_main

        capsys.readouterr()
        code, err = train_main(argv), capsys.readouterr().err
    _assert_refused(code, err, bad)
