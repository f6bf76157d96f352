"""The exceptions semcom raises on purpose.

Every problem with *untrusted input* (a message, an uploaded image, a checkpoint, a
command-line argument) is reported through one of these types, never a raw
``IndexError`` / ``struct.error`` / ``RuntimeError``.
"""

from __future__ import annotations


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, cut to
    ``limit`` characters (``...`` at the end) when given: how errors reach the user."""
    out = " ".join(str(text).split())
    return out if limit is None or len(out) <= limit else out[: limit - 3] + "..."


class SemcomError(Exception):
    """Base class of every error semcom raises on purpose."""


class BitstreamError(SemcomError, ValueError):
    """A message (bytes) is malformed, truncated, corrupted or inconsistent.

    Raised by every parser of untrusted bytes: the message container, entropy-coded
    sections, scheme payloads and checkpoints. The message says what was wrong and
    where (byte offset), in one line.
    """


class InputError(SemcomError, ValueError):
    """A caller-supplied argument is invalid (unknown scheme, rate out of range, bad image)."""


class BudgetError(InputError):
    """A byte budget the transmitter cannot meet.

    ``smallest`` is the size in bytes of the smallest message the scheme can make of that
    image with its settings, ``message`` that message (the caller may still send it,
    knowing it is over budget, as the sweep does and records).
    """

    def __init__(self, text: str, smallest: int, message: bytes) -> None:
        super().__init__(text)
        self.smallest = smallest
        self.message = message
