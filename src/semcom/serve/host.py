"""The receivers a server hosts, and what it answers about a decoded message.

:class:`ReceiverHost` maps a message's scheme id (the container's ``scheme`` field) to a
receiving scheme: the ones configured (``--scheme SPEC``, e.g. ``collab[server=ckpt]``),
else -- when none are configured -- the registered receiver of that id with its
defaults (zoo models). :meth:`ReceiverHost.decode` decodes many messages at once (one
``decompress_batch`` per scheme id: the dynamic batcher's model call) and turns each
into an :class:`Answer` or the exception that message raised.

An answer's label comes from the receiver's own logits (collaborative server,
classifiers), else from the host's judge on the reconstruction (``judge=``, by default
the zoo's ``shape-classifier`` when the zoo has it), else there is none (a
reconstruction without a judge: the answer says so).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from semcom.errors import BitstreamError, InputError
from semcom.schemes.base import Scheme
from semcom.schemes.session import Decoded

__all__ = ["Answer", "ReceiverHost", "UnknownScheme", "wire_name"]


class UnknownScheme(InputError):
    """A message names a scheme this server does not host (answered 404)."""


def wire_name(scheme: Scheme) -> str:
    """The scheme id the containers of ``scheme`` carry."""
    return str(getattr(scheme, "wire_name", None) or scheme.name)


@dataclass
class Answer:
    """What the server says of one message (JSON-able through :meth:`to_json`)."""

    scheme: str
    bytes: int
    label: int | None = None
    name: str | None = None
    confidence: float | None = None
    by: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    model_ms: float = 0.0
    batch: int = 1
    satisfied: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scheme": self.scheme, "bytes": self.bytes}
        if self.label is not None:
            out.update(label=self.label, confidence=self.confidence, by=self.by)
            if self.name is not None:
                out["class"] = self.name
        out.update(self.extra)
        if self.stats:
            out["stats"] = self.stats
        out["satisfied"] = self.satisfied
        out["batch"] = self.batch
        return out


class ReceiverHost:
    """Receivers by scheme id, a judge for reconstructions, class names.

    Args:
        schemes: scheme specs to host (their wire names must differ); empty: every
            registered receiver, built with its defaults on first use.
        judge: judge spec for reconstructions; ``"auto"``: the zoo's
            ``shape-classifier`` when present; ``None``: no judge.
        labels: class names (index = class id) for the answers, or None (the synthetic
            world's names when the class count matches them).
    """

    def __init__(
        self,
        schemes: Sequence[str] = (),
        judge: str | None = "auto",
        labels: Sequence[str] | None = None,
    ) -> None:
        from semcom.schemes import create_scheme

        self._lock = threading.Lock()
        self._schemes: dict[str, Scheme] = {}
        for spec in schemes:
            s = create_scheme(spec)
            w = wire_name(s)
            if w in self._schemes:
                raise InputError(f"two hosted schemes write {w!r} messages: host one of them")
            self._schemes[w] = s
        self.open_catalogue = not schemes
        self._judge_spec = judge
        self._judge: Any = None
        self._judge_ready = False
        self.labels = list(labels) if labels is not None else None

    # ------------------------------------------------------------------ lookup
    def hosted(self) -> list[str]:
        """Scheme ids answered: the configured ones, or ``["*"]`` (any registered)."""
        return sorted(self._schemes) if not self.open_catalogue else ["*", *sorted(self._schemes)]

    def scheme(self, wire: str) -> Scheme:
        """The scheme that decodes ``wire`` messages (UnknownScheme when not hosted)."""
        with self._lock:
            s = self._schemes.get(wire)
            if s is not None:
                return s
            if not self.open_catalogue:
                raise UnknownScheme(
                    f"this server does not host {wire!r} messages (it hosts "
                    f"{', '.join(sorted(self._schemes))})"
                )
            from semcom.schemes import create_receiver

            try:
                s = create_receiver(wire)
            except InputError as exc:
                raise UnknownScheme(f"unknown scheme id {wire!r}: {exc}") from None
            reason = s.unavailable_reason()
            if reason:
                raise UnknownScheme(f"{wire!r} messages cannot be decoded here: {reason}")
            self._schemes[wire] = s
            return s

    def warm(self) -> None:
        """Load the configured schemes' receiving models and the judge now, not at the
        first request."""
        for s in list(self._schemes.values()):
            if getattr(s, "_decoder_spec", None) is not None:
                s.decoder  # noqa: B018 - loads it
        self.judge()

    def judge(self) -> Any:
        """The reconstruction judge (built once), or None."""
        if not self._judge_ready:
            spec = self._judge_spec
            if spec == "auto":
                from semcom.models.zoo import list_zoo

                spec = "shape-classifier" if "shape-classifier" in list_zoo() else None
            if spec:
                from semcom.judges import create_judge

                j = create_judge(spec)
                if j.yields != "logits":
                    raise InputError(f"--judge {spec}: the server's judge must classify")
                self._judge = j
            self._judge_ready = True
        return self._judge

    def class_name(self, label: int, num_classes: int) -> str | None:
        """The name of class ``label`` out of ``num_classes``, when known."""
        names = self.labels
        if names is None:
            from semcom.data.synthetic import CLASS_NAMES

            names = list(CLASS_NAMES) if len(CLASS_NAMES) == num_classes else None
        return names[label] if names is not None and 0 <= label < len(names) else None

    # ------------------------------------------------------------------ decode
    def decode(self, items: Sequence[tuple[str, bytes]]) -> list[Answer | Exception]:
        """Decode ``(scheme id, message)`` pairs, one batch per scheme id; each result
        is the message's :class:`Answer` or the exception it raised."""
        out: list[Answer | Exception | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for i, (wire, _) in enumerate(items):
            groups.setdefault(wire, []).append(i)
        for wire, idx in groups.items():
            t0 = time.perf_counter()
            try:
                scheme = self.scheme(wire)
                if not scheme.single_message and not hasattr(scheme, "decompress_batch"):
                    raise InputError(f"{wire} sends sessions: open one at /v1/sessions")
                results = scheme.decompress_batch([items[i][1] for i in idx])
                answers = self.answers(wire, [items[i][1] for i in idx], results, len(idx))
            except Exception as exc:  # noqa: BLE001 - each message learns why
                answers = [exc] * len(idx)
            ms = (time.perf_counter() - t0) * 1000.0
            for a in answers:
                if isinstance(a, Answer):
                    a.model_ms = ms
            for i, a in zip(idx, answers, strict=True):
                out[i] = a
        return [a if a is not None else RuntimeError("not decoded") for a in out]

    def answers(
        self,
        wire: str,
        messages: Sequence[bytes],
        results: Sequence[Decoded | BitstreamError],
        batch: int,
    ) -> list[Answer | Exception]:
        """:class:`Answer` of each decoded message (the judge runs once on the batch's
        reconstructions that have no logits of their own)."""
        out: list[Answer | Exception] = []
        need_judge: list[tuple[int, Decoded]] = []
        for data, res in zip(messages, results, strict=True):
            if isinstance(res, BaseException):
                out.append(res)
                continue
            a = Answer(scheme=wire, bytes=len(data), batch=batch, satisfied=res.satisfied)
            a.stats = {k: v for k, v in res.stats.items() if isinstance(v, (int, float, str))}
            if res.logits is not None:
                self._label(a, res.logits.float(), "receiver")
            elif res.x_hat is not None:
                need_judge.append((len(out), res))
            if res.text is not None:
                a.extra["text"] = res.text
            if res.segmentation is not None:
                seg = res.segmentation.argmax(0)
                counts = seg.flatten().bincount()
                a.extra["segmentation"] = {
                    str(c): round(float(n) / seg.numel(), 4) for c, n in enumerate(counts) if n
                }
            out.append(a)
        judge = self.judge() if need_judge else None
        if need_judge and judge is None:
            for j, _ in need_judge:
                out[j].extra["note"] = "reconstruction only: this server has no judge"  # type: ignore[union-attr]
        elif need_judge:
            x = torch.stack([d.x_hat for _, d in need_judge]).float().div_(255.0)  # type: ignore[misc]
            with torch.inference_mode():
                logits = judge(judge.fit_size(x), x).float()
            for (j, _), lg in zip(need_judge, logits, strict=True):
                self._label(out[j], lg, f"judge {judge.name}")  # type: ignore[arg-type]
        return out

    def _label(self, a: Answer, logits: torch.Tensor, by: str) -> None:
        probs = logits.softmax(dim=0)
        a.label = int(probs.argmax())
        a.confidence = round(float(probs.max()), 6)
        a.name = self.class_name(a.label, int(probs.numel()))
        a.by = by
