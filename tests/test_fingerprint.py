"""Messages name the model weights their receiver needs (field ``fp``)."""

from __future__ import annotations

import pytest
import torch

from semcom.cli import main
from semcom.codec.container import unpack
from semcom.codec.inspect import inspect_bytes
from semcom.data.synthetic import SyntheticWorld
from semcom.imageio import save_image
from semcom.models import create_model, save_checkpoint
from semcom.models.checkpoint import load_state_dict_file
from semcom.models.fingerprint import (
    FINGERPRINT_BYTES,
    ModelMismatchError,
    spec_fingerprint,
    weights_sha256,
    zoo_name_of,
)
from semcom.models.zoo import list_zoo, load_pretrained, zoo_entry, zoo_path
from semcom.schemes import create_scheme

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image():
    return SyntheticWorld().generate([7]).images[0]


@pytest.fixture(scope="module")
def other_decoder(tmp_path_factory):
    torch.manual_seed(1)
    model = create_model("patch-decoder", **zoo_entry("patch-decoder-synth")["config"])
    path = tmp_path_factory.mktemp("dec") / "other-decoder.safetensors"
    save_checkpoint(model, path)
    return path


@pytest.mark.parametrize("name", list_zoo())
def test_zoo_records_the_weights_digest(name):
    sd, _ = load_state_dict_file(zoo_path(name))
    digest = zoo_entry(name)["weights_sha256"]
    assert weights_sha256(sd) == digest == weights_sha256(load_pretrained(name))
    assert zoo_name_of(bytes.fromhex(digest)[:FINGERPRINT_BYTES]) == name


def test_digest_ignores_file_metadata_but_not_weights(tmp_path):
    model = load_pretrained("shape-classifier")
    a = save_checkpoint(model, tmp_path / "a.safetensors", step=5, extra={"note": "x"})
    assert spec_fingerprint(a) == zoo_entry("shape-classifier")["weights_sha256"]
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert weights_sha256(model) != zoo_entry("shape-classifier")["weights_sha256"]


def test_patch_message_names_its_decoder_and_other_weights_refuse(image, other_decoder):
    sender = create_scheme("patch-mean")
    msg = sender.compress(image, 0.25)
    fp = unpack(msg).fields["fp"]
    assert fp == bytes.fromhex(zoo_entry("patch-decoder-synth")["weights_sha256"])[:4]
    assert create_scheme("patch-random").decompress(msg)["x_hat"].shape == (3, 64, 64)
    other = create_scheme(f"patch-mean[decoder={other_decoder}]")
    with pytest.raises(ModelMismatchError) as info:
        other.decompress(msg)
    text = str(info.value)
    assert fp.hex() in text and "patch-decoder-synth" in text and "other-decoder" in text
    assert "\n" not in text
    forced = create_scheme(f"patch-mean[decoder={other_decoder},check_models=false]")
    assert forced.decompress(msg)["x_hat"].shape == (3, 64, 64)
    # and the other way round: a message made for the other decoder, zoo receiver refuses
    msg2 = other.compress(image, 0.25)
    with pytest.raises(ModelMismatchError, match="zoo: patch-decoder-synth"):
        sender.decompress(msg2)


def test_inspect_and_receive_show_the_fingerprint(image, other_decoder, tmp_path, capsys):
    png, smc = tmp_path / "img.png", tmp_path / "m.smc"
    save_image(image, png)
    assert main(["send", str(png), "--scheme", "patch-mean", "--rate", "0.25", "-o", str(smc)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(smc)]) == 0
    assert "zoo: patch-decoder-synth" in capsys.readouterr().out
    spec = f"patch-mean[decoder={other_decoder}]"
    assert main(["receive", str(smc), "--scheme", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "patch-decoder-synth" in err[0] and "other-decoder" in err[0]


def test_inspect_a_damaged_message_prints_what_is_readable(image, tmp_path, capsys):
    data = bytearray(create_scheme("patch-mean").compress(image, 0.5))
    head = unpack(bytes(data)).layout.header_size
    hdr = bytearray(data)
    hdr[head - 6] ^= 0x01  # inside the header, before its CRC
    text, problem = inspect_bytes(bytes(hdr))
    assert "header NOT intact" in text and "scheme:   patch" in text and "CRC32" in problem
    body = bytearray(data)
    body[-3] ^= 0x10
    text, problem = inspect_bytes(bytes(body))
    assert "DAMAGED (crc mismatch)" in text and "crc mismatch at byte" in problem
    path = tmp_path / "bad.smc"
    path.write_bytes(bytes(body))
    assert main(["inspect", str(path)]) == 2
    out = capsys.readouterr()
    assert "fields:" in out.out and out.err.count("\n") == 1


def test_fingerprint_does_not_depend_on_load_order(other_decoder):
    a = create_scheme(f"patch-mean[decoder={other_decoder}]")
    before = a.decoder_fingerprint()
    b = create_scheme(f"patch-mean[decoder={other_decoder}]")
    assert b.decoder is not None  # loaded first
    assert b.decoder_fingerprint() == before
