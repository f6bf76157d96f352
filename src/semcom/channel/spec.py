"""Channel specs: build a channel from a short string or a config dict.

String grammar: ``KIND[:ARG[(:|,)ARG...]]`` where each ``ARG`` is a positional value or
``key=value`` (positional values first). Also accepted: the ``name`` form
``KIND(key=value,...)``. Examples::

    ideal
    budget:500                      budget:max_bytes=500
    bsc:1e-4                        bsc(ber=1e-04)
    erasure:0.1                     erasure:0.1:64        erasure:0.1,64,burst=4,ber=1e-5
    awgn:snr_db=5,qam=16,ldpc=0.5   rayleigh:ebno_db=10,qam=4,block=32,backend=torch

Dict form: ``{"type": KIND, key: value, ..., "seed": int}`` -- what ``Channel.config()``
returns, so ``create_channel(ch.config())`` rebuilds ``ch``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from semcom.errors import InputError

if TYPE_CHECKING:
    from semcom.channel.base import Channel

__all__ = ["CHANNEL_KINDS", "EXAMPLES", "create_channel", "help_text", "parse_spec",
           "register_channel", "split_channel_list"]  # fmt: skip


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"{key} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{key} must be finite, got {value!r}")
    return out


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InputError(f"{key} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputError(f"{key} must be an integer, got {value!r}")


def _to_rate(key: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off")):
        return None
    rate = _to_float(key, value)
    return None if rate == 0 else rate


def _to_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"{key} must be a string, got {value!r}")
    return value.strip().lower()


Converter = Callable[[str, Any], Any]
_PHYSICAL_KEYS: dict[str, Converter] = {
    "snr_db": _to_float,
    "ebno_db": _to_float,
    "qam": _to_int,
    "ldpc": _to_rate,
    "n": _to_int,
    "iters": _to_int,
    "backend": _to_str,
}

# kind -> (positional parameter order, parameter converters)
CHANNEL_KINDS: dict[str, tuple[tuple[str, ...], dict[str, Converter]]] = {
    "ideal": ((), {}),
    "budget": (("max_bytes",), {"max_bytes": _to_int}),
    "bsc": (("ber",), {"ber": _to_float}),
    "erasure": (
        ("loss", "packet_size"),
        {"loss": _to_float, "packet_size": _to_int, "burst": _to_float, "ber": _to_float},
    ),
    "awgn": ((), _PHYSICAL_KEYS),
    "rayleigh": ((), {**_PHYSICAL_KEYS, "block": _to_int}),
}

#: Kinds added with :func:`register_channel`: kind -> ``factory(seed=..., **params)``.
_REGISTERED: dict[str, Callable[..., Channel]] = {}


def register_channel(
    kind: str,
    factory: Callable[..., Channel],
    positional: tuple[str, ...] = (),
    converters: Mapping[str, Converter] | None = None,
) -> None:
    """Make ``KIND[:ARG...]`` specs build ``factory(seed=seed, **params)``.

    ``positional`` is the order of positional arguments; ``converters`` maps each
    parameter name to a ``(name, text) -> value`` function that raises InputError on a bad
    value (default: every positional parameter as a float). The kind then works
    everywhere a channel spec does (``--channels``, ``create_channel``, ``semcom
    channels``). Registering a built-in or taken kind raises ValueError.
    """
    kind = kind.strip().lower()
    if not re.fullmatch(r"[a-z_]\w*", kind):
        raise ValueError(f"channel kind must be an identifier, got {kind!r}")
    if kind in CHANNEL_KINDS:
        raise ValueError(f"channel kind {kind!r} is already taken")
    conv = dict(converters) if converters is not None else {k: _to_float for k in positional}
    CHANNEL_KINDS[kind] = (tuple(positional), conv)
    _REGISTERED[kind] = factory


_NAME_FORM = re.compile(r"^([A-Za-z_]\w*)\((.*)\)$")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split a spec string into its kind and converted parameters.

    Input
    -----
    spec : str, e.g. ``"erasure:0.1:64"``

    Output
    ------
    (kind, params) : ``("erasure", {"loss": 0.1, "packet_size": 64})``

    Raises
    ------
    InputError
        Unknown kind or parameter, malformed or repeated argument, value of wrong type.
    """
    if not isinstance(spec, str):
        raise InputError(f"channel spec must be a string or dict, got {type(spec).__name__}")
    text = spec.strip()
    match = _NAME_FORM.match(text)
    if match:
        text = f"{match.group(1)}:{match.group(2)}" if match.group(2) else match.group(1)
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in CHANNEL_KINDS:
        raise InputError(f"unknown channel {kind!r} in spec {spec!r}; known: {list(CHANNEL_KINDS)}")
    positional, converters = CHANNEL_KINDS[kind]
    raw: dict[str, Any] = {}
    tokens = re.split(r"[,:]", rest) if sep else []
    seen_keyword = False
    for index, token in enumerate(tokens):
        token = token.strip()
        if not token:
            raise InputError(f"empty argument in channel spec {spec!r}")
        if "=" in token:
            key, _, value = token.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not key or not value:
                raise InputError(f"malformed argument {token!r} in channel spec {spec!r}")
            seen_keyword = True
        else:
            if seen_keyword:
                raise InputError(f"positional value {token!r} after key=value in {spec!r}")
            if index >= len(positional):
                raise InputError(
                    f"too many positional values in channel spec {spec!r} "
                    f"({kind} takes {list(positional) or 'none'})"
                )
            key, value = positional[index], token
        if key in raw:
            raise InputError(f"{key} given twice in channel spec {spec!r}")
        raw[key] = value
    return kind, _convert(kind, raw, converters, spec)


def _convert(
    kind: str, raw: Mapping[str, Any], converters: dict[str, Converter], spec: Any
) -> dict[str, Any]:
    out = {}
    for key, value in raw.items():
        if key not in converters:
            raise InputError(
                f"unknown parameter {key!r} for channel {kind!r} in {spec!r}; "
                f"known: {list(converters)}"
            )
        out[key] = converters[key](key, value)
    return out


def create_channel(spec: str | Mapping[str, Any], seed: int | None = None) -> Channel:
    """Build a seeded channel from a spec string or config dict.

    Input
    -----
    spec : str or dict
        See the module docstring. A dict may carry ``"seed"``.
    seed : int or None
        Seed of the channel; ``None`` means the dict's ``"seed"`` if any, else 0.

    Output
    ------
    :class:`~semcom.channel.base.Channel`

    Raises
    ------
    InputError
        Malformed spec, unknown kind/parameter, value out of range, or a physical
        channel with ``backend="sionna"`` when Sionna is not installed.
    """
    if isinstance(spec, Mapping):
        params = dict(spec)
        kind = params.pop("type", params.pop("kind", None))
        if not isinstance(kind, str) or kind.strip().lower() not in CHANNEL_KINDS:
            raise InputError(f"channel dict needs 'type' in {list(CHANNEL_KINDS)}, got {kind!r}")
        kind = kind.strip().lower()
        dict_seed = params.pop("seed", None)
        if seed is None and dict_seed is not None:
            seed = dict_seed
        params = _convert(kind, params, CHANNEL_KINDS[kind][1], spec)
    else:
        kind, params = parse_spec(spec)
    seed = 0 if seed is None else seed
    if kind in _REGISTERED:
        return _REGISTERED[kind](seed=seed, **params)

    # the channel classes (numpy) are imported here, so that parsing specs and
    # `semcom channels` (help_text) stay light
    from semcom.channel.bsc import BinarySymmetricChannel
    from semcom.channel.budget import ByteBudgetChannel
    from semcom.channel.erasure import PacketErasureChannel
    from semcom.channel.ideal import IdealChannel

    if kind == "ideal":
        return IdealChannel(seed=seed)
    if kind == "budget":
        if "max_bytes" not in params:
            raise InputError("budget channel needs max_bytes, e.g. 'budget:500'")
        return ByteBudgetChannel(seed=seed, **params)
    if kind == "bsc":
        if "ber" not in params:
            raise InputError("bsc channel needs ber, e.g. 'bsc:1e-4'")
        return BinarySymmetricChannel(seed=seed, **params)
    if kind == "erasure":
        if "loss" not in params:
            raise InputError("erasure channel needs loss, e.g. 'erasure:0.1' or 'erasure:0.1:64'")
        return PacketErasureChannel(seed=seed, **params)
    from semcom.channel.physical import PhysicalChannel

    return PhysicalChannel(fading=kind, seed=seed, **params)


def split_channel_list(text: str) -> list[str]:
    """Split a comma-separated list of channel specs (what ``--channels`` takes).

    A comma also separates a spec's own arguments (``erasure:0.1,64,burst=4``), so a new
    spec starts only at a comma followed by a channel kind (``ideal``, ``bsc``, ...);
    commas inside ``kind(...)`` never split. ``"ideal,erasure:0.1,64,bsc:1e-4"`` ->
    ``["ideal", "erasure:0.1,64", "bsc:1e-4"]``. Each spec is then checked by
    :func:`parse_spec` (InputError on the first bad one).
    """
    pieces, depth, cur = [], 0, ""
    for ch in str(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            pieces.append(cur)
            cur = ""
        else:
            cur += ch
    pieces.append(cur)
    specs: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        head = re.split(r"[:(]", piece, maxsplit=1)[0].strip().lower()
        continues = "=" in piece or re.fullmatch(r"[-+.\deE]+", piece) is not None
        if head in CHANNEL_KINDS or not specs or not continues:
            specs.append(piece)  # a new spec (an unknown kind is named by parse_spec)
        else:
            specs[-1] += "," + piece  # an argument of the spec before: 64, burst=4
    for spec in specs:
        parse_spec(spec)
    return specs


#: ``(spec, what it is)``: the examples ``semcom channels`` shows (a test parses each).
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("ideal", "every byte arrives"),
    ("budget:500", "each message cut after 500 bytes"),
    ("bsc:1e-4", "each bit flips with probability 1e-4"),
    ("erasure:0.05:128", "128-byte packets with CRCs, 5 % lost"),
    ("erasure:0.1,64,burst=4,ber=1e-5", "bursty losses of 64-byte packets + bits"),
    ("awgn:snr_db=5,qam=16", "16-QAM over AWGN at 5 dB SNR"),
    ("awgn:ebno_db=2,qam=4,ldpc=0.5", "QPSK, rate-1/2 5G LDPC, Eb/N0 2 dB"),
    ("rayleigh:snr_db=10,qam=64,block=32", "Rayleigh block fading, 64-QAM"),
    ("bsc(ber=1e-3)", "the KIND(key=value,...) form"),
)


def help_text() -> str:
    """What ``semcom channels`` prints: the grammar, every kind with its parameters, and
    examples that ``--channels`` accepts (plain text, no markup)."""
    lines = [
        "A channel spec is KIND, or KIND:ARG:ARG... where an ARG is a value (in the order",
        "below) or key=value; arguments may also be separated by commas, or written as",
        "KIND(key=value,...). --channels takes several specs separated by commas.",
        "",
        "Kinds and their parameters (positional order first):",
    ]
    for kind, (positional, converters) in CHANNEL_KINDS.items():
        keys = list(positional) + [k for k in converters if k not in positional]
        lines.append(f"  {kind:<9} {', '.join(keys) if keys else '(none)'}")
    lines += ["", "Examples:"]
    width = max(len(spec) for spec, _ in EXAMPLES)
    lines += [f"  {spec:<{width}}  {what}" for spec, what in EXAMPLES]
    lines += [
        "",
        "Example: semcom bench --channels ideal,bsc:1e-4,erasure:0.05:128",
        "",
        "awgn and rayleigh run on Sionna's PHY by default (backend=sionna, the 'phy'",
        "extra: LDPC, soft demapping); backend=torch is plain torch, uncoded, with",
        "nearest-point decisions.",
    ]
    return "\n".join(lines)
