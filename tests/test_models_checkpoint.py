"""Checkpoint save/load round trips and robustness against untrusted files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from semcom.errors import BitstreamError, InputError, SemcomError
from semcom.models import create_model, load_checkpoint, save_checkpoint

NC = 4
CFG = {"num_classes": NC, "widths": [8, 8, 16, 16]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    m = create_model("shape-classifier", **CFG)
    # Non-trivial BN statistics so the round trip checks buffers too.
    m.train()
    m(torch.rand(8, 3, 16, 16))
    path = tmp_path_factory.mktemp("ckpt") / "clf.safetensors"
    save_checkpoint(m, path, step=17, extra={"metrics": {"accuracy": 0.5}})
    return path, m.eval()


def test_roundtrip(ckpt: tuple[Path, torch.nn.Module]) -> None:
    path, ref = ckpt
    m, meta = load_checkpoint(path, expected_name="shape-classifier")
    assert meta.name == "shape-classifier" and meta.step == 17
    assert meta.config["widths"] == [8, 8, 16, 16] and meta.config["num_classes"] == NC
    assert json.loads(meta.extra["metrics"]) == {"accuracy": 0.5}
    assert not m.training
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(m(x), ref(x))


def test_half_files_load_as_float32_rounded_weights(
    ckpt: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path, ref = ckpt
    half = save_checkpoint(ref, tmp_path / "half.safetensors", step=17, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    m, meta = load_checkpoint(half, expected_name="shape-classifier")
    assert meta.step == 17 and meta.config == load_checkpoint(path)[1].config
    for k, v in ref.state_dict().items():
        got = m.state_dict()[k]
        assert got.dtype == v.dtype, k  # the model keeps its float32 parameters
        want = v.half().to(v.dtype) if v.is_floating_point() else v
        assert torch.equal(got, want), k  # ... holding the float16-rounded values
    assert any(not torch.equal(m.state_dict()[k], v) for k, v in ref.state_dict().items())
    # one digest for the half file and the model loaded from it (both ends must agree)
    from semcom.models.fingerprint import weights_sha256
    from semcom.models.tensor_files import load_state_dict_file

    assert weights_sha256(load_state_dict_file(half)[0]) == weights_sha256(m)
    assert weights_sha256(m) != weights_sha256(ref)


def test_expected_name_mismatch(ckpt: tuple[Path, torch.nn.Module]) -> None:
    with pytest.raises(BitstreamError, match="shape-segmenter"):
        load_checkpoint(ckpt[0], expected_name="shape-segmenter")


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(InputError):
        load_checkpoint(tmp_path)  # a directory


@pytest.mark.parametrize("cut", [0, 3, 8, 20, -1, -100])
def test_truncated_is_bitstream_error(
    ckpt: tuple[Path, torch.nn.Module], tmp_path: Path, cut: int
) -> None:
    data = ckpt[0].read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:cut])
    with pytest.raises(BitstreamError):
        load_checkpoint(bad)


def test_header_length_larger_than_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(BitstreamError, match="declares"):
        load_checkpoint(bad)


def _write_raw(path: Path, header: dict, body: bytes = b"") -> Path:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + body)
    return path


@pytest.mark.parametrize(
    "header",
    [
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 100]}},  # past the end
        {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},  # size mismatch
        {"a": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}},  # bad dtype
        {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},  # bad shape
        {"a": [1, 2]},
        {"__metadata__": {"model": 3}},
        [1, 2, 3],
    ],
)
def test_bad_headers(tmp_path: Path, header: object) -> None:
    with pytest.raises(BitstreamError):
        load_checkpoint(_write_raw(tmp_path / "h.safetensors", header, b"\0" * 8))  # type: ignore[arg-type]


def test_not_json_header(tmp_path: Path) -> None:
    p = tmp_path / "x.safetensors"
    p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}")
    with pytest.raises(BitstreamError, match="JSON"):
        load_checkpoint(p)


def _meta(**over: str) -> dict[str, str]:
    meta = {"format": "semcom-checkpoint", "model": "shape-classifier", "config": json.dumps(CFG)}
    meta.update(over)
    return meta


def test_wrong_keys_and_shapes(ckpt: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    sd = {k: v.clone() for k, v in ckpt[1].state_dict().items()}
    p = tmp_path / "k.safetensors"
    extra = dict(sd, **{"bogus.weight": torch.zeros(1)})
    p.write_bytes(st_save(extra, metadata=_meta()))
    with pytest.raises(BitstreamError, match="unexpected keys"):
        load_checkpoint(p)
    missing = {k: v for k, v in sd.items() if k != "head.fc.bias"}
    p.write_bytes(st_save(missing, metadata=_meta()))
    with pytest.raises(BitstreamError, match="missing keys"):
        load_checkpoint(p)
    wrong = dict(sd, **{"head.fc.weight": torch.zeros(NC + 1, 16)})
    p.write_bytes(st_save(wrong, metadata=_meta()))
    with pytest.raises(BitstreamError, match="shape"):
        load_checkpoint(p)
    nan = dict(sd, **{"head.fc.bias": torch.full((NC,), float("nan"))})
    p.write_bytes(st_save(nan, metadata=_meta()))
    with pytest.raises(BitstreamError, match="NaN"):
        load_checkpoint(p)


def test_bad_metadata(ckpt: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    sd = ckpt[1].state_dict()
    p = tmp_path / "m.safetensors"
    for meta in [
        _meta(model="no-such-model"),
        _meta(config="{not json"),
        _meta(config=json.dumps({**CFG, "bogus": 1})),
        _meta(config="[1]"),
        _meta(step="abc"),
        _meta(format="something-else"),
        {"config": json.dumps(CFG)},  # no model name
    ]:
        p.write_bytes(st_save(dict(sd), metadata=meta))
        with pytest.raises(BitstreamError):
            load_checkpoint(p)


def test_plain_state_dict_needs_expected_name(
    ckpt: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    p = tmp_path / "plain.safetensors"
    p.write_bytes(st_save(dict(ckpt[1].state_dict()), metadata={"config": json.dumps(CFG)}))
    with pytest.raises(BitstreamError):
        load_checkpoint(p)
    m, meta = load_checkpoint(p, expected_name="shape-classifier")
    assert meta.name == "shape-classifier"


def test_torch_pt_files(ckpt: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    sd = ckpt[1].state_dict()
    p = tmp_path / "w.pt"
    torch.save({"model": "shape-classifier", "config": CFG, "state_dict": sd}, p)
    m, meta = load_checkpoint(p)
    assert torch.equal(m.state_dict()["head.fc.weight"], sd["head.fc.weight"])
    torch.save(dict(sd), p)
    with pytest.raises(BitstreamError):
        load_checkpoint(p)  # no name: default config wouldn't fit either way
    # Pickled arbitrary objects are refused by weights_only loading.
    torch.save({"state_dict": sd, "evil": Path("/tmp")}, p)
    with pytest.raises(BitstreamError):
        load_checkpoint(p)
    p.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(BitstreamError):
        load_checkpoint(p)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_corruption_never_crashes(
    ckpt: tuple[Path, torch.nn.Module], tmp_path: Path, data
) -> None:
    raw = bytearray(ckpt[0].read_bytes())
    n_flips = data.draw(st.integers(1, 8))
    for _ in range(n_flips):
        # Bias damage towards the header, where parsing happens.
        pos = data.draw(st.integers(0, min(len(raw) - 1, 4000)))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    p = tmp_path / "fuzz.safetensors"
    p.write_bytes(bytes(raw[:cut]))
    try:
        load_checkpoint(p)
    except SemcomError:
        pass


def test_serialisation_is_byte_reproducible(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from semcom.models.checkpoint import serialize_safetensors

    tensors = {
        "b": torch.arange(6, dtype=torch.float32).view(2, 3),
        "a": torch.tensor([True, False]),
        "c": torch.tensor(3, dtype=torch.int64),
        "d": torch.ones(2, dtype=torch.bfloat16),
        "e": torch.zeros(0, 4),
    }
    meta = {"z": "1", "model": "m", "a": "x"}
    one = serialize_safetensors(tensors, meta)
    two = serialize_safetensors(
        dict(reversed(list(tensors.items()))), dict(reversed(list(meta.items())))
    )
    assert one == two and (struct.unpack("<Q", one[:8])[0] % 8) == 0
    p = tmp_path / "t.safetensors"
    p.write_bytes(one)
    back = load_file(p)  # the reference reader accepts it
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


def test_checkpoint_files_are_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(1)
    m = create_model("shape-segmenter", num_classes=NC, widths=[8, 8, 8, 8])
    a = save_checkpoint(m, tmp_path / "a.safetensors", step=3, extra={"k": "v", "a": "b"})
    b = save_checkpoint(m, tmp_path / "b.safetensors", step=3, extra={"a": "b", "k": "v"})
    assert a.read_bytes() == b.read_bytes()
    assert oct(a.stat().st_mode & 0o777) == oct(0o644)
