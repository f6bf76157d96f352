"""``semcom serve`` (the receivers over HTTP) and ``semcom edge`` (the collaborative edge
over a folder of images, offloading to a server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semcom.cli.app import app


def _need_serve_extra() -> None:
    from semcom.errors import InputError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"semcom serve needs the optional extra 'serve' (pip install 'semcom[serve]'): {exc}"
        ) from None


@app.command(short_help="Host the receivers over HTTP (FastAPI; dynamic batching).")
def serve(
    scheme: Annotated[
        list[str] | None,
        typer.Option(
            "--scheme",
            metavar="SPEC",
            help="Scheme spec to host, repeatable (e.g. 'collab[server=CKPT]'); "
            "none: every registered receiver with its default (zoo) models.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Server processes (uvicorn's); each batches on its own.")
    ] = 1,
    max_batch: Annotated[
        int, typer.Option(help="Most messages per model call (1: no batching).")
    ] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="Longest a message waits for its batch to fill, ms.")
    ] = 2.0,
    max_queue: Annotated[
        int, typer.Option(help="Most messages waiting; more are answered 503 + Retry-After.")
    ] = 256,
    max_body: Annotated[int, typer.Option(help="Most bytes per request body; more: 413.")] = 4
    * 1024
    * 1024,
    timeout: Annotated[
        float, typer.Option(help="Seconds from accepting a message to answering; then 504.")
    ] = 10.0,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SEMCOM_TOKEN",
            help="Shared secret clients send as 'Authorization: Bearer TOKEN' "
            "(or $SEMCOM_TOKEN); none: open.",
        ),
    ] = None,
    judge: Annotated[
        str,
        typer.Option(
            help="Judge spec that labels reconstructions ('auto': the zoo classifier; 'none')."
        ),
    ] = "auto",
    labels: Annotated[
        Path | None,
        typer.Option(help="Class names, one per line (index = class id), for the answers."),
    ] = None,
    max_sessions: Annotated[
        int, typer.Option(help="Most open sessions (multi-message schemes).")
    ] = 1024,
    session_ttl: Annotated[
        float, typer.Option(help="Idle seconds before a session expires (then 410).")
    ] = 300.0,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads per process (default: torch's).")
    ] = None,
) -> None:
    """Serve the receivers: POST a message container to /v1/receive, get JSON (label,
    confidence, timings); /health, /metrics (Prometheus), /docs (OpenAPI). Concurrent
    requests are batched into one model call."""
    import os

    from semcom.errors import InputError
    from semcom.serve.app import CONFIG_ENV, ServeConfig, config_json, create_app

    _need_serve_extra()
    names = None
    if labels is not None:
        if not labels.is_file():
            raise InputError(f"--labels: no such file {labels}")
        names = [ln.strip() for ln in labels.read_text(errors="replace").splitlines() if ln.strip()]
    cfg = ServeConfig(
        schemes=list(scheme or []), judge=None if judge == "none" else judge, labels=names,
        max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, max_body=max_body,
        timeout_s=timeout, token=token, max_sessions=max_sessions, session_ttl_s=session_ttl,
        threads=threads,
    ).check()  # fmt: skip
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {port}")
    import uvicorn

    common = dict(host=host, port=port, log_level="warning", access_log=False)
    application = create_app(cfg)  # builds the hosted schemes now: a bad spec fails here
    typer.echo(
        f"semcom serve: http://{host}:{port} ({workers} worker(s)); /docs for the API", err=True
    )
    if workers == 1:
        uvicorn.run(application, **common)  # type: ignore[arg-type]
        return
    os.environ[CONFIG_ENV] = config_json(cfg)
    uvicorn.run("semcom.serve.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]


@app.command(short_help="Collaborative edge over a folder: offload uncertain images to a server.")
def edge(
    folder: Annotated[Path, typer.Argument(help="Folder of images (any format Pillow reads).")],
    server: Annotated[str, typer.Option(help="Base URL of a `semcom serve` hosting the scheme.")],
    scheme: Annotated[
        str,
        typer.Option(help="The collab scheme spec (edge model, gate, attention, rule, pixels)."),
    ] = "collab",
    eta: Annotated[
        float | None,
        typer.Option(help="Gate threshold eta (default: the scheme's middle default)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Results file: one JSON object per image and line.")
    ] = Path("edge-results.jsonl"),
    token: Annotated[
        str | None,
        typer.Option(envvar="SEMCOM_TOKEN", help="Bearer token of the server (or $SEMCOM_TOKEN)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Offloads in flight at once.")] = 8,
    retries: Annotated[
        int, typer.Option(help="Retries of a 503 / 504 / connection error, with backoff.")
    ] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 30.0,
    resize: Annotated[
        bool, typer.Option(help="Scale images to the edge ViT's input size (--fit).")
    ] = True,
    fit: Annotated[str, typer.Option(help="fit (padded), crop or stretch, for --resize.")] = "fit",
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
) -> None:
    """Classify every image on the edge; offload only the uncertain ones (their
    attention-selected patches) to the server; print a summary and write the results."""
    import json
    import sys

    from semcom.data.images import is_image_file
    from semcom.errors import InputError
    from semcom.schemes import create_scheme
    from semcom.schemes.collab import CollabScheme
    from semcom.serve.edge import run_edge, write_rows

    if fit not in ("fit", "crop", "stretch"):
        raise InputError(f"--fit must be fit, crop or stretch, got {fit!r}")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise InputError(f"{folder} has no image files")
    if not server.startswith(("http://", "https://")):
        raise InputError(f"--server must be an http(s) URL, got {server!r}")
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name")
    sch = create_scheme(scheme)
    if not isinstance(sch, CollabScheme):
        raise InputError(f"semcom edge runs a collab scheme, not {sch.name}")
    if eta is None:
        eta = sch.default_rates[len(sch.default_rates) // 2]
    eta = sch.validate_rate(eta)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="img", desc="edge", file=sys.stderr)
    try:
        summary = run_edge(
            files, server, scheme, eta, token=token, concurrency=concurrency, retries=retries,
            timeout_s=timeout, resize=resize, fit=fit,
            progress=bar.update if bar is not None else None,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    write_rows(out, summary.rows)
    typer.echo(json.dumps({**summary.to_json(), "results": str(out)}))
