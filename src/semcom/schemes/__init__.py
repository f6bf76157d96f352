"""Transmitter/receiver pairs, registered by name (``create_scheme``)."""

from semcom.schemes import balle as _balle  # noqa: F401  (registers balle)
from semcom.schemes import classical as _classical  # noqa: F401  (registers jpeg/webp/avif/raw)
from semcom.schemes import collab as _collab  # noqa: F401  (registers collab)
from semcom.schemes import patch as _patch  # noqa: F401  (registers patch-*)
from semcom.schemes import text as _text  # noqa: F401  (registers text)
from semcom.schemes import vqvae as _vqvae  # noqa: F401  (registers vqvae, gos-vae)
from semcom.schemes.base import (
    Scheme,
    create_receiver,
    create_scheme,
    list_schemes,
    parse_scheme_spec,
    register_scheme,
    split_scheme_list,
)

__all__ = [
    "Scheme",
    "create_receiver",
    "create_scheme",
    "list_schemes",
    "parse_scheme_spec",
    "register_scheme",
    "split_scheme_list",
]
