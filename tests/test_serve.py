"""`semcom serve` over real loopback sockets: answers, dynamic batching, limits, sessions,
metrics, and `semcom edge` with retries. Tiny in-memory models; no zoo weights needed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from semcom.models.vit import create_vit  # noqa: E402
from semcom.schemes.collab import CollabScheme  # noqa: E402
from semcom.serve.app import ServeConfig, create_app  # noqa: E402
from semcom.serve.batcher import DynamicBatcher, Overloaded  # noqa: E402
from semcom.serve.host import ReceiverHost  # noqa: E402
from semcom.serve.sessions import (  # noqa: E402
    ExpiredSession,
    SessionStore,
    StepOutOfOrder,
    UnknownSession,
)


def _vit(seed: int, width: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_vit(
        "vit-edge-synth", embed_dim=width, depth=1, num_heads=2, num_classes=12
    ).eval()


EDGE, SERVER = _vit(0, 16), _vit(1, 32)


def _collab(**kw) -> CollabScheme:
    opts = dict(edge=EDGE, server=SERVER, gate="always", rule="topk:6")
    opts.update(kw)
    return CollabScheme(**opts)


def _images(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)


class _Host(ReceiverHost):
    """A host with in-memory schemes (and an optional delay per model call)."""

    def __init__(self, delay: float = 0.0, **schemes) -> None:
        super().__init__(judge=None)
        self.open_catalogue = False
        self._schemes.update(schemes)
        self.delay = delay
        self.calls: list[int] = []

    def decode(self, items):
        self.calls.append(len(items))
        if self.delay:
            time.sleep(self.delay)
        return super().decode(items)


@contextlib.contextmanager
def serving(config: ServeConfig, host: ReceiverHost) -> Iterator[str]:
    import uvicorn

    app = create_app(config, host)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return [tx.messages[0] for tx in _collab().transmit_batch(_images(16), 0.0)]


def test_answers_equal_the_local_receiver_and_concurrent_requests_are_batched(messages) -> None:
    host = _Host(collab=_collab())
    want = [d.logits.softmax(0) for d in _collab().decompress_batch(messages)]
    cfg = ServeConfig(max_batch=8, max_wait_ms=20.0)
    with serving(cfg, host) as url, httpx.Client(base_url=url, timeout=20) as c:

        def post(m: bytes) -> dict:
            r = c.post("/v1/receive", content=m)
            assert r.status_code == 200, r.text
            return r.json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, messages))
        metrics = c.get("/metrics").text
        health = c.get("/health").json()
    for a, p in zip(answers, want, strict=True):
        assert a["scheme"] == "collab" and a["by"] == "receiver"
        assert a["label"] == int(p.argmax())
        assert a["confidence"] == pytest.approx(float(p.max()), abs=1e-5)
        assert set(a["timings"]) == {"queue_ms", "model_ms", "total_ms"}
    assert max(host.calls) > 1 and sum(host.calls) == len(messages)  # batched, none lost
    assert max(a["batch"] for a in answers) > 1
    assert 'semcom_requests_total{endpoint="receive",code="200"} 16' in metrics
    assert "semcom_batch_size_bucket" in metrics and "semcom_request_seconds_count 16" in metrics
    assert health["status"] == "ok" and health["schemes"] == ["collab"]


def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(messages) -> None:
    other = _collab(server=_vit(5, 32))
    host = _Host(collab=_collab())
    cfg = ServeConfig(max_body=4096, token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    with serving(cfg, host) as url, httpx.Client(base_url=url, timeout=20) as c:
        assert c.post("/v1/receive", content=messages[0]).status_code == 401
        bad = c.post("/v1/receive", content=messages[0], headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/receive", content=messages[0][:30], headers=auth)
        assert r.status_code == 400 and r.json()["reason"] == "malformed"
        assert c.post("/v1/receive", content=b"", headers=auth).status_code == 400
        r = c.post("/v1/receive", content=b"\0" * 5000, headers=auth)
        assert r.status_code == 413
        from semcom.schemes import create_scheme

        webp = create_scheme("raw").compress(_images(1)[0], 1)
        r = c.post("/v1/receive", content=webp, headers=auth)
        assert r.status_code in (404, 413) and r.json()["reason"] in ("unknown_scheme", "too_large")
        mismatch = other.transmit_batch(_images(1), 0.0)[0].messages[0]
        r = c.post("/v1/receive", content=mismatch, headers=auth)
        assert r.status_code == 422 and r.json()["reason"] == "model_mismatch"
        flipped = bytearray(messages[1])
        flipped[len(flipped) // 2] ^= 0xFF
        r = c.post("/v1/receive", content=bytes(flipped), headers=auth)
        assert r.status_code in (200, 400)
        ok = c.post("/v1/receive", content=messages[2], headers=auth)
        assert ok.status_code == 200 and "label" in ok.json()
        assert c.post("/v1/noop", content=b"x", headers=auth).json() == {"ok": True}
        assert c.get("/openapi.json").json()["info"]["title"] == "semcom receiver"


def test_a_full_queue_answers_503_with_retry_after_and_loses_nothing(messages) -> None:
    host = _Host(delay=0.3, collab=_collab())
    cfg = ServeConfig(max_batch=1, max_wait_ms=0.0, max_queue=2, retry_after_s=3)
    with serving(cfg, host) as url, httpx.Client(base_url=url, timeout=30) as c:
        with ThreadPoolExecutor(10) as pool:
            rs = list(pool.map(lambda m: c.post("/v1/receive", content=m), messages[:10]))
    codes = [r.status_code for r in rs]
    assert 503 in codes and 200 in codes and set(codes) <= {200, 503}
    busy = next(r for r in rs if r.status_code == 503)
    assert busy.headers["retry-after"] == "3" and busy.json()["reason"] == "overloaded"
    assert sum(host.calls) == codes.count(200)  # every accepted request was answered


def test_sessions_404_409_410() -> None:
    host = _Host(collab=_collab())
    tx = _collab().transmit_batch(_images(1), 0.0)[0]
    with serving(ServeConfig(session_ttl_s=0.5), host) as url, httpx.Client(base_url=url) as c:
        assert c.post("/v1/sessions", params={"scheme": "nope"}).status_code == 404
        sid = c.post("/v1/sessions", params={"scheme": "collab"}).json()["session"]
        assert c.post(f"/v1/sessions/{sid}/steps/1", content=tx.messages[0]).status_code == 409
        r = c.post(f"/v1/sessions/{sid}/steps/0", content=tx.messages[0])
        assert r.status_code == 200 and r.json()["next_step"] == 1
        assert c.post(f"/v1/sessions/{sid}/steps/0", content=tx.messages[0]).status_code == 409
        assert c.post("/v1/sessions/unknown/steps/0", content=b"x").status_code == 404
        time.sleep(0.7)
        assert c.post(f"/v1/sessions/{sid}/steps/1", content=tx.messages[0]).status_code == 410


def test_edge_offloads_only_uncertain_images_and_retries_503(tmp_path: Path) -> None:
    from semcom.imageio import save_image
    from semcom.serve.edge import run_edge

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(_images(6)):
        save_image(img, folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    files = sorted(folder.iterdir())

    host = _Host(collab=_collab())
    refused = {"n": 0}
    from unittest import mock

    from semcom.schemes.gates import gate_score
    from semcom.serve import batcher as batcher_mod

    real_submit = batcher_mod.DynamicBatcher.submit

    async def flaky_submit(self, item):  # the first two offloads are told "busy"
        if refused["n"] < 2:
            refused["n"] += 1
            raise Overloaded("test: busy")
        return await real_submit(self, item)

    edge = _collab(gate="margin")
    logits, _ = edge.edge_outputs(_images(6))
    margins = gate_score(logits.softmax(1), "margin").sort().values
    eta = float(margins[2:4].mean())  # 3 images above (stay), 3 below (offloaded)
    with (
        mock.patch.object(batcher_mod.DynamicBatcher, "submit", flaky_submit),
        mock.patch("semcom.schemes.create_scheme", lambda spec: edge),
        serving(ServeConfig(retry_after_s=0), host) as url,
    ):
        summary = run_edge(files, url, "collab", eta, concurrency=3, retries=4)
    rows = {r["file"]: r for r in summary.rows}
    assert len(rows) == 7 and rows["broken.png"]["status"] == "failed"
    assert summary.answered_by_server == 3 and summary.on_edge == 3
    assert refused["n"] == 2 and summary.failed == 1  # the 503s were retried
    served = [r for r in rows.values() if r["status"] == "server"]
    assert all(r["bytes"] > 0 and r["patches"] == 6 for r in served)
    assert all(r["bytes"] == 0 for r in rows.values() if r["status"] == "edge")
    assert summary.bytes_sent == sum(r["bytes"] for r in served)
    assert json.dumps(summary.to_json())


def test_edge_reports_an_unreachable_server_as_failed(tmp_path: Path) -> None:
    from unittest import mock

    from semcom.imageio import save_image
    from semcom.serve.edge import run_edge

    save_image(_images(1)[0], tmp_path / "a.png")
    with mock.patch("semcom.schemes.create_scheme", lambda spec: _collab()):
        s = run_edge([tmp_path / "a.png"], "http://127.0.0.1:9", "collab", 0.0, retries=1)
    (row,) = s.rows
    assert row["status"] == "failed" and row["attempts"] == 2 and "fallback" in row


# ------------------------------------------------------------------ the parts
def test_batcher_groups_and_isolates_failures() -> None:
    calls: list[list[int]] = []

    def fn(items):
        calls.append(list(items))
        time.sleep(0.02)
        return [ValueError("odd") if i % 2 else i * 10 for i in items]

    async def main():
        b = DynamicBatcher(fn, max_batch=4, max_wait_ms=5, max_queue=64)
        res = await asyncio.gather(*(b.submit(i) for i in range(10)), return_exceptions=True)
        await b.stop()
        return res

    res = asyncio.run(main())
    assert [r if not isinstance(r, Exception) else "err" for r in res] == [
        0, "err", 20, "err", 40, "err", 60, "err", 80, "err",
    ]  # fmt: skip
    assert sum(len(c) for c in calls) == 10 and max(len(c) for c in calls) == 4


def test_batcher_overload_is_immediate() -> None:
    async def main():
        b = DynamicBatcher(lambda items: (time.sleep(0.2), items)[1], max_batch=1, max_queue=1)
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.05)  # taken into a batch: the queue is empty again
        second = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await b.submit(3)
        out = await asyncio.gather(first, second)
        await b.stop()
        return out

    assert asyncio.run(main()) == [1, 2]


def test_session_store_bounds_and_expiry() -> None:
    now = [0.0]
    store = SessionStore(max_sessions=2, ttl_s=10, clock=lambda: now[0])
    a = store.open("x", object())  # type: ignore[arg-type]
    b = store.open("x", object())  # type: ignore[arg-type]
    c = store.open("x", object())  # type: ignore[arg-type]  evicts a (least recent)
    with pytest.raises(UnknownSession):
        store.scheme_of(a)
    assert store.step(b, 0, lambda r: "ok") == ("ok", 1)
    with pytest.raises(StepOutOfOrder):
        store.step(b, 0, lambda r: "again")
    now[0] = 11.0
    with pytest.raises(ExpiredSession):
        store.scheme_of(c)
    assert len(store) <= 1


def test_serve_and_edge_commands_refuse_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    from semcom.cli import main

    assert main(["serve", "--scheme", "nosuch"]) == 2
    assert main(["serve", "--max-batch", "0"]) == 2
    assert main(["serve", "--labels", str(tmp_path / "none.txt")]) == 2
    assert main(["edge", str(tmp_path / "none"), "--server", "http://127.0.0.1:9"]) == 2
    (tmp_path / "imgs").mkdir()
    assert main(["edge", str(tmp_path / "imgs"), "--server", "http://127.0.0.1:9"]) == 2
    Path(tmp_path / "imgs" / "a.png").write_bytes(b"x")
    assert main(["edge", str(tmp_path / "imgs"), "--server", "ftp://host"]) == 2
    assert main(["edge", str(tmp_path / "imgs"), "--server", "http://h", "--scheme", "jpeg"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 7 and all(line.startswith("semcom: error:") for line in err)
    assert not any("No such command" in line for line in err)


def test_a_progressive_text_session_word_by_word_until_bob_is_satisfied() -> None:
    from semcom.models.registry import create_model
    from semcom.schemes import create_scheme
    from semcom.text.words import synthetic_vocabulary

    v = len(synthetic_vocabulary())
    torch.manual_seed(0)
    gen = create_model("text-diffusion", vocab_size=v, image_size=8, widths=(8, 8, 16),
                       text_dim=16, text_depth=1, text_heads=2, timesteps=20).eval()  # fmt: skip
    cap = create_model("captioner", vocab_size=v, image_size=16, dim=16, depth=1, heads=2).eval()
    text = create_scheme("text", model=gen, captioner=cap, order="natural", steps=2)
    tx = text.transmit_caption(text.caption_ids("a red circle on a plain blue background"),
                               (16, 16), budget=3)  # fmt: skip
    host = _Host(text=text)
    with serving(ServeConfig(), host) as url, httpx.Client(base_url=url) as c:
        sid = c.post("/v1/sessions", params={"scheme": "text"}).json()["session"]
        assert c.post(f"/v1/sessions/{sid}/steps/1", content=tx.messages[1]).status_code == 409
        answers = []
        for k, m in enumerate(tx.messages):
            r = c.post(f"/v1/sessions/{sid}/steps/{k}", content=m)
            assert r.status_code == 200, r.text
            answers.append(r.json())
        assert [a["text"] for a in answers] == ["a", "a red", "a red circle"]
        assert [a["satisfied"] for a in answers] == [False, False, True]
        late = c.post(f"/v1/sessions/{sid}/steps/3", content=tx.messages[2])
        assert late.status_code == 400  # a message after the last one
        assert c.get("/health").status_code == 200  # still serving
