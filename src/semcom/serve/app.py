"""``semcom serve``: the receivers of every scheme as an HTTP service (FastAPI).

Imports FastAPI (the optional extra ``serve``); nothing else in semcom imports this module.

Endpoints (request bodies are raw message containers, ``application/octet-stream``):

=========================================  ==============================================
``POST /v1/receive``                       one message -> JSON answer (dynamic batching)
``POST /v1/sessions?scheme=ID``            open a session of a multi-message scheme
``POST /v1/sessions/{sid}/steps/{k}``      message ``k`` (0, 1, ...) of a session
``DELETE /v1/sessions/{sid}``              close a session
``POST /v1/noop``                          reads the body, answers a fixed JSON: the
                                           HTTP ceiling the load benchmark compares to
``GET /health``                            liveness, hosted schemes, queue depth
``GET /metrics``                           Prometheus text (:mod:`semcom.serve.metrics`)
``GET /docs``, ``GET /openapi.json``       the OpenAPI page
=========================================  ==============================================

An answer: ``{"scheme", "bytes", "label", "confidence", "class", "by", "stats",
"satisfied", "batch", "timings": {"queue_ms", "model_ms", "total_ms"}}`` (``label`` and
its companions only when the receiver or the server's judge classifies).

Status codes: 400 malformed or undecodable message (the reason in ``detail``), 401 wrong
or missing token (when the server has one: ``Authorization: Bearer TOKEN``), 404 a scheme
id or session the server does not know, 409 a session step out of order, 410 an expired
session, 413 a body over ``max_body`` bytes, 422 a message made for other model weights
than the server holds, 503 the queue is full (``Retry-After`` says when to retry), 504 no
answer within ``timeout_s``. Every accepted request gets exactly one answer; the server
keeps serving after any of them.

Scaling out: no state outside the process but the bounded, expiring session store, so
``--workers N`` (uvicorn's processes) and several servers behind a load balancer work for
single-message schemes; sessions need sticky routing (or one worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse, Response

from semcom.errors import BitstreamError, InputError, one_line
from semcom.models.fingerprint import ModelMismatchError
from semcom.serve.batcher import DynamicBatcher, Overloaded
from semcom.serve.host import Answer, ReceiverHost, UnknownScheme
from semcom.serve.metrics import Metrics
from semcom.serve.sessions import ExpiredSession, SessionStore, StepOutOfOrder, UnknownSession

__all__ = ["CONFIG_ENV", "ServeConfig", "app_from_env", "create_app"]

#: Environment variable carrying the JSON config to ``uvicorn --workers`` processes.
CONFIG_ENV = "SEMCOM_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """Settings of one server process (``semcom serve --help`` documents each).

    Attributes:
        schemes: scheme specs to host; empty: every registered receiver.
        judge: judge spec for reconstructions (``"auto"``: the zoo's classifier).
        labels: class names for answers (index = class id), or None.
        max_batch: most messages per model call.
        max_wait_ms: longest a message waits for a batch to fill.
        max_queue: most messages waiting; beyond it 503.
        max_body: most bytes per request body; beyond it 413.
        timeout_s: most seconds from accepting a message to answering; beyond it 504.
        token: shared secret (``Authorization: Bearer``), or None for none.
        max_sessions: most open sessions.
        session_ttl_s: idle seconds before a session expires.
        retry_after_s: the ``Retry-After`` of a 503.
        threads: torch CPU threads (None: torch's default).
    """

    schemes: list[str] = field(default_factory=list)
    judge: str | None = "auto"
    labels: list[str] | None = None
    max_batch: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 256
    max_body: int = 4 * 1024 * 1024
    timeout_s: float = 10.0
    token: str | None = None
    max_sessions: int = 1024
    session_ttl_s: float = 300.0
    retry_after_s: int = 1
    threads: int | None = None

    def check(self) -> ServeConfig:
        """InputError naming the first setting out of range."""
        for name, low in (
            ("max_batch", 1),
            ("max_queue", 1),
            ("max_body", 64),
            ("max_sessions", 1),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(
                    f"--{name.replace('_', '-')} must be an integer >= {low}, got {v!r}"
                )
        if not self.max_wait_ms >= 0 or not self.timeout_s > 0 or not self.session_ttl_s > 0:
            raise InputError("--max-wait-ms must be >= 0, --timeout and --session-ttl > 0")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")
        return self


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def create_app(config: ServeConfig | None = None, host: ReceiverHost | None = None) -> Any:
    """The FastAPI application serving ``config`` (see the module docstring).

    Args:
        config: the settings (default :class:`ServeConfig`).
        host: the receivers (default: built from ``config``), e.g. with in-memory models.
    """
    config = (config or ServeConfig()).check()
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    host = host or ReceiverHost(config.schemes, config.judge, config.labels)
    metrics = Metrics()
    sessions = SessionStore(config.max_sessions, config.session_ttl_s)
    batcher = DynamicBatcher(
        host.decode,
        max_batch=config.max_batch,
        max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue,
        on_batch=metrics.batch,
    )
    metrics.gauges["queue_depth"] = lambda: batcher.waiting
    metrics.gauges["sessions"] = lambda: len(sessions)
    noop_body = json.dumps({"ok": True}).encode()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, host.warm)
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="semcom receiver",
        version=_version(),
        description="Receivers of semcom's schemes: POST a message container, get the "
        "receiver's answer as JSON. See `semcom serve --help`.",
        lifespan=lifespan,
    )
    app.state.config, app.state.host, app.state.metrics = config, host, metrics

    def refuse(endpoint: str, status: int, reason: str, detail: str, **headers: str) -> Any:
        metrics.reject(reason)
        metrics.answered(endpoint, status)
        return _json(status, {"detail": one_line(detail, 400), "reason": reason}, headers or None)

    def authorised(request: Request) -> bool:
        if not config.token:
            return True
        got = request.headers.get("authorization", "")
        return got.startswith("Bearer ") and secrets.compare_digest(
            got[7:].encode(), config.token.encode()
        )

    async def read_body(request: Request, endpoint: str) -> bytes | Any:
        """The body, or the refusal to send (401 / 413 / 400)."""
        if not authorised(request):
            return refuse(
                endpoint, 401, "unauthorized", "missing or wrong bearer token",
                **{"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return refuse(endpoint, 400, "malformed", f"bad Content-Length {length!r}")
            if int(length) > config.max_body:
                return refuse(
                    endpoint, 413, "too_large",
                    f"body of {length} bytes exceeds the limit of {config.max_body}",
                )  # fmt: skip
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body:
                return refuse(
                    endpoint, 413, "too_large", f"body exceeds the limit of {config.max_body} bytes"
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            return refuse(endpoint, 400, "malformed", "empty body: POST a message container")
        return body

    def failure(endpoint: str, exc: BaseException, started: float) -> Any:
        """The answer to a message that raised ``exc``."""
        if isinstance(exc, UnknownScheme):
            status, reason = 404, "unknown_scheme"
        elif isinstance(exc, ModelMismatchError):
            status, reason = 422, "model_mismatch"
        elif isinstance(exc, (BitstreamError, InputError)):
            status, reason = 400, "malformed"
        else:
            status, reason = 500, "internal"
        metrics.answered(endpoint, status, time.perf_counter() - started)
        if status == 500:
            metrics.reject("internal")
        detail = one_line(f"{type(exc).__name__}: {exc}" if status == 500 else exc, 400)
        return _json(status, {"detail": detail, "reason": reason})

    def scheme_id(body: bytes) -> str:
        from semcom.codec.container import unpack

        return unpack(body, allow_damaged=True).scheme_name

    @app.post("/v1/receive", summary="Decode one message container")
    async def receive(request: Request) -> Any:
        """The body is a message container (any hosted scheme); the answer is JSON."""
        started = time.perf_counter()
        body = await read_body(request, "receive")
        if not isinstance(body, bytes):
            return body
        try:
            wire = scheme_id(body)
        except (BitstreamError, InputError) as exc:
            return failure("receive", exc, started)
        try:
            queued = time.perf_counter()
            answer = await asyncio.wait_for(batcher.submit((wire, body)), config.timeout_s)
        except Overloaded as exc:
            return refuse(
                "receive", 503, "overloaded", f"server busy ({exc}); retry later",
                **{"Retry-After": str(config.retry_after_s)},
            )  # fmt: skip
        except TimeoutError:
            return refuse("receive", 504, "timeout", f"no answer within {config.timeout_s} s")
        except Exception as exc:  # noqa: BLE001 - the message's own failure
            return failure("receive", exc, started)
        return answered("receive", answer, started, queued)

    def answered(endpoint: str, answer: Answer, started: float, queued: float) -> Any:
        total = time.perf_counter() - started
        body = answer.to_json()
        body["timings"] = {
            "queue_ms": round(max(0.0, (total - (queued - started)) * 1000 - answer.model_ms), 3),
            "model_ms": round(answer.model_ms, 3),
            "total_ms": round(total * 1000, 3),
        }
        metrics.answered(endpoint, 200, total)
        return _json(200, body)

    @app.post("/v1/noop", summary="Read the body, answer a fixed JSON (benchmark ceiling)")
    async def noop(request: Request) -> Any:
        body = await read_body(request, "noop")
        if not isinstance(body, bytes):
            return body
        metrics.answered("noop", 200)
        return Response(noop_body, media_type="application/json")

    @app.post("/v1/sessions", summary="Open a session of a multi-message scheme")
    async def open_session(request: Request, scheme: str) -> Any:
        """``scheme``: the scheme id of the session's messages."""
        if not authorised(request):
            return refuse("sessions", 401, "unauthorized", "missing or wrong bearer token")
        try:
            receiver = host.scheme(scheme).open_receiver()
        except UnknownScheme as exc:
            return refuse("sessions", 404, "unknown_scheme", str(exc))
        sid = sessions.open(scheme, receiver)
        metrics.answered("sessions", 201)
        return _json(201, {"session": sid, "scheme": scheme, "next_step": 0,
                           "ttl_s": config.session_ttl_s})  # fmt: skip

    @app.post("/v1/sessions/{sid}/steps/{step}", summary="Send message `step` of a session")
    async def session_step(request: Request, sid: str, step: int) -> Any:
        started = time.perf_counter()
        body = await read_body(request, "step")
        if not isinstance(body, bytes):
            return body
        try:
            wire = sessions.scheme_of(sid)
        except UnknownSession:
            return refuse("step", 404, "unknown_session", f"no session {sid}")
        except ExpiredSession:
            return refuse("step", 410, "expired_session", f"session {sid} expired")

        def run() -> tuple[Answer, int]:
            def one(receiver: Any) -> Any:
                return receiver.receive(body)

            t0 = time.perf_counter()
            decoded, taken = sessions.step(sid, step, one)
            ans = host.answers(wire, [body], [decoded], 1)[0]
            if isinstance(ans, Exception):
                raise ans
            ans.model_ms = (time.perf_counter() - t0) * 1000.0
            ans.extra["next_step"] = taken
            return ans, taken

        try:
            answer, _ = await asyncio.get_running_loop().run_in_executor(None, run)
        except StepOutOfOrder as exc:
            return refuse("step", 409, "step_out_of_order", str(exc))
        except UnknownSession:
            return refuse("step", 404, "unknown_session", f"no session {sid}")
        except ExpiredSession:
            return refuse("step", 410, "expired_session", f"session {sid} expired")
        except Exception as exc:  # noqa: BLE001
            return failure("step", exc, started)
        return answered("step", answer, started, started)

    @app.delete("/v1/sessions/{sid}", summary="Close a session")
    async def close_session(request: Request, sid: str) -> Any:
        if not authorised(request):
            return refuse("sessions", 401, "unauthorized", "missing or wrong bearer token")
        try:
            sessions.close(sid)
        except UnknownSession:
            return refuse("sessions", 404, "unknown_session", f"no session {sid}")
        except ExpiredSession:
            return refuse("sessions", 410, "expired_session", f"session {sid} expired")
        metrics.answered("sessions", 200)
        return _json(200, {"closed": sid})

    @app.get("/health", summary="Liveness and what this server hosts")
    async def health() -> Any:
        return _json(200, {"status": "ok", "schemes": host.hosted(), "queue": batcher.waiting,
                           "sessions": len(sessions), "pid": os.getpid()})  # fmt: skip

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Any:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _version() -> str:
    from semcom import __version__

    return __version__


def app_from_env() -> Any:
    """The app for ``uvicorn --factory`` worker processes: :class:`ServeConfig` from the
    JSON in ``$SEMCOM_SERVE_CONFIG``."""
    raw = os.environ.get(CONFIG_ENV, "{}")
    return create_app(ServeConfig(**json.loads(raw)))


def config_json(config: ServeConfig) -> str:
    """``config`` as the JSON :func:`app_from_env` reads."""
    return json.dumps(asdict(config))
