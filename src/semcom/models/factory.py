"""``create_model(name, pretrained=..., **kw)``: the registry's models, with zoo weights when
asked (the registry builds, the zoo loads through the registry; this module sits above
both so that neither imports the other)."""

from __future__ import annotations

from typing import Any

from torch import nn

from semcom.errors import InputError
from semcom.models import registry


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with config ``kwargs``.

    ``pretrained=True`` loads the zoo checkpoint for ``name`` (its sha256 is verified;
    ``name`` may also be a zoo-only name such as ``"vit-synth"`` whose entry records the
    registered ``arch``); ``kwargs`` must then agree with the zoo entry's config.
    Unknown names and bad config arguments raise ``InputError``.
    """
    if not pretrained:
        return registry.create_model(name, **kwargs)
    from semcom.models.zoo import load_pretrained

    model = load_pretrained(name)
    cfg = getattr(model, "config", {})
    clash = {k: v for k, v in kwargs.items() if _jsonish(cfg.get(k)) != _jsonish(v)}
    if clash:
        raise InputError(
            f"pretrained {name!r} was trained with config {cfg}; cannot override {sorted(clash)}"
        )
    return model


def _jsonish(v: Any) -> Any:
    """Normalise tuples to lists so configs compare like their JSON form."""
    if isinstance(v, (tuple, list)):
        return [_jsonish(x) for x in v]
    return v
