"""Run a TFLite model file from torch code, through ``ai-edge-litert`` (optional extra
``litert``; imported only when a model is opened).

:class:`TFLiteModel` wraps one interpreter: :meth:`TFLiteModel.run` takes images uint8
``(N, H, W, 3)`` (NHWC, raw 0-255 pixels, resized by the caller to the model's input size)
and returns, per image, the model's output dequantised to float32 and -- when the output
is a softmax -- the softmax's input (the logits), read from the interpreter with
``experimental_preserve_all_tensors``. The graph is read once with the ``tflite`` package
to find that softmax (XNNPACK hides the op names from the interpreter).

Untrusted files: a path that is not a TFLite flatbuffer (identifier ``TFL3`` at bytes
4..8), a truncated one, or one the interpreter refuses raises
:class:`~semcom.errors.InputError` with one line naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semcom.errors import InputError, one_line

__all__ = ["TFLITE_MAX_BYTES", "TFLiteModel", "read_tflite_file", "require_litert"]

#: Largest model file opened (bytes); the files used here are 2-4 MB.
TFLITE_MAX_BYTES = 512 * 1024 * 1024

_INSTALL = "pip install 'semcom[litert]' (ai-edge-litert and tflite)"


def require_litert() -> Any:
    """The ``ai_edge_litert.interpreter`` module; InputError naming the extra if absent."""
    try:
        from ai_edge_litert import interpreter
    except ImportError as e:
        raise InputError(f"TFLite judges need ai-edge-litert: {_INSTALL} ({e})") from None
    return interpreter


def read_tflite_file(path: str | Path, max_bytes: int = TFLITE_MAX_BYTES) -> tuple[Path, bytes]:
    """``(path, bytes)`` of a TFLite file after the cheap checks (a readable file of at
    most ``max_bytes``, the ``TFL3`` identifier); InputError naming the file otherwise."""
    p = Path(path).expanduser()
    where = f"TFLite model {p}"
    try:
        if not p.is_file():
            raise InputError(f"{where}: {'not a file' if p.exists() else 'no such file'}")
        size = p.stat().st_size
        if size > max_bytes:
            raise InputError(f"{where}: {size} bytes is over the {max_bytes} limit")
        data = p.read_bytes()
    except OSError as e:
        raise InputError(one_line(f"{where}: cannot read: {e.strerror or e}")) from None
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError(f"{where}: not a TFLite file (no TFL3 identifier at bytes 4..8)")
    return p, data


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """Silence what the TFLite runtime's C++ code prints on fd 2 ("INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU.") while the interpreter is made."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): print as is
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _softmax_input(data: bytes, output: int) -> int | None:
    """Index of the tensor a SOFTMAX writing (possibly through a QUANTIZE) the model
    output ``output`` reads, from the flatbuffer; None when there is none or the
    ``tflite`` package is absent."""
    try:
        import tflite
    except ImportError:
        return None
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        graph = model.Subgraphs(0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        producer: dict[int, tuple[str, list[int]]] = {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            for o in op.OutputsAsNumpy().tolist():
                producer[int(o)] = (kind, [int(t) for t in op.InputsAsNumpy().tolist()])
    except Exception:  # a graph the parser cannot walk: no logits, the output still works
        return None
    kind, inputs = producer.get(output, ("", []))
    if kind in ("QUANTIZE", "DEQUANTIZE") and inputs:
        kind, inputs = producer.get(inputs[0], ("", []))
    return inputs[0] if kind == "SOFTMAX" and inputs else None


@dataclass(frozen=True)
class _Port:
    index: int
    shape: tuple[int, ...]
    dtype: Any
    scale: float
    zero_point: int

    @classmethod
    def of(cls, d: dict[str, Any]) -> _Port:
        scale, zp = d.get("quantization", (0.0, 0))
        return cls(int(d["index"]), tuple(int(s) for s in d["shape"]), d["dtype"], scale, zp)

    def real(self, q: np.ndarray) -> np.ndarray:
        """Dequantised float32 (unchanged values for float / unquantised tensors)."""
        if self.scale and np.issubdtype(q.dtype, np.integer):
            return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        return q.astype(np.float32) if np.issubdtype(q.dtype, np.floating) else q


class TFLiteModel:
    """One TFLite interpreter over a model file with one image input.

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads (default: torch's intra-op thread count).

    Attributes:
        input_size: ``(H, W)`` of the image input; ``input_dtype`` uint8 or float32.
        output_shape: shape of the (first) output for one image.
        has_logits: whether :meth:`run` can return the pre-softmax logits.
        sha256: hex digest of the file.
    """

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        lite = require_litert()
        self.path, data = read_tflite_file(path)
        self.sha256 = hashlib.sha256(data).hexdigest()
        if num_threads is None:
            import torch

            num_threads = torch.get_num_threads()
        try:
            with warnings.catch_warnings(), _native_stderr_quiet():
                warnings.simplefilter("ignore", UserWarning)  # "preserve_all_tensors: debug"
                self._it = lite.Interpreter(
                    model_content=data,
                    num_threads=int(num_threads),
                    experimental_preserve_all_tensors=True,
                )
                self._it.allocate_tensors()
            ins, outs = self._it.get_input_details(), self._it.get_output_details()
        except Exception as e:
            raise InputError(f"TFLite model {self.path}: {one_line(e, 200)}") from None
        if len(ins) != 1 or len(ins[0]["shape"]) != 4 or int(ins[0]["shape"][-1]) != 3:
            shapes = [list(map(int, d["shape"])) for d in ins]
            raise InputError(
                f"TFLite model {self.path}: expected one image input [1,H,W,3], got {shapes}"
            )
        if not outs:
            raise InputError(f"TFLite model {self.path}: the graph has no output")
        self._in = _Port.of(ins[0])
        if self._in.dtype not in (np.uint8, np.float32):
            raise InputError(
                f"TFLite model {self.path}: input dtype {np.dtype(self._in.dtype).name} "
                "(expected uint8 or float32)"
            )
        self._out = _Port.of(outs[0])
        self.input_size = (self._in.shape[1], self._in.shape[2])
        self.input_dtype = np.dtype(self._in.dtype)
        self.output_shape = self._out.shape[1:]
        self.output_dtype = np.dtype(self._out.dtype)
        self._logits: _Port | None = None
        li = _softmax_input(data, self._out.index)
        if li is not None:
            details = {int(d["index"]): d for d in self._it.get_tensor_details()}
            if li in details:
                self._logits = _Port.of(details[li])
        self.has_logits = self._logits is not None

    def __repr__(self) -> str:
        return f"TFLiteModel({str(self.path)!r}, input={self.input_size}, out={self.output_shape})"

    def _feed(self, image: np.ndarray) -> np.ndarray:
        """uint8 ``(H, W, 3)`` -> the input tensor: raw pixels for a uint8 input (the
        quantised MobileNet convention, real = (q - zp) * scale), ``q / 127.5 - 1`` for
        a float32 input (the same real values)."""
        if self.input_dtype == np.uint8:
            return image[None]
        return (image[None].astype(np.float32) / np.float32(127.5)) - np.float32(1.0)

    def run(self, images: np.ndarray, logits: bool = False) -> np.ndarray:
        """Images uint8 ``(N, H, W, 3)`` at :attr:`input_size` -> float32
        ``(N, *output_shape)``: the dequantised output (or, with ``logits=True`` on a
        model that has them, the pre-softmax logits); integer outputs (an ``ArgMax``)
        come back as int64."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:3] != self.input_size or images.shape[3] != 3:
            raise InputError(
                f"TFLite model {self.path.name}: images must be (N, {self.input_size[0]}, "
                f"{self.input_size[1]}, 3), got {tuple(images.shape)}"
            )
        if images.dtype != np.uint8:
            raise InputError(f"TFLite model {self.path.name}: images must be uint8")
        port = self._out
        if logits:
            if self._logits is None:
                raise InputError(f"TFLite model {self.path.name}: no softmax, so no logits")
            port = self._logits
        out = []
        for img in images:
            self._it.set_tensor(self._in.index, self._feed(img))
            self._it.invoke()
            q = self._it.get_tensor(port.index)
            out.append(port.real(q).reshape(q.shape[1:] if q.shape[:1] == (1,) else q.shape))
        if not out:
            return np.zeros((0, *port.shape[1:]), np.float32)
        res = np.stack(out)
        return res.astype(np.int64) if np.issubdtype(res.dtype, np.integer) else res
