"""Model registry (timm style): ``@register_model(name)``, ``create_model``, ``list_models``.

A registered entry is a class or a factory function whose keyword arguments are the
model's *config* (JSON-serialisable values only). ``create_model`` stamps every model it
builds with two attributes that checkpoints rely on:

* ``model.semcom_name`` -- the registry name (``str``),
* ``model.config`` -- the full constructor keyword arguments (``dict``), when the model
  does not already expose one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from semcom.errors import InputError

__all__ = ["create_model", "is_model", "list_models", "model_entrypoint", "register_model"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a model class or factory under ``name``.

    Registering the same name twice with a different object raises ``InputError``.
    """
    if not isinstance(name, str) or not name:
        raise InputError("model name must be a non-empty string")

    def deco(fn: F) -> F:
        prev = _REGISTRY.get(name)
        if prev is not None and prev is not fn and _qualname(prev) != _qualname(fn):
            raise InputError(f"model {name!r} is already registered ({_qualname(prev)})")
        _REGISTRY[name] = fn
        if inspect.isclass(fn) and not hasattr(fn, "semcom_name"):
            fn.semcom_name = name  # type: ignore[attr-defined]
        return fn

    return deco


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


#: Files of ``semcom.models`` that register no model (not imported by discovery).
_INFRA = {
    "build_guard",
    "checkpoint",
    "domain",
    "factory",
    "fingerprint",
    "registry",
    "tensor_files",
    "tflite",
    "tflite_import",
    "vit_timm",
    "zoo",
}
_discovered = False


def _ensure_builtin() -> None:
    """Import every model file in ``semcom.models`` once (importing registers them).

    Kept lazy to avoid import cycles. A model file that fails to import (e.g. an
    optional dependency is missing) is skipped with a warning, never fatal.
    """
    global _discovered
    if _discovered:
        return
    _discovered = True
    import importlib
    import pkgutil
    import warnings

    import semcom.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name in _INFRA:
            continue
        try:
            importlib.import_module(f"semcom.models.{info.name}")
        except Exception as exc:  # pragma: no cover - depends on other model files
            warnings.warn(f"semcom.models.{info.name} not registered: {exc}", stacklevel=2)


def list_models(pattern: str | None = None, module: str | None = None) -> list[str]:
    """Sorted names of all registered models, optionally filtered by ``fnmatch`` pattern
    and by the model file that registers them (``module="vit"``: ``semcom.models.vit``'s)."""
    _ensure_builtin()
    names = sorted(_REGISTRY)
    if module:
        where = module if "." in module else f"semcom.models.{module}"
        names = [n for n in names if getattr(_REGISTRY[n], "__module__", None) == where]
    if pattern:
        import fnmatch

        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def is_model(name: str) -> bool:
    """True when ``name`` is registered."""
    _ensure_builtin()
    return name in _REGISTRY


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The class/factory registered under ``name`` (``InputError`` listing known names if none)."""
    _ensure_builtin()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise InputError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with config ``kwargs`` (random init).

    Unknown names and bad config arguments raise ``InputError``. Zoo weights:
    ``semcom.models.create_model(name, pretrained=True)`` (:mod:`semcom.models.factory`),
    so that this registry never imports the zoo that loads through it.
    """
    fn = model_entrypoint(name)
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        raise InputError(f"bad arguments for model {name!r}: {exc}") from None
    model.semcom_name = name  # type: ignore[assignment]
    if not isinstance(getattr(model, "config", None), dict):
        model.config = dict(kwargs)  # type: ignore[assignment]
    return model
