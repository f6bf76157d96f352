"""The scheme / session / judge contract end to end with toy schemes registered from here.

Four shapes that today's schemes do not have: a receiver that classifies by itself
(logits only), one that segments by itself, a sender that keeps every image (zero
messages, its own answer), and a progressive sender (three messages, the receiver may be
satisfied after two). Each goes through the sweep, a channel and the report, and is
scored by what it produced.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semcom.codec.container import Message, pack, register_scheme_id, unpack
from semcom.data.synthetic import NUM_CLASSES
from semcom.experiments.sweep import SweepConfig, run_sweep, synthetic_evalset
from semcom.judges import formula_judges
from semcom.metrics import SegmentationMeter
from semcom.schemes import register_scheme
from semcom.schemes.base import Scheme
from semcom.schemes.session import Decoded, Receiver, Transmission

N = 16
for _i, _name in enumerate(("toy-logits", "toy-seg", "toy-three")):
    register_scheme_id(_name, 0xF100 + _i)  # wire ids of the toys' containers


def guess(image: torch.Tensor) -> int:
    """The toy classifiers' answer: the mean pixel value, modulo the number of classes."""
    return int(image.float().mean()) % NUM_CLASSES


def toy_accuracy(evalset) -> float:
    """Accuracy of :func:`guess` on ``evalset``, computed here."""
    pairs = zip(evalset.images, evalset.labels, strict=True)
    return sum(guess(x) == int(y) for x, y in pairs) / len(evalset.labels)


def one_hot(c: int) -> torch.Tensor:
    out = torch.zeros(NUM_CLASSES)
    out[c] = 1.0
    return out


def foreground(image: torch.Tensor) -> torch.Tensor:
    """The toy segmenter's answer: class 1 where the red channel is above 128, else 0."""
    return (image[0] > 128).long()


class _Toy(Scheme):
    role = "proposed"
    family = "toy"
    rate_unit = "setting"
    default_rates = (1.0,)


@register_scheme("toy-logits")
class ToyLogits(_Toy):
    """Sends the class the transmitter sees; the receiver answers with logits only."""

    name = "toy-logits"
    outputs = ("logits",)

    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        return pack(Message(scheme=self.name, fields={"c": guess(image)}, sections={}))

    def decompress(self, data: bytes, *, erasures=()) -> Decoded:
        msg = unpack(data, erasures=erasures)
        msg.expect_scheme(self.name)
        return Decoded(logits=one_hot(msg.int_field("c", 0, NUM_CLASSES - 1)))


@register_scheme("toy-seg")
class ToySegmentation(_Toy):
    """Sends a 1-bit mask; the receiver answers with per-pixel class scores only."""

    name = "toy-seg"
    outputs = ("segmentation",)

    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        h, w = image.shape[1:]
        bits = np.packbits(foreground(image).numpy().astype(np.uint8)).tobytes()
        return pack(Message(scheme=self.name, fields={"h": h, "w": w}, sections={"m": bits}))

    def decompress(self, data: bytes, *, erasures=()) -> Decoded:
        msg = unpack(data, erasures=erasures)
        h, w = msg.image_size()
        bits = np.unpackbits(np.frombuffer(msg.section("m"), np.uint8))[: h * w]
        fg = torch.from_numpy(bits.reshape(h, w).astype(np.int64))
        scores = torch.zeros(NUM_CLASSES + 1, h, w)
        scores.scatter_(0, fg[None], 1.0)
        return Decoded(segmentation=scores)


@register_scheme("toy-keep")
class ToyKeep(_Toy):
    """The sender keeps every image and answers itself: zero messages."""

    name = "toy-keep"
    outputs = ("logits",)

    def transmit(self, image: torch.Tensor, rate: float) -> Transmission:
        return Transmission([], local=Decoded(logits=one_hot(guess(image))))


@register_scheme("toy-edge")
class ToyEdge(ToyLogits):
    """Sends its class, and keeps the same answer itself in case the message is lost."""

    name = "toy-edge"

    def transmit(self, image: torch.Tensor, rate: float) -> Transmission:
        msg = pack(Message(scheme="toy-logits", fields={"c": guess(image)}, sections={}))
        return Transmission([msg], local=Decoded(logits=one_hot(guess(image))))

    def decompress(self, data: bytes, *, erasures=()) -> Decoded:
        return ToyLogits.decompress(ToyLogits(), data, erasures=erasures)


class _ProgressiveReceiver(Receiver):
    def receive(self, data: bytes, erasures=()) -> Decoded:
        msg = unpack(data, erasures=erasures)
        h, w, f = msg.int_field("h", 1, 64), msg.int_field("w", 1, 64), msg.int_field("f", 1, 4)
        sh, sw = h // f, w // f
        px = msg.section("px", min_size=3 * sh * sw, max_size=3 * sh * sw)
        small = torch.frombuffer(bytearray(px), dtype=torch.uint8).view(3, sh, sw)
        x = small.repeat_interleave(f, 1).repeat_interleave(f, 2)
        # satisfied after the second message when the picture is bright enough
        return self.accept(Decoded(x_hat=x, satisfied=f == 2 and float(x.float().mean()) > 110))


@register_scheme("toy-three")
class ToyThree(_Toy):
    """Three messages: the image at 1/4, 1/2 and full resolution."""

    name = "toy-three"
    outputs = ("x_hat",)

    def transmit(self, image: torch.Tensor, rate: float) -> Transmission:
        h, w = image.shape[1:]
        out = []
        for f in (4, 2, 1):
            small = image[:, ::f, ::f].contiguous()
            fields = {"h": h, "w": w, "f": f}
            out.append(pack(Message(self.name, fields, {"px": small.numpy().tobytes()})))
        return Transmission(out)

    def open_receiver(self) -> Receiver:
        return _ProgressiveReceiver()


@pytest.fixture(scope="module")
def evalset():
    return synthetic_evalset(N)


def sweep(evalset, schemes, channels=("ideal",), judges=None):
    cfg = SweepConfig(schemes=schemes, channels=list(channels), batch_size=8)
    recs = run_sweep(cfg, evalset, judges if judges is not None else [], progress=False)
    return {(r.scheme, r.channel_config["type"]): r for r in recs}


def test_logits_only_receiver_is_scored_on_its_own_answer(evalset) -> None:
    recs = sweep(evalset, ["toy-logits"], ["ideal", "bsc:0.2"])
    expected = (
        sum(guess(x) == int(y) for x, y in zip(evalset.images, evalset.labels, strict=True)) / N
    )
    ideal = recs[("toy-logits", "ideal")]
    assert ideal.failure_rate == 0.0
    assert ideal.metrics == {"accuracy": pytest.approx(expected)}
    assert ideal.judges == {"accuracy": "receiver"}
    assert 0 < expected < 1  # the toy is neither always right nor always wrong here
    noisy = recs[("toy-logits", "bsc")]  # every message damaged: all wrong, none dropped
    assert noisy.failure_rate == 1.0 and noisy.metrics["accuracy"] == 0.0


def test_segmentation_only_receiver_gets_miou(evalset) -> None:
    (rec,) = sweep(evalset, ["toy-seg"]).values()
    meter = SegmentationMeter(num_classes=NUM_CLASSES + 1)
    for img, mask in zip(evalset.images, evalset.masks, strict=True):
        meter.update(foreground(img)[None], mask[None])
    want = meter.compute()
    assert rec.failure_rate == 0.0
    assert rec.metrics["miou"] == pytest.approx(float(want["miou"]))
    assert rec.metrics["pixel_accuracy"] == pytest.approx(float(want["pixel_accuracy"]))
    assert set(rec.metrics) == {"miou", "pixel_accuracy"}


def test_zero_message_sessions_cost_nothing_and_keep_the_senders_answer(evalset) -> None:
    recs = sweep(evalset, ["toy-keep"], ["ideal", "bsc:0.2"])
    expected = (
        sum(guess(x) == int(y) for x, y in zip(evalset.images, evalset.labels, strict=True)) / N
    )
    for rec in recs.values():  # no message, so no channel can hurt it
        assert rec.mean_bytes == 0 and rec.mean_channel_bytes == 0 and rec.bpp == 0
        assert rec.metrics["accuracy"] == pytest.approx(expected)
        assert rec.failure_rate == 0.0
        assert rec.messages["mean"] == 0 and rec.messages["sessions_per_step"] == []


def test_the_senders_own_answer_stands_when_its_message_is_lost(evalset) -> None:
    recs = sweep(evalset, ["toy-edge"], ["ideal", "bsc:0.2"])
    for rec in recs.values():
        assert rec.metrics["accuracy"] == pytest.approx(toy_accuracy(evalset))
        assert rec.failure_rate == 0.0 and rec.mean_bytes > 0


def test_three_message_sessions_stop_when_satisfied(evalset) -> None:
    judges = formula_judges()
    recs = sweep(evalset, ["toy-three"], ["ideal", "erasure:0.3:64"], judges)
    rec = recs[("toy-three", "ideal")]
    h, w = evalset.images.shape[-2:]
    sizes = [len(m) for m in ToyThree().transmit(evalset.images[0], 1.0).messages]
    assert sizes[0] < sizes[1] < sizes[2]
    steps = rec.messages["sessions_per_step"]
    assert steps[0] == steps[1] == N and 0 < steps[2] < N  # some stopped after two
    stopped = N - steps[2]
    assert rec.messages["mean"] == pytest.approx((2 * stopped + 3 * steps[2]) / N)
    assert rec.mean_bytes == pytest.approx((N * (sizes[0] + sizes[1]) + steps[2] * sizes[2]) / N)
    assert rec.messages["bytes_per_step"] == pytest.approx(sizes)
    assert rec.failure_rate == 0.0 and 20 < rec.metrics["psnr"] < 100
    lossy = recs[("toy-three", "erasure")]  # channels apply per message
    assert lossy.mean_channel_bytes > 0 and lossy.failure_rate > 0


def test_toys_and_codecs_in_one_report(evalset, tmp_path) -> None:
    from semcom.experiments.report import load_results, write_report

    judges = formula_judges()
    cfg = SweepConfig(
        schemes=["jpeg", "toy-three", "toy-keep", "toy-logits"],
        channels=["ideal"],
        rates={"jpeg": [400, 800, 1600]},
    )
    records = run_sweep(cfg, evalset, judges, progress=False)
    roles = {r.scheme: (r.role, r.family) for r in records}
    assert roles["jpeg"] == ("baseline", "classical-codec")
    assert roles["toy-three"] == ("proposed", "toy")
    index = write_report(records, tmp_path / "r", screenshot=False)
    html = index.read_text()
    for name in ("toy-three", "toy-keep", "toy-logits"):
        assert name in html
    back = {r.scheme: r for r in load_results(tmp_path / "r")}
    sent = {r.scheme: r for r in records}
    assert back["toy-three"].messages == sent["toy-three"].messages
    assert back["toy-keep"].messages["mean"] == 0
    json.dumps([r.to_dict() for r in records])


def test_command_line_sends_and_receives_sessions(evalset, tmp_path, capsys) -> None:
    from semcom.cli import main
    from semcom.imageio import save_image

    save_image(evalset.images[0], tmp_path / "image.png")
    out = tmp_path / "m.smc"
    assert main(["send", str(tmp_path / "image.png"), "--scheme", "toy-three", "-o", str(out)]) == 0
    files = [tmp_path / f"m.{k}.smc" for k in range(3)]
    assert all(f.is_file() for f in files) and not out.exists()
    assert "3 messages" in capsys.readouterr().out
    assert main(["receive", *map(str, files), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["messages"] == 3 and got["image"] == "64x64"
    assert got["bytes"] == sum(f.stat().st_size for f in files)
    rebuilt = tmp_path / "r.png"
    assert main(["receive", str(files[0]), "-o", str(rebuilt)]) == 0  # the coarse step alone
    assert rebuilt.is_file()
    capsys.readouterr()
    assert main(["send", str(tmp_path / "image.png"), "--scheme", "toy-keep", "-o", str(out)]) == 0
    assert "no message (the sender kept the image)" in capsys.readouterr().out
    assert not out.exists()


def test_segmentation_is_scored_when_every_session_fails(evalset) -> None:
    """All-background fallbacks over a channel that breaks every message: a number, not a
    crash (the class count comes from the masks too)."""
    recs = sweep(evalset, ["toy-seg"], ["bsc:0.2"])
    (rec,) = recs.values()
    assert rec.failure_rate == 1.0 and 0 <= rec.metrics["miou"] < 0.5


def test_receive_keeps_a_session_going_past_a_bad_message(evalset, tmp_path, capsys) -> None:
    from semcom.cli import main
    from semcom.imageio import save_image

    save_image(evalset.images[0], tmp_path / "image.png")
    assert (
        main(
            [
                "send",
                str(tmp_path / "image.png"),
                "--scheme",
                "toy-three",
                "-o",
                str(tmp_path / "m.smc"),
            ]
        )
        == 0
    )
    last = tmp_path / "m.2.smc"
    data = bytearray(last.read_bytes())
    data[-1] ^= 0xFF
    last.write_bytes(bytes(data))
    capsys.readouterr()
    files = [str(tmp_path / f"m.{k}.smc") for k in range(3)]
    assert main(["receive", *files, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (
        got["image"] == "64x64"
        and len(got["not decoded"]) == 1
        and "m.2.smc" in got["not decoded"][0]
    )
    assert (
        main(
            ["send", str(tmp_path / "image.png"), "--scheme", "raw", "-o", str(tmp_path / "a.smc")]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["receive", str(tmp_path / "a.smc"), str(tmp_path / "a.smc")]) == 2
    assert "one message per image" in capsys.readouterr().err


def test_the_report_says_who_measured_each_metric(evalset, tmp_path) -> None:
    from semcom.experiments.report import write_report

    cfg = SweepConfig(schemes=["toy-logits", "toy-three"], channels=["ideal"])
    records = run_sweep(cfg, evalset, formula_judges(), progress=False)
    html = write_report(records, tmp_path / "r", screenshot=False).read_text()
    assert "Measured by" in html and "<b>accuracy</b>: receiver" in html
    assert "<b>psnr</b>: psnr" in html


def test_a_judge_of_an_output_the_receiver_lacks_is_refused(evalset, tmp_path, capsys) -> None:
    """``--judge`` on a receiver that gives no image (receive), or on a run where no scheme
    gives one (bench): one line, exit 2 -- not a silently empty score."""
    from semcom.cli import main
    from semcom.imageio import save_image

    save_image(evalset.images[0], tmp_path / "image.png")
    out = tmp_path / "m.smc"
    assert (
        main(["send", str(tmp_path / "image.png"), "--scheme", "toy-logits", "-o", str(out)]) == 0
    )
    capsys.readouterr()
    assert main(["receive", str(out), "--judge", "psnr"]) == 2
    err = capsys.readouterr().err
    assert "reads x_hat, which the toy-logits receiver does not produce" in err
    assert err.count("\n") == 1
    assert main(["receive", str(out), "--json"]) == 0  # without --judge: its own answer
    capsys.readouterr()
    args = ["bench", "--n-images", "2", "--schemes", "toy-logits", "--channels", "ideal"]
    assert main([*args, "--judge", "shape-classifier", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "judge shape-classifier reads x_hat, which none of the schemes produces" in err
