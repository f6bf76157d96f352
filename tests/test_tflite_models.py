"""The tiny TFLite models of tests/tflite_models.py: valid files that ai_edge_litert runs,
whose outputs are the numpy math their docstrings describe, and whose graphs read back
(through the ``tflite`` schema code) in the documented order."""

from __future__ import annotations

import numpy as np
import pytest

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter
tflite = pytest.importorskip("tflite")
pytest.importorskip("flatbuffers")

import tests.tflite_models as tfm  # noqa: E402


def _interpreter(path):
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return it


def _run(it, images: np.ndarray) -> np.ndarray:
    """One image at a time (the models take a batch of 1); outputs stacked."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for img in images:
        it.set_tensor(inp["index"], img[None])
        it.invoke()
        outs.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(outs)


def _coloured_images(rng, n: int, size: int) -> np.ndarray:
    """Noisy images, each with one channel clearly the brightest (cycling R, G, B)."""
    imgs = rng.integers(0, 100, (n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        imgs[i, ..., i % 3] += 150
    return imgs


def _read_model(path):
    buf = bytearray(path.read_bytes())
    assert tflite.Model.ModelBufferHasIdentifier(buf, 0)
    return tflite.Model.GetRootAsModel(buf, 0)


def _ops(model):
    """(op name, input tensor names, output tensor names) of subgraph 0, in order."""
    sg = model.Subgraphs(0)
    names = [sg.Tensors(i).Name().decode() for i in range(sg.TensorsLength())]
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        assert code.DeprecatedBuiltinCode() == min(code.BuiltinCode(), 127)
        ops.append(
            (
                tflite.utils.opcode2name(code.BuiltinCode()),
                [names[j] for j in op.InputsAsNumpy()],
                [names[j] for j in op.OutputsAsNumpy()],
            )
        )
    return ops


# ---------------------------------------------------------------------------------------
# The classifier.


def test_classifier_interface(tmp_path) -> None:
    path = tfm.write_classifier(tmp_path / "c.tflite")
    assert path.stat().st_size < 20_000
    it = _interpreter(path)
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    assert inp["name"] == "input" and list(inp["shape"]) == [1, 16, 16, 3]
    assert inp["dtype"] == np.uint8 and inp["quantization"] == (1 / 128, 128)
    assert out["name"] == "Predictions" and list(out["shape"]) == [1, 1001]
    assert out["dtype"] == np.uint8 and out["quantization"] == (1 / 256, 0)


def test_classifier_default_weights_pick_the_brightest_channel(tmp_path) -> None:
    it = _interpreter(tfm.write_classifier(tmp_path / "c.tflite", size=8))
    imgs = _coloured_images(np.random.default_rng(0), 6, 8)
    dark = np.full((1, 8, 8, 3), 40, dtype=np.uint8)  # every channel mean below 128
    imgs = np.concatenate([imgs, dark])
    got = _run(it, imgs)
    want = tfm.classifier_reference(imgs)["output"]
    assert got.dtype == np.uint8 and got.shape == (7, 1001)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert list(got.argmax(1)) == [1, 2, 3, 1, 2, 3, 0]


def test_classifier_chosen_weights_float_and_quantised(tmp_path) -> None:
    rng = np.random.default_rng(1)
    weights = (rng.normal(0, 3, (10, 3)).astype(np.float32), rng.normal(0, 1, 10))
    imgs = rng.integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    q = _interpreter(
        tfm.write_classifier(tmp_path / "q.tflite", size=12, num_classes=10, weights=weights)
    )
    f = _interpreter(
        tfm.write_classifier(
            tmp_path / "f.tflite", size=12, num_classes=10, weights=weights, quantized_output=False
        )
    )
    assert f.get_output_details()[0]["dtype"] == np.float32
    ref = tfm.classifier_reference(imgs, num_classes=10, weights=weights)
    probs = _run(f, imgs)
    np.testing.assert_allclose(probs, ref["probs"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    got = _run(q, imgs)
    assert np.abs(got.astype(int) - ref["output"].astype(int)).max() <= 1
    float_ref = tfm.classifier_reference(
        imgs, num_classes=10, weights=weights, quantized_output=False
    )["output"]
    np.testing.assert_array_equal(float_ref, ref["probs"])


def test_classifier_graph_reads_back_in_order(tmp_path) -> None:
    model = _read_model(tfm.write_classifier(tmp_path / "c.tflite", num_classes=5))
    assert model.Version() == 3
    assert model.Buffers(0).DataLength() == 0
    ops = _ops(model)
    assert [name for name, _, _ in ops] == [
        "DEQUANTIZE",
        "MEAN",
        "FULLY_CONNECTED",
        "SOFTMAX",
        "QUANTIZE",
    ]
    softmax = ops[3]
    assert softmax[1] == ["Logits"] and ops[2][2] == ["Logits"]
    assert ops[4][2] == ["Predictions"]
    sg = model.Subgraphs(0)
    assert sg.Tensors(sg.Outputs(0)).Name() == b"Predictions"
    assert sg.Tensors(sg.Inputs(0)).Name() == b"input"
    # every constant tensor has data; every activation points at the empty buffer 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        is_const = t.Name().decode() in {"mean/reduction_indices", "Logits/weights", "Logits/bias"}
        assert (model.Buffers(t.Buffer()).DataLength() > 0) == is_const
        assert (t.Buffer() > 0) == is_const

    unquantised = _read_model(
        tfm.write_classifier(tmp_path / "f.tflite", num_classes=5, quantized_output=False)
    )
    ops = _ops(unquantised)
    assert [name for name, _, _ in ops][-1] == "SOFTMAX"
    assert ops[-1][1] == ["Logits"] and ops[-1][2] == ["Predictions"]


def test_classifier_refuses_wrong_weights(tmp_path) -> None:
    with pytest.raises(ValueError, match="weights"):
        tfm.write_classifier(
            tmp_path / "c.tflite", num_classes=5, weights=(np.zeros((4, 3)), np.zeros(4))
        )


# ---------------------------------------------------------------------------------------
# The segmenter.


def test_segmenter_default_weights(tmp_path) -> None:
    path = tfm.write_segmenter(tmp_path / "s.tflite")
    assert path.stat().st_size < 4_000
    it = _interpreter(path)
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    assert inp["dtype"] == np.uint8 and list(inp["shape"]) == [1, 17, 17, 3]
    assert inp["quantization"] == (1 / 128, 128)
    assert out["name"] == "ArgMax" and out["dtype"] == np.int64
    assert list(out["shape"]) == [1, 17, 17]
    imgs = np.random.default_rng(2).integers(0, 256, (3, 17, 17, 3), dtype=np.uint8)
    imgs[0, :5, :5] = 200  # ties: the first channel wins
    got = _run(it, imgs)
    np.testing.assert_array_equal(got, tfm.segmenter_reference(imgs)["output"])
    np.testing.assert_array_equal(got, imgs.argmax(-1))


def test_segmenter_chosen_weights(tmp_path) -> None:
    rng = np.random.default_rng(3)
    weights = (rng.normal(0, 1, (7, 1, 1, 3)), rng.normal(0, 0.5, 7))
    it = _interpreter(
        tfm.write_segmenter(tmp_path / "s.tflite", size=9, num_classes=7, weights=weights)
    )
    imgs = rng.integers(0, 256, (4, 9, 9, 3), dtype=np.uint8)
    ref = tfm.segmenter_reference(imgs, num_classes=7, weights=weights)
    got = _run(it, imgs)
    top2 = np.sort(ref["logits"], -1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4  # float32 may flip a near-tie
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(got[clear], ref["output"][clear])
    assert len(np.unique(got)) > 2


def test_segmenter_graph_reads_back_in_order(tmp_path) -> None:
    model = _read_model(tfm.write_segmenter(tmp_path / "s.tflite"))
    assert model.Version() == 3 and model.Buffers(0).DataLength() == 0
    ops = _ops(model)
    assert [name for name, _, _ in ops] == ["DEQUANTIZE", "CONV_2D", "ARG_MAX"]
    assert ops[0][1] == ["ImageTensor"] and ops[2][2] == ["ArgMax"]
    sg = model.Subgraphs(0)
    filt = sg.Tensors(sg.Operators(1).Inputs(1))
    assert list(filt.ShapeAsNumpy()) == [19, 1, 1, 3]


# ---------------------------------------------------------------------------------------
# Files that are neither.


def test_other_model_runs_with_an_unexpected_interface(tmp_path) -> None:
    it = _interpreter(tfm.write_other_model(tmp_path / "o.tflite", size=6))
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    assert inp["dtype"] == np.float32 and list(inp["shape"]) == [1, 6, 6, 3]
    assert out["dtype"] == np.float32 and list(out["shape"]) == [1, 6, 6, 1]
    x = np.random.default_rng(4).random((1, 6, 6, 3), dtype=np.float32)
    got = _run(it, x)
    np.testing.assert_allclose(got, x.mean(-1, keepdims=True), rtol=1e-5)


def test_broken_model_is_refused(tmp_path) -> None:
    path = tfm.write_broken_model(tmp_path / "b.tflite")
    assert path.read_bytes()[4:8] == b"TFL3"
    with pytest.raises(ValueError):
        Interpreter(model_path=str(path))
