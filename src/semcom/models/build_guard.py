"""Building a checkpoint's model "on meta" under a guard, before anything is allocated.

Step 3 of :func:`semcom.models.checkpoint.load_checkpoint`: the model a checkpoint's
config describes is built inside :class:`BuildGuard` -- large tensors on the ``meta``
device, small ones for real -- and stopped as soon as its constructor registers more
than the file's tensors can account for or holds too many real bytes; then
:func:`model_bytes` says what the real model would take.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BuildGuard", "model_bytes"]

#: While a config's model is built on ``meta``, it may register at most
#: ``_TENSOR_FACTOR * n + _TENSOR_EXTRA`` parameters and buffers and
#: ``_MODULE_FACTOR * n + _MODULE_EXTRA`` submodules, ``n`` = the file's tensor count.
_TENSOR_FACTOR, _TENSOR_EXTRA = 2, 64
_MODULE_FACTOR, _MODULE_EXTRA = 8, 256


class _Refused(Exception):
    """Raised by :class:`BuildGuard` from inside a model constructor to stop it."""


# In-place ops that only change values (weight init, scaling, fills): on a meta tensor
# they are no-ops, but some (``normal_``, ``erfinv_``, ...) have Python meta kernels
# whose first use imports torch's compiler stack (about 75 MB and 2 s).
_VALUE_ONLY_INPLACE = frozenset(
    {
        # torch.nn.init
        "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
        "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
        "kaiming_normal_", "orthogonal_", "sparse_",
        # Tensor methods
        "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "clamp_min_", "clamp_max_",
        "fill_", "zero_", "copy_", "exp_", "log_", "sqrt_", "neg_", "abs_", "pow_",
        "bernoulli_", "random_", "exponential_", "log_normal_", "cauchy_", "geometric_",
        "fill_diagonal_", "masked_fill_", "addcmul_", "addcdiv_", "lerp_", "tanh_",
    }
)  # fmt: skip
_NEW_FACTORIES = frozenset({"new_empty", "new_zeros", "new_ones", "new_full", "new_tensor"})
#: Tensors of at most this many elements are made for real (on the CPU) while a config's
#: model is built "on meta": fixed buffers computed at init (``EdgeFeatures``' kernel)
#: then run on real kernels, and only the large tensors live on the ``meta`` device.
_SMALL_NUMEL = 4096


def _constructors() -> frozenset[Any]:
    try:
        from torch.utils._device import _device_constructors

        return frozenset(_device_constructors())
    except (ImportError, AttributeError):  # pragma: no cover - other torch versions
        return frozenset()


class BuildGuard(torch.overrides.TorchFunctionMode):
    """Builds a model "on meta", counting what its constructor does and stopping it early.

    Inside ``with guard:`` (this thread only):

    * tensor factories without an explicit device (``torch.zeros``, ``torch.tensor``,
      ``x.new_zeros``, ...) make their tensor on ``meta``, or for real on the CPU when
      it has at most ``_SMALL_NUMEL`` elements (so fixed buffers computed at init run
      on real kernels); value-only in-place ops on meta tensors (weight init, fills:
      ``_VALUE_ONLY_INPLACE``) are skipped;
    * torch's global parameter / buffer / module registration hooks count what the
      constructor registers; it is interrupted (``_Refused``) once it registers more
      parameters and buffers, or submodules, than a file of ``file_tensors`` tensors
      can account for (``_TENSOR_FACTOR``, ``_MODULE_FACTOR``), or once real tensors
      (registered, or any op's result) exceed ``max_real_bytes``; ``problem`` then
      says which;
    * the CPU RNG is left as it was.
    """

    def __init__(self, file_tensors: int, max_real_bytes: int) -> None:
        super().__init__()
        self.file_tensors = file_tensors
        self.max_tensors = _TENSOR_FACTOR * file_tensors + _TENSOR_EXTRA
        self.max_modules = _MODULE_FACTOR * file_tensors + _MODULE_EXTRA
        self.max_real_bytes = max_real_bytes
        self.tensors = self.modules = self.real_bytes = 0
        self.problem: str | None = None
        self._thread = threading.get_ident()
        self._factories = _constructors()
        self._handles: list[Any] = []
        self._stack: ExitStack | None = None

    # ----------------------------------------------------------------- refusing
    def _refuse(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem
        raise _Refused(problem)

    def _too_many_bytes(self) -> None:
        self._refuse(f"allocates more than {self.max_real_bytes} bytes while being built")

    # -------------------------------------------------------- registration hooks
    def _on_tensor(self, module: nn.Module, name: str, t: Tensor | None) -> None:
        if t is None or threading.get_ident() != self._thread:
            return
        self.tensors += 1
        if t.device.type != "meta":
            self.real_bytes += t.numel() * t.element_size()
        if self.tensors > self.max_tensors:
            self._refuse(
                f"implies more than {self.max_tensors} parameters and buffers, the file "
                f"has {self.file_tensors} tensors"
            )
        if self.real_bytes > self.max_real_bytes:
            self._too_many_bytes()

    def _on_module(self, parent: nn.Module, name: str, sub: nn.Module | None) -> None:
        if sub is None or threading.get_ident() != self._thread:
            return
        self.modules += 1
        if self.modules > self.max_modules:
            self._refuse(
                f"implies more than {self.max_modules} submodules, the file has "
                f"{self.file_tensors} tensors"
            )

    # ------------------------------------------------------------ torch function
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, D105
        kwargs = kwargs or {}
        name = getattr(func, "__name__", None)
        if name in _VALUE_ONLY_INPLACE:
            # torch.nn.init passes its tensor by keyword (``tensor=``).
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(target, Tensor) and target.device.type == "meta":
                return target
        if kwargs.get("device") is None and (
            func in self._factories
            or (name in _NEW_FACTORIES and args and isinstance(args[0], Tensor))
        ):
            out = func(*args, **{**kwargs, "device": "meta"})
            if not (isinstance(out, Tensor) and out.numel() <= _SMALL_NUMEL):
                return out
            if func in self._factories:
                kwargs = {**kwargs, "device": "cpu"}
        out = func(*args, **kwargs)
        if (
            isinstance(out, Tensor)
            and out.device.type != "meta"
            and out.untyped_storage().nbytes() > self.max_real_bytes
        ):
            self._too_many_bytes()
        return out

    # ------------------------------------------------------------------- context
    def __enter__(self) -> BuildGuard:
        from torch.nn.modules import module as mod

        stack = ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=[]))
        stack.enter_context(torch.device("meta"))
        self._handles = [
            mod.register_module_parameter_registration_hook(self._on_tensor),
            mod.register_module_buffer_registration_hook(self._on_tensor),
            mod.register_module_module_registration_hook(self._on_module),
        ]
        self._stack = stack
        try:
            super().__enter__()
        except BaseException:
            self._exit_rest()
            raise
        return self

    def _exit_rest(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._exit_rest()


def model_bytes(model: nn.Module) -> int:
    """``numel * element_size`` over the model's parameters and buffers (works on meta)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())
