"""A bounded, expiring store of open receiver sessions (multi-message schemes).

A session is one receiver (:class:`~semcom.schemes.session.Receiver`) and the number of
the next step it expects. :meth:`SessionStore.step` feeds it one message:

* unknown id (never opened, or evicted to stay within ``max_sessions``) ->
  :class:`UnknownSession` (404);
* known but idle for longer than ``ttl_s`` -> :class:`ExpiredSession` (410); an expired
  id is remembered (bounded) so that it answers 410 rather than 404;
* a step number other than the expected one -> :class:`StepOutOfOrder` (409).

Opening a session beyond ``max_sessions`` first drops expired ones, then the least
recently used. Thread-safe; the receivers themselves run on the caller's thread.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from semcom.schemes.session import Decoded, Receiver

__all__ = ["ExpiredSession", "SessionStore", "StepOutOfOrder", "UnknownSession"]


class UnknownSession(KeyError):
    """No such session (404)."""


class ExpiredSession(KeyError):
    """The session expired (410)."""


class StepOutOfOrder(ValueError):
    """A step other than the next one (409)."""


@dataclass
class _Session:
    scheme: str
    receiver: Receiver
    next_step: int = 0
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Open sessions, at most ``max_sessions``, each expiring ``ttl_s`` after its last use.

    Args:
        max_sessions: most sessions kept (>= 1).
        ttl_s: idle seconds before a session expires (> 0).
        clock: the time source (monotonic seconds; tests pass a fake one).
    """

    def __init__(
        self,
        max_sessions: int = 1024,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or ttl_s <= 0:
            raise ValueError("max_sessions must be >= 1 and ttl_s > 0")
        self.max_sessions, self.ttl_s, self.clock = int(max_sessions), float(ttl_s), clock
        self._open: OrderedDict[str, _Session] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def _forget(self, sid: str) -> None:
        self._open.pop(sid, None)
        self._expired[sid] = None
        while len(self._expired) > 4 * self.max_sessions:
            self._expired.popitem(last=False)

    def _sweep(self, now: float) -> None:
        for sid in [s for s, v in self._open.items() if now - v.touched > self.ttl_s]:
            self._forget(sid)

    def open(self, scheme: str, receiver: Receiver) -> str:
        """Start a session of ``scheme`` with ``receiver``; returns its id (random, URL-safe)."""
        sid = secrets.token_urlsafe(12)
        with self._lock:
            now = self.clock()
            self._sweep(now)
            while len(self._open) >= self.max_sessions:
                old, _ = self._open.popitem(last=False)
                self._expired.pop(old, None)  # evicted, not expired: 404 from now on
            self._open[sid] = _Session(scheme, receiver, touched=now)
        return sid

    def _get(self, sid: str) -> _Session:
        with self._lock:
            now = self.clock()
            sess = self._open.get(sid)
            if sess is not None and now - sess.touched > self.ttl_s:
                self._forget(sid)
                sess = None
            if sess is None:
                if sid in self._expired:
                    raise ExpiredSession(sid)
                raise UnknownSession(sid)
            sess.touched = now
            self._open.move_to_end(sid)
            return sess

    def scheme_of(self, sid: str) -> str:
        """The scheme a session was opened for (UnknownSession / ExpiredSession)."""
        return self._get(sid).scheme

    def step(self, sid: str, step: int, run: Callable[[Receiver], Decoded]) -> tuple[Decoded, Any]:
        """Run ``run(receiver)`` as step ``step`` of session ``sid``; the step counter
        advances only when ``run`` returns. Returns ``(answer, steps taken)``."""
        sess = self._get(sid)
        with sess.lock:
            if step != sess.next_step:
                raise StepOutOfOrder(f"session {sid} expects step {sess.next_step}, got {step}")
            answer = run(sess.receiver)
            sess.next_step += 1
            return answer, sess.next_step

    def close(self, sid: str) -> None:
        """End a session (UnknownSession / ExpiredSession if it is not open)."""
        self._get(sid)
        with self._lock:
            self._open.pop(sid, None)
