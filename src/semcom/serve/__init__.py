"""The networked receiver (``semcom serve``) and its parts.

* :mod:`semcom.serve.app` -- the FastAPI application (``create_app``), endpoints, limits;
* :mod:`semcom.serve.batcher` -- dynamic batching of concurrent requests;
* :mod:`semcom.serve.host` -- which receivers a server hosts, and its answers;
* :mod:`semcom.serve.sessions` -- the bounded, expiring session store;
* :mod:`semcom.serve.metrics` -- Prometheus counters and histograms.

Needs the optional extra ``serve`` (FastAPI, uvicorn, httpx); importing this package does
not import them.
"""
