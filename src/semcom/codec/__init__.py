"""Turning things into bytes: the message container and entropy coding.

``semcom.codec.container`` holds :class:`Message`, :func:`pack`, :func:`unpack`;
``semcom.codec.entropy`` the entropy coders. Classical image codecs live in
``semcom.codec.pillow`` (imported on demand, not from here).
"""

from semcom.codec.container import (
    SCHEME_IDS,
    Message,
    header_size,
    pack,
    register_scheme_id,
    unpack,
)

__all__ = ["SCHEME_IDS", "Message", "header_size", "pack", "register_scheme_id", "unpack"]
