"""The scheme contract: a transmitter/receiver pair registered by name.

A scheme's transmitter turns one image into a :class:`~semcom.schemes.session.Transmission`
(zero, one or several messages: bytes, each the whole container) and its receiver, a
stateful :class:`~semcom.schemes.session.Receiver`, turns the messages it gets into a
:class:`~semcom.schemes.session.Decoded` after each. Byte counts are the sum of
``len(message)`` over the session.

Single-message schemes (every codec) implement the CompressAI-like pair
``compress(image, rate) -> bytes`` / ``decompress(bytes) -> Decoded``; the base class
adapts them to sessions. Multi-message or zero-message schemes override
:meth:`Scheme.transmit` and :meth:`Scheme.open_receiver` instead.

Shapes and dtypes:
    image  : ``torch.uint8`` ``(3, H, W)``
    answers: see :mod:`semcom.schemes.session` (``x_hat``, ``logits``, ``segmentation``, ``text``)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from semcom.errors import BitstreamError, InputError
from semcom.schemes.session import Decoded, Erasures, Receiver, Transmission
from semcom.vocabulary import OUTPUTS, ROLES


class Scheme:
    """Base class of every transmitter/receiver pair.

    Subclasses set ``name`` (registry key), ``outputs`` (what the receiver produces: a
    subset of :data:`~semcom.schemes.session.OUTPUTS`; the sweep scores ``logits`` and
    ``segmentation`` directly and passes ``x_hat`` to the judges), ``role`` (``baseline``,
    ``proposed`` or ``reference``: how the report compares it), ``family`` (schemes of one
    family are variants of one system), ``rate_unit`` (what ``rate`` means) and
    ``default_rates`` (the sweep's rate settings, low to high).
    """

    name: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ("x_hat",)
    role: ClassVar[str] = "proposed"
    family: ClassVar[str] = ""
    rate_unit: ClassVar[str] = "bytes"
    #: What a rate setting may be, in words (``semcom schemes`` shows it).
    rate_range: ClassVar[str] = ""
    default_rates: ClassVar[tuple[float, ...]] = ()

    _label: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        bad = [o for o in cls.outputs if o not in OUTPUTS]
        if bad or not cls.outputs:
            raise TypeError(f"{cls.__name__}.outputs must be a non-empty subset of {OUTPUTS}")
        if cls.role not in ROLES:
            raise TypeError(f"{cls.__name__}.role must be one of {ROLES}, got {cls.role!r}")

    @property
    def label(self) -> str:
        """Display name in results: the spec it was built from (``create_scheme``), or its
        ``label=`` option, else the registry name."""
        return self._label or self.name

    @property
    def family_name(self) -> str:
        """``family``, or the registry name when the class sets none."""
        return self.family or self.name

    def validate_rate(self, rate: float) -> float:
        """Return ``rate`` if it is a valid setting for this scheme, else raise InputError."""
        return rate

    def unavailable_reason(self) -> str | None:
        """Why this scheme cannot run here (missing zoo weights, codec), or None if it can."""
        return None

    def rate_label(self, rate: float) -> str:
        """Short human label of a rate setting (for tables and plots)."""
        return f"{rate:g} {self.rate_unit}"

    def settings(self, rate: float) -> dict[str, Any]:
        """JSON-able description of this scheme at ``rate`` (stored in result records)."""
        return {"rate": rate, "rate_unit": self.rate_unit}

    def cost(self, rate: float) -> dict[str, float]:
        """Costs other than bytes at ``rate``, by name (e.g. a paper's patch fraction);
        stored in result records next to the real byte counts."""
        return {}

    def measured_cost(self, rate: float, transmissions: Sequence[Transmission]) -> dict[str, float]:
        """The costs of a sweep point, from what the transmitter did with every image
        (``Transmission.stats``); by default :meth:`cost`, which depends on ``rate``
        only. Schemes whose cost depends on the images (an edge that offloads some of
        them) override this."""
        return self.cost(rate)

    # ------------------------------------------------------------ single-message pair
    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        """Transmitter of a single-message scheme: ``image`` uint8 ``(3, H, W)`` -> message
        bytes (whole container)."""
        raise NotImplementedError(f"{self.name} sends sessions: use transmit()")

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> Decoded:
        """Receiver of a single-message scheme: message bytes -> :class:`Decoded`.

        ``erasures`` lists byte ranges the channel reported lost. Raises
        :class:`~semcom.errors.BitstreamError` when nothing usable survived.
        """
        raise NotImplementedError(f"{self.name} receives sessions: use open_receiver()")

    def compress_batch(self, images: torch.Tensor, rate: float) -> list[bytes]:
        """``images`` uint8 ``(N, 3, H, W)`` -> N messages. Override to vectorise."""
        return [self.compress(img, rate) for img in images]

    def decompress_batch(
        self, messages: Sequence[bytes], erasures: Sequence[Erasures] | None = None
    ) -> list[Decoded | BitstreamError]:
        """Decode many messages; a message that fails comes back as its BitstreamError
        (not raised), so one bad message does not stop the batch. Override to vectorise."""
        out: list[Decoded | BitstreamError] = []
        for i, data in enumerate(messages):
            try:
                out.append(self.decompress(data, erasures=erasures[i] if erasures else ()))
            except BitstreamError as e:
                out.append(e)
        return out

    # ------------------------------------------------------------------- sessions
    @property
    def single_message(self) -> bool:
        """True when the scheme is a compress/decompress pair (one message per image)."""
        return type(self).transmit is Scheme.transmit

    def transmit(self, image: torch.Tensor, rate: float) -> Transmission:
        """Transmitter: ``image`` uint8 ``(3, H, W)`` -> the session's messages (here: the
        one message :meth:`compress` makes)."""
        return Transmission([self.compress(image, rate)])

    def transmit_batch(self, images: torch.Tensor, rate: float) -> list[Transmission]:
        """``images`` uint8 ``(N, 3, H, W)`` -> N transmissions (vectorised through
        :meth:`compress_batch` for single-message schemes)."""
        if self.single_message:
            return [Transmission([m]) for m in self.compress_batch(images, rate)]
        return [self.transmit(img, rate) for img in images]

    def open_receiver(self) -> Receiver:
        """A fresh receiver for one session (here: :meth:`decompress` per message)."""
        return SingleMessageReceiver(self)


class SingleMessageReceiver(Receiver):
    """The session adapter of a single-message scheme: ``scheme.decompress`` per message."""

    def __init__(self, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme

    def receive(self, data: bytes, erasures: Erasures = ()) -> Decoded:
        return self.accept(self.scheme.decompress(data, erasures=erasures))


def parse_each(
    parse: Callable[[bytes, Erasures], Decoded],
    messages: Sequence[bytes],
    erasures: Sequence[Erasures] | None,
) -> tuple[list[Decoded | BitstreamError], list[int]]:
    """``parse(message, erasures)`` of every message: the results (a message's
    BitstreamError in its place, not raised) and the positions of those that parsed --
    the first half of a batched receiver, before its one model call."""
    if erasures is None:
        erasures = [()] * len(messages)
    if len(erasures) != len(messages):
        raise InputError(f"{len(erasures)} erasure lists for {len(messages)} messages")
    results: list[Decoded | BitstreamError] = []
    good: list[int] = []
    for data, er in zip(messages, erasures, strict=True):
        try:
            results.append(parse(data, er))
            good.append(len(results) - 1)
        except BitstreamError as exc:
            results.append(exc)
    return results, good


def receive_all(
    scheme: Scheme,
    receivers: Sequence[Receiver],
    data: Sequence[bytes],
    erasures: Sequence[Erasures],
    lazy: bool = False,
) -> list[Decoded | BitstreamError]:
    """One message to each of ``receivers`` (``data[i]`` to ``receivers[i]``); a message that
    fails comes back as its BitstreamError (not raised). Single-message receivers of
    ``scheme`` are decoded together through ``scheme.decompress_batch`` (vectorised); a
    scheme with a ``receive_many(receivers, data, erasures, lazy)`` (the progressive text
    scheme: one batched generation per step) serves its own receivers with it.
    ``lazy``: the caller needs each step's ``satisfied`` only, and the final answers
    after :func:`settle_all`; such a scheme may defer the work of drawing answers."""
    if all(isinstance(r, SingleMessageReceiver) and r.scheme is scheme for r in receivers):
        results = scheme.decompress_batch(list(data), list(erasures))
        for rx, res in zip(receivers, results, strict=True):
            if not isinstance(res, BaseException):
                rx.accept(res)
        return results
    many = getattr(scheme, "receive_many", None)
    if many is not None and all(getattr(r, "scheme", None) is scheme for r in receivers):
        return many(receivers, data, erasures, lazy=lazy)
    out: list[Decoded | BitstreamError] = []
    for rx, d, e in zip(receivers, data, erasures, strict=True):
        try:
            out.append(rx.receive(d, e))
        except BitstreamError as exc:
            out.append(exc)
    return out


def run_session(
    scheme: Scheme, image: torch.Tensor, rate: float, channel: Any = None
) -> tuple[Transmission, Decoded]:
    """One image through ``scheme``'s transmitter, (optionally) a channel, and a fresh
    receiver, stopping when the receiver is satisfied: the transmission and the final
    answer (the sender's own answer when nothing was sent; an empty :class:`Decoded`
    when nothing usable arrived). A byte budget the scheme cannot meet sends its
    smallest message (:class:`~semcom.errors.BudgetError`)."""
    from semcom.errors import BudgetError

    try:
        tx = scheme.transmit(image, rate)
    except BudgetError as exc:
        tx = Transmission([exc.message])
    receiver = scheme.open_receiver()
    sent = []
    for data in tx.messages:
        sent.append(data)
        rx = channel(data) if channel is not None else None
        try:
            step = receiver.receive(rx.data if rx else data, rx.erasures if rx else ())
        except BitstreamError:
            continue
        if step.satisfied and not scheme.single_message:
            break
    final = final_answer(receiver, tx) or Decoded(satisfied=False)
    return Transmission(sent, tx.local, dict(tx.stats)), final


def settle_all(scheme: Scheme, receivers: Sequence[Receiver]) -> None:
    """Complete the answers :func:`receive_all` deferred with ``lazy`` (a scheme's
    ``settle_many``, batched; nothing for the others)."""
    settle = getattr(scheme, "settle_many", None)
    if settle is not None and receivers:
        settle(receivers)


def final_answer(receiver: Receiver, tx: Transmission) -> Decoded | None:
    """A session's answer: the receiver's latest, else (nothing sent, or nothing usable
    arrived) the sender's own ``tx.local``, else None. A deferred answer (``lazy``) is
    completed here when :func:`settle_all` has not done it."""
    return receiver.result() if receiver.latest is not None else tx.local


def scheme_options(cls: type) -> list[tuple[str, Any, str]]:
    """``(option, default, help)`` of each constructor option of a scheme class.

    The options are the keyword parameters of the first ``__init__`` in the class's MRO
    that names them (variants that forward ``**kwargs`` show their base's); the help is
    the option's entry in the ``Args:`` section of that class's docstring, on one line.
    """
    import inspect

    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = [
            p
            for p in inspect.signature(init).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if params:
            docs = _arg_docs(klass.__doc__ or "")
            fixed = getattr(cls, "fixed_options", ())
            return [
                (p.name, None if p.default is p.empty else p.default, docs.get(p.name, ""))
                for p in params
                if p.name not in fixed
            ]
    return []


def _arg_docs(doc: str) -> dict[str, str]:
    """Google-style ``Args:`` entries of a docstring: name -> text on one line (entries
    naming several options, ``img_size, patch_size: ...``, give the text to each)."""
    import re

    lines = doc.expandtabs().splitlines()
    out: dict[str, str] = {}
    inside, indent, current = False, 0, []
    for line in lines:
        if line.strip() == "Args:":
            inside, indent, current = True, -1, []
            continue
        if not inside:
            continue
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent < 0:
            indent = depth
        if depth < indent:
            break
        match = re.match(r"^\s*([\w, ]+):\s*(.*)$", line) if depth == indent else None
        if match:
            current = [n.strip() for n in match.group(1).split(",") if n.strip()]
            for name in current:
                out[name] = match.group(2).strip()
        else:
            for name in current:
                out[name] = f"{out[name]} {line.strip()}".strip()

    def plain(text: str) -> str:  # RST roles and literals -> plain words
        text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
        return " ".join(text.replace("``", "").split())

    return {k: plain(v) for k, v in out.items()}


_SCHEMES: dict[str, Callable[..., Scheme]] = {}


def register_scheme(name: str) -> Callable[[type[Scheme]], type[Scheme]]:
    """Class decorator: make a scheme available as ``create_scheme(name)``."""

    def wrap(cls: type[Scheme]) -> type[Scheme]:
        if name in _SCHEMES:
            raise ValueError(f"scheme {name!r} registered twice")
        _SCHEMES[name] = cls
        return cls

    return wrap


def register_variant(base: type[Scheme], name: str, doc: str, **attrs: Any) -> type[Scheme]:
    """Register ``name``: a subclass of ``base`` that only sets class attributes (``name``
    and ``attrs``), documented by ``doc`` (e.g. each Pillow codec, each patch selection)."""
    words = "".join(w.capitalize() for w in name.replace("-", " ").replace("_", " ").split())
    cls = type(f"{words}Scheme", (base,), {"name": name, "__doc__": doc, **attrs})
    cls.__module__ = base.__module__
    return register_scheme(name)(cls)


_RECEIVERS: dict[str, Callable[..., Scheme]] = {}


def register_receiver(wire_name: str, factory: Callable[..., Scheme]) -> None:
    """Decode messages whose container names ``wire_name`` with ``factory()`` (for schemes
    whose variants share one wire format, e.g. every ``patch-*`` scheme writes "patch")."""
    if wire_name in _RECEIVERS:
        raise ValueError(f"receiver {wire_name!r} registered twice")
    _RECEIVERS[wire_name] = factory


def create_receiver(wire_name: str, **kwargs: Any) -> Scheme:
    """The scheme that decodes messages whose container names ``wire_name`` (the registered
    receiver, else the scheme of that name); unknown names raise InputError."""
    factory = _RECEIVERS.get(wire_name)
    if factory is None:
        return create_scheme(wire_name, **kwargs)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise InputError(f"receiver {wire_name!r}: {exc}") from None


def list_schemes() -> list[str]:
    """Names of every registered scheme, sorted."""
    return sorted(_SCHEMES)


def _spec_value(text: str) -> Any:
    """An option value of a scheme spec: int, float, bool, none, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_scheme_spec(spec: str) -> tuple[str, dict[str, Any], str | None]:
    """Split ``"name[key=value,...]"`` into ``(name, options, label)``.

    Values become int / float / bool / None where they read as one (else str); the
    ``label=`` option names the configuration in results (default: the spec without its
    ``rates=`` option, when other options remain).
    ``"patch-mean[pixels=webp:75,label=patch-webp]"`` ->
    ``("patch-mean", {"pixels": "webp:75"}, "patch-webp")``. Malformed specs raise
    InputError.
    """
    text = str(spec).strip()
    if "[" not in text:
        if "]" in text or not text:
            raise InputError(f"malformed scheme spec {spec!r}")
        return text, {}, None
    name, _, rest = text.partition("[")
    if not rest.endswith("]") or "[" in rest[:-1] or "]" in rest[:-1] or not name:
        raise InputError(f"malformed scheme spec {spec!r}; expected name[key=value,...]")
    options: dict[str, Any] = {}
    shown: list[str] = []
    for item in filter(None, (p.strip() for p in rest[:-1].split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise InputError(f"scheme spec {spec!r}: option {item!r} is not key=value")
        if key in options:
            raise InputError(f"scheme spec {spec!r}: option {key!r} given twice")
        options[key] = _spec_value(value.strip())
        if key not in ("label", "rates"):
            shown.append(f"{key}={value.strip()}")
    label = options.pop("label", None)
    if label is not None:
        label = str(label)
    elif shown:
        label = f"{name.strip()}[{','.join(shown)}]"
    return name.strip(), options, label


def split_scheme_list(text: str) -> list[str]:
    """Split a comma-separated list of scheme specs; commas inside ``[...]`` stay."""
    out, depth, cur = [], 0, []
    for ch in str(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [s for s in out if s]


def create_scheme(name: str, **kwargs: Any) -> Scheme:
    """Build a registered scheme from its name or spec ``"name[key=value,...]"``.

    Spec options (see :func:`parse_scheme_spec`) are constructor keyword arguments;
    ``kwargs`` override them. The option ``rates=a/b/c`` replaces the scheme's
    ``default_rates`` (the sweep's settings), e.g. ``"jpeg[rates=300/500/900]"``.
    Unknown names and bad options raise InputError.
    """
    base, options, label = parse_scheme_spec(name)
    rates = options.pop("rates", None)
    try:
        factory = _SCHEMES[base]
    except KeyError:
        raise InputError(
            f"unknown scheme {base!r}; known schemes: {', '.join(list_schemes())}"
        ) from None
    try:
        scheme = factory(**{**options, **kwargs})
    except TypeError as exc:  # an option the constructor does not take
        raise InputError(f"scheme {name!r}: {exc}") from None
    if label is not None:
        scheme._label = label
    if rates is not None:
        parts = str(rates).split("/")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise InputError(f"scheme {name!r}: rates must be numbers joined by '/'") from None
        scheme.default_rates = tuple(scheme.validate_rate(v) for v in values)  # type: ignore[misc]
    return scheme
