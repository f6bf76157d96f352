"""The progressive text scheme end to end with tiny random models: sessions, orderings,
the stop rule, the word code and hostile messages."""

from __future__ import annotations

import pytest
import torch

from semcom.codec.container import Message, pack
from semcom.errors import BitstreamError, InputError
from semcom.models.registry import create_model
from semcom.schemes import create_scheme
from semcom.text.wordcode import WordCode, position_bits
from semcom.text.words import synthetic_vocabulary

V = len(synthetic_vocabulary())


def _models(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    gen = create_model("text-diffusion", vocab_size=V, image_size=8, widths=(8, 8, 16),
                       text_dim=16, text_depth=1, text_heads=2, timesteps=20).eval()  # fmt: skip
    with torch.no_grad():  # the output layer starts at zero: make the words matter
        gen.out[2].weight.normal_(0, 0.3)
    cap = create_model("captioner", vocab_size=V, image_size=16, dim=16, depth=1, heads=2).eval()
    return gen, cap


def _scheme(**kw: object):  # noqa: ANN202
    gen, cap = _models()
    return create_scheme("text", model=gen, captioner=cap, steps=2, **kw)


CAPTION = "a large red circle in the center on a plain blue background"


def test_word_code_round_trips_and_refuses_garbage() -> None:
    code = WordCode([50, 20, 20, 5, 1, 1])
    assert sorted(code.lengths.tolist()) == [1, 2, 3, 4, 5, 5]
    for n in (1, 2, 5, 12, 63):
        for word in range(6):
            for pos in {0, n - 1, n // 2}:
                assert code.unpack(code.pack(word, pos, n), n) == (word, pos)
    assert position_bits(1) == 0 and position_bits(2) == 1 and position_bits(12) == 4
    assert len(code.pack(0, 3, 12)) == 1  # 1 + 4 bits
    with pytest.raises(BitstreamError):
        code.unpack(b"", 12)
    with pytest.raises(BitstreamError):
        code.unpack(code.pack(0, 3, 12) + b"\x00", 12)  # a byte too many
    with pytest.raises(BitstreamError):
        code.unpack(bytes([0b0_1111_000]), 12)  # position 15 of 12
    with pytest.raises(BitstreamError):
        code.unpack(bytes([0b0_0011_001]), 12)  # padding not zero
    with pytest.raises(InputError):
        code.pack(6, 0, 1)
    with pytest.raises(InputError):
        WordCode([3, 0])


def test_a_session_sends_one_word_per_message_and_bob_draws_what_alice_simulated() -> None:
    s = _scheme(order="natural")
    ids = s.caption_ids(CAPTION)
    tx = s.transmit_caption(ids, (16, 16), budget=4)
    assert len(tx.messages) == 4 and tx.stats["words_sent"] == 4
    assert tx.stats["order"] == [0, 1, 2, 3] and tx.stats["caption_words"] == len(ids)
    assert tx.stats["caption"] == CAPTION and tx.stats["sent"] == ["a", "large", "red", "circle"]
    assert all(len(m) < 40 for m in tx.messages[1:])  # header + a 1-byte word
    rx = s.open_receiver()
    answers = [rx.receive(m) for m in tx.messages]
    assert [a.text for a in answers] == ["a", "a large", "a large red", "a large red circle"]
    assert [a.satisfied for a in answers] == [False, False, False, True]
    final = answers[-1].x_hat
    assert final.shape == (3, 16, 16) and final.dtype == torch.uint8
    pairs = [(p, ids[p]) for p in range(4)]
    sim = s.generate(pairs, s.seed, (16, 16))[0]
    assert torch.equal((sim * 255).round().clamp(0, 255).to(torch.uint8), final)
    with pytest.raises(BitstreamError, match="out of order"):
        rx.receive(tx.messages[0])
    with pytest.raises(BitstreamError, match="after the last"):
        rx.receive(s.transmit_caption(ids, (16, 16), budget=5).messages[4])


def test_orderings_pick_different_words_and_the_stop_rule_stops() -> None:
    image = torch.randint(
        0, 256, (3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    ref = image[None].float() / 255
    firsts = {}
    for order in ("natural", "random", "most-attentive", "least-attentive", "lowest-distance"):
        s = _scheme(order=order)
        ids = s.caption_ids(CAPTION)
        tx = s.transmit_caption(ids, (16, 16), budget=3, ref=ref)
        assert len(tx.messages) == 3 and sorted(set(tx.stats["order"])) == sorted(tx.stats["order"])
        firsts[order] = tx.stats["order"]
    assert (
        firsts["natural"] == [0, 1, 2]
        and firsts["most-attentive"][0] == firsts["least-attentive"][0]
    )
    low = _scheme(order="lowest-distance")
    tx = low.transmit_caption(low.caption_ids(CAPTION), (16, 16), budget=3, ref=ref)
    n = len(low.caption_ids(CAPTION))
    assert tx.stats["generator_calls"] == n + (n - 1) + (n - 2)
    d = tx.stats["distances"]
    # a target just above the second distance (as rounded in the stats): Alice stops
    # after the second word at the latest
    stop = _scheme(order="lowest-distance", target=d[1] + 1e-5)
    tx2 = stop.transmit_caption(stop.caption_ids(CAPTION), (16, 16), budget=10, ref=ref)
    assert tx2.stats["words_sent"] <= 2 and tx2.stats["reached"] == 1
    rx = stop.open_receiver()
    assert [rx.receive(m).satisfied for m in tx2.messages][-1] is True
    never = _scheme(order="natural", target=1e-12)
    tx3 = never.transmit_caption(never.caption_ids(CAPTION), (16, 16), budget=3, ref=ref)
    assert tx3.stats["words_sent"] == 3 and tx3.stats["reached"] == 0
    with pytest.raises(InputError, match="original image"):
        low.transmit_caption([5, 6], (16, 16), budget=2)


def test_transmit_captions_an_image_and_the_sweep_costs_count_words() -> None:
    s = _scheme(order="most-attentive")
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    tx = s.transmit(image, 3)
    assert 1 <= len(tx.messages) <= 3
    cost = s.measured_cost(3, [tx, tx])
    assert cost["words"] == tx.stats["words_sent"]
    with pytest.raises(InputError):
        s.validate_rate(2.5)
    with pytest.raises(InputError):
        s.transmit(image.float(), 3)


def test_an_empty_caption_and_unknown_words() -> None:
    s = _scheme(order="natural")
    with pytest.raises(InputError, match="no words"):
        s.caption_ids(" , ")
    assert s.caption_ids("a zebra")[1] == 1  # <unk>, never an error
    tx = s.transmit_caption([], (8, 8), budget=3)
    assert len(tx.messages) == 1
    answer = s.open_receiver().receive(tx.messages[0])
    assert answer.text == "" and answer.satisfied and answer.x_hat.shape == (3, 8, 8)


def test_hostile_messages_are_bitstream_errors() -> None:
    s = _scheme(order="natural")
    ids = s.caption_ids(CAPTION)
    tx = s.transmit_caption(ids, (16, 16), budget=3)
    with pytest.raises(BitstreamError):
        s.open_receiver().receive(b"garbage")
    with pytest.raises(BitstreamError, match="out of order"):
        s.open_receiver().receive(tx.messages[1])
    other_gen, _ = _models(seed=1)
    bob = create_scheme("text", model=other_gen, captioner=_models()[1], steps=2)
    with pytest.raises(BitstreamError):  # another generator's weights
        bob.open_receiver().receive(tx.messages[0])
    fp = s.fingerprint()
    head = {"k": 0, "h": 16, "w": 16, "n": 3, "seed": 0, "v": V + 1, "fp": fp, "f": 0}
    with pytest.raises(BitstreamError, match="vocabulary"):
        s.open_receiver().receive(
            pack(Message(scheme="text", fields=head, sections={"w": b"\x00"}))
        )
    head["v"] = V
    head["h"] = 1 << 15
    with pytest.raises(BitstreamError):
        s.open_receiver().receive(
            pack(Message(scheme="text", fields=head, sections={"w": b"\x00"}))
        )
    rx = s.open_receiver()
    rx.receive(tx.messages[0])
    dup = pack(Message(scheme="text", fields={"k": 1, "f": 0},
                       sections={"w": s.word_code().pack(ids[0], 0, len(ids))}))  # fmt: skip
    with pytest.raises(BitstreamError, match="second word"):
        rx.receive(dup)
    assert rx.steps == 1  # a refused message leaves the state as it was
    rx.receive(tx.messages[1])


def test_the_progressive_experiment_writes_curves_tables_and_figures(tmp_path) -> None:  # noqa: ANN001
    import json

    from semcom.experiments.progressive import calibrate_target, run_progressive, summarise

    s = _scheme()
    summary = run_progressive(s, n_images=2, caption="truth", target="auto:1.0", out=tmp_path,
                              examples=1, codecs=["webp[scale=auto,rates=96/900]"],
                              progress=False)  # fmt: skip
    data = json.loads((tmp_path / "progressive.json").read_text())
    recs = data["records"]
    assert len(recs) == 2 * 5 and {r["ordering"] for r in recs} == set(summary["orderings"])
    for r in recs:
        n = len(r["ids"])
        assert sorted(r["order"]) == list(range(n)) and len(r["distance"]) == n
        assert len(r["bytes"]) == n and r["bytes"] == sorted(r["bytes"]) and len(r["success"]) == n
        assert all(0 < p < b for p, b in zip(r["payload_bytes"], r["bytes"], strict=True))
    # auto:1.0 is the largest whole-caption distance: every image reaches it
    assert all(o["never_reached"] == 0.0 for o in summary["orderings"].values())
    low = summary["orderings"]["lowest-distance"]
    assert low["search_generator_calls"] > summary["orderings"]["natural"]["search_generator_calls"]
    assert (tmp_path / "distance_vs_words.png").stat().st_size > 0
    assert (tmp_path / "strips.png").stat().st_size > 0
    assert "| lowest-distance |" in (tmp_path / "progressive.md").read_text()
    # the codec ran on the same images: two points, real sizes, bigger budget -> more bytes
    (curve,) = summary["codec_curves"].values()
    assert len(curve) == 2 and 0 < curve[0]["mean_bytes"] < curve[1]["mean_bytes"] <= 900
    ops = summary["operating_points"]
    assert set(ops) == set(summary["orderings"]) and set(summary["codecs_matched"]) == set(ops)
    assert all(1 <= op["mean_words"] and 0 <= op["success"] <= 1 for op in ops.values())
    assert (tmp_path / "success_vs_bytes.png").stat().st_size > 0
    fake = [{"image": 0, "ordering": "x", "distance": [3.0, 1.0], "bytes": [20, 35],
             "success": [False, True], "search_calls": 0, "order": [1, 0]}]  # fmt: skip
    assert calibrate_target(fake, 0.5) == 1.0
    t = summarise(fake, 2.0)["orderings"]["x"]
    assert t["mean_words_at_target"] == 2 and t["mean_bytes_at_target"] == 35
    assert (
        t["mean_words_to_success"] == 2
        and summarise(fake, 0.5)["orderings"]["x"]["never_reached"] == 1.0
    )
    with pytest.raises(InputError):
        run_progressive(s, n_images=1, orders=["sideways"], out=tmp_path)


def test_operating_points_and_codec_bytes_at_matched_success() -> None:
    from semcom.experiments.progressive import bytes_for_success, matched_codecs, operating_points

    recs = [  # image 0 reaches 1.5 at its 2nd word; image 1 never does: all 3 words sent
        {"ordering": "x", "distance": [3.0, 1.0, 0.5], "bytes": [20, 35, 50],
         "success": [False, True, True]},
        {"ordering": "x", "distance": [4.0, 3.0, 2.0], "bytes": [21, 37, 52],
         "success": [False, False, False]},
    ]  # fmt: skip
    op = operating_points(recs, 1.5)["x"]
    assert op == {"images": 2, "mean_words": 2.5, "mean_bytes": (35 + 52) / 2,
                  "mean_payload_bytes": (35 + 52) / 2, "success": 0.5}  # fmt: skip
    curve = [{"mean_bytes": 400.0, "success": 0.8}, {"mean_bytes": 200.0, "success": 0.2},
             {"mean_bytes": 300.0, "success": 0.4}]  # fmt: skip
    assert bytes_for_success(curve, 0.5) == pytest.approx(325.0)  # a quarter of 300 -> 400
    assert bytes_for_success(curve, 0.1) == 200.0  # the smallest point already does
    assert bytes_for_success(curve, 0.9) is None  # never: more bytes than were tried
    m = matched_codecs({"x": op}, {"webp": sorted(curve, key=lambda p: p["mean_bytes"])})
    assert m["x"]["webp"]["bytes"] == pytest.approx(325.0)
    assert m["x"]["webp"]["factor"] == pytest.approx(325.0 / 43.5)
    none = matched_codecs({"x": {**op, "success": 0.95}}, {"webp": curve})
    assert none["x"]["webp"]["factor"] is None and none["x"]["webp"]["max_tried"]["bytes"] == 400


def test_real_captions_report_orders_and_bytes(tmp_path) -> None:  # noqa: ANN001
    import json

    import numpy as np
    from PIL import Image

    from semcom.experiments.real_captions import run_real_captions, session_bytes
    from semcom.models import save_checkpoint
    from semcom.text.wordcode import WordCode

    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    caps = ["A dog runs on the beach.", "Two cats sleep on a red sofa"]
    for i in range(2):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "train2017" / f"{i}.jpg")
    ann = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(2)],
           "annotations": [{"image_id": i, "caption": c} for i, c in enumerate(caps)]}  # fmt: skip
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(ann))
    with pytest.raises(InputError, match="captioner"):
        run_real_captions("coco-captions", root, encoder=None, generator="g", out=tmp_path)
    gen, cap = _models()
    g = save_checkpoint(gen, tmp_path / "g.safetensors")
    c = save_checkpoint(cap, tmp_path / "c.safetensors")
    s = run_real_captions("coco-captions", root, encoder=None, out=tmp_path / "o",
                          captioner=str(c), generator=str(g))  # fmt: skip
    assert (tmp_path / "o" / "real_photos.png").stat().st_size > 0
    assert s["synthetic_vocabulary_coverage"] == pytest.approx(6 / 13)  # a on the / on a red
    assert s["images"] == 2 and s["vocabulary"] == 11 and s["mean_words_per_caption"] == 6.5
    assert set(s["function_words_in_first3"]) == {"natural", "random"}
    assert s["function_words_in_first3"]["natural"] == pytest.approx(1 / 6)  # "on" of 6
    rows = json.loads((tmp_path / "o" / "real_captions.json").read_text())["rows"]
    assert rows[0]["first3"]["natural"] == ["a", "dog", "runs"]
    code = WordCode([1, 1, 2])
    sizes = session_bytes(code, [0, 1, 2], [2, 0, 1])
    assert len(sizes) == 3 and sizes[0] > sizes[1]  # the header rides on the first message
    assert s["mean_bytes_per_caption"] > 6.5 * 8  # containers, not just the words' bits


def test_send_and_receive_a_text_session_on_the_command_line(tmp_path, capsys) -> None:  # noqa: ANN001
    from semcom.cli import main
    from semcom.imageio import save_image
    from semcom.models import save_checkpoint

    gen, cap = _models()
    g = save_checkpoint(gen, tmp_path / "g.safetensors")
    c = save_checkpoint(cap, tmp_path / "c.safetensors")
    spec = f"text[model={g},captioner={c},steps=2,order=natural]"
    photo = tmp_path / "photo.png"
    save_image(torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8), photo)
    msg = tmp_path / "m.smc"
    assert main(["send", str(photo), "--scheme", spec, "--rate", "3", "-o", str(msg)]) == 0
    out = capsys.readouterr().out
    assert "3 messages" in out and "image 30x20" in out and 'caption "' in out
    assert "words sent in order:" in out
    files = [str(tmp_path / f"m.{k}.smc") for k in range(3)]
    bob = tmp_path / "bob.png"
    assert main(["receive", *files, "--scheme", spec, "-o", str(bob), "--judge", "psnr"]) == 0
    assert "text:" in capsys.readouterr().out and bob.is_file()
    # a session given out of order: the message that cannot be taken is named, the
    # rest decoded; a broken message alone: one line, exit 2
    assert main(["receive", files[1], files[0], "--scheme", spec, "--judge", "psnr"]) == 0
    out = capsys.readouterr().out
    assert "not decoded" in out and "out of order" in out and "messages: 2" in out
    (tmp_path / "bad.smc").write_bytes(b"SMC\x00garbage")
    assert main(["receive", str(tmp_path / "bad.smc"), "--scheme", spec]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_sessions_received_together_get_the_answers_each_gets_alone() -> None:
    from semcom.schemes.base import receive_all, settle_all

    s = _scheme(order="natural")
    ids = s.caption_ids(CAPTION)
    seeded = _scheme(order="natural", seed=7)
    txs = [s.transmit_caption(ids, (16, 16), budget=3),
           seeded.transmit_caption(ids[2:], (16, 16), budget=3),
           s.transmit_caption(ids, (12, 20), budget=3)]  # fmt: skip
    alone = [s.open_receiver() for _ in txs]
    together = [s.open_receiver() for _ in txs]
    lazy = [s.open_receiver() for _ in txs]
    for k in range(3):
        data = [tx.messages[k] for tx in txs]
        if k == 1:
            data[0] = data[0][:-3]  # a broken message: refused, that session's state kept
        want = []
        for rx, d in zip(alone, data, strict=True):
            try:
                want.append(rx.receive(d))
            except BitstreamError as exc:
                want.append(exc)
        got = receive_all(s, together, data, [()] * len(data))
        deferred = receive_all(s, lazy, data, [()] * len(data), lazy=True)
        assert [type(d) for d in deferred] == [type(g) for g in got]
        assert all(d.x_hat is None for d in deferred if not isinstance(d, BitstreamError))
        assert [d.satisfied for d in deferred if not isinstance(d, BitstreamError)] == [
            g.satisfied for g in got if not isinstance(g, BitstreamError)
        ]
        for w, g in zip(want, got, strict=True):
            assert type(w) is type(g)
            if isinstance(w, BitstreamError):
                continue
            assert g.text == w.text and g.satisfied == w.satisfied
            assert torch.equal(g.x_hat, w.x_hat)
    # session 0 missed step 1, so its step 2 is out of order too
    assert [rx.steps for rx in together] == [rx.steps for rx in alone] == [1, 3, 3]
    assert together[2].result().x_hat.shape == (3, 12, 20)
    settle_all(s, lazy[:2])  # batched; the third draws its own when asked
    for a, b in zip(together, lazy, strict=True):
        assert (
            torch.equal(a.result().x_hat, b.result().x_hat) and a.result().text == b.result().text
        )


def test_the_sweep_judges_the_images_bob_draws_at_the_end_of_each_session() -> None:
    from semcom.experiments.sweep import deliver, transmit_all
    from semcom.schemes.base import run_session

    s = _scheme(order="natural")
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    txs = transmit_all(s, images, 3)
    got = deliver(s, txs, "ideal", seed=0, batch_size=2)
    assert got.sent == [3, 3, 3]
    for img, final in zip(images, got.finals, strict=True):
        _, alone = run_session(s, img, 3)
        assert final is not None and final.text == alone.text
        assert torch.equal(final.x_hat, alone.x_hat)
