"""The channel interface: what every channel takes, returns and reports about itself.

A channel is a *seeded* object. Calling it carries one message (``bytes``) and returns a
:class:`Received`; successive calls continue the channel's random stream (like an RNG),
and :meth:`Channel.reset` -- or constructing the channel again with the same seed --
replays exactly the same outputs for the same inputs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from semcom.codec.varint import as_bytes
from semcom.errors import InputError

__all__ = ["Channel", "Received", "format_value"]

MAX_SEED = 2**63 - 1


@dataclass
class Received:
    """What the receiver gets from one use of a channel.

    Attributes
    ----------
    data : bytes
        The bytes as received. Same length as sent (erased bytes are zero, flipped bits
        stay flipped), except for channels that truncate (byte budget).
    erasures : list[tuple[int, int]]
        Half-open byte ranges ``[start, stop)`` of the *sent* message that the receiver
        knows were lost, sorted and non-overlapping. Errors the receiver cannot see
        (bit flips) are not listed.
    channel_bytes : int
        Bytes put on the channel for this message, overhead (packet headers, CRCs,
        FEC parity, padding) included.
    info : dict
        JSON-serialisable diagnostics for the experiment log (e.g. measured bit error
        rate, packets lost). Simulation-side knowledge: a receiver must not use it.
    """

    data: bytes
    erasures: list[tuple[int, int]] = field(default_factory=list)
    channel_bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)


def format_value(value: Any) -> str:
    """Format a parameter for a channel's ``name``: short, readable, unambiguous.

    Small floats use exponent notation (``1e-04``), others up to 4 significant digits.
    """
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{exponent}"
    return f"{value:.4g}"


def check_seed(seed: Any) -> int:
    """Validate a channel seed: an ``int`` in ``[0, 2**63)``; raises ``InputError``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"channel seed must be an integer, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"channel seed must be in [0, 2**63), got {seed}")
    return seed


def check_probability(name: str, value: Any, high: float = 1.0) -> float:
    """Validate a probability-like float in ``[0, high]``; raises ``InputError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= high:
        raise InputError(f"{name} must be in [0, {format_value(high)}], got {value!r}")
    return value


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Validate an integer in ``[low, high]``; raises ``InputError``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise InputError(f"{name} must be {bound}, got {value}")
    return value


class Channel(ABC):
    """Base class of every channel.

    Subclasses set ``kind`` (the spec keyword, e.g. ``"bsc"``), implement
    :meth:`_transmit` and :meth:`params`, and draw all randomness from ``self.rng``
    (or from generators they rebuild in :meth:`reset`).

    Parameters
    ----------
    seed : int
        Seed of the channel's random stream, in ``[0, 2**63)``.

    Input
    -----
    data : bytes
        The message, length ``L``.

    Output
    ------
    :class:`Received`. Every channel takes this input; the ``Output`` section of each
    subclass says what its ``Received`` holds.
    """

    kind: ClassVar[str] = "channel"

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)
        self.rng: np.random.Generator
        self.reset()

    def reset(self) -> None:
        """Restart the random stream from ``seed`` (replays the same outputs)."""
        self.rng = np.random.default_rng(self.seed)

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The channel's settings (JSON-serialisable), without ``type`` and ``seed``."""

    @abstractmethod
    def _transmit(self, data: bytes) -> Received:
        """Carry one message; ``data`` is already validated ``bytes``."""

    def __call__(self, data: bytes) -> Received:
        return self._transmit(as_bytes(data, "a channel carries bytes"))

    @property
    def name(self) -> str:
        """Short readable label, e.g. ``"bsc(ber=1e-04)"`` (no seed)."""
        params = self.name_params()
        if not params:
            return self.kind
        inner = ",".join(f"{k}={format_value(v)}" for k, v in params.items())
        return f"{self.kind}({inner})"

    def name_params(self) -> dict[str, Any]:
        """The settings shown in :attr:`name` (default: all of :meth:`params`)."""
        return self.params()

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings; ``create_channel(ch.config())`` rebuilds the channel."""
        return {"type": self.kind, **self.params(), "seed": self.seed}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in {**self.params(), "seed": self.seed}.items())
        return f"{type(self).__name__}({inner})"
