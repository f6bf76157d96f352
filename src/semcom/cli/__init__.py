"""The ``semcom`` command line.

Every command reports bad input (missing file, not an image, unknown scheme, rate out of
range, corrupted message) as one line on stderr and exit code 2, never a traceback.
:mod:`semcom.cli.app` holds the app and ``main``; the commands live in
:mod:`semcom.cli.runs` (demo, bench, report, train, schemes, channels) and
:mod:`semcom.cli.transfer` (send, receive, judges, inspect) and :mod:`semcom.cli.serve`
(serve, edge).
"""

from semcom.cli import runs as _runs  # noqa: F401  (registers its commands)
from semcom.cli import serve as _serve  # noqa: F401  (registers its commands)
from semcom.cli import transfer as _transfer  # noqa: F401  (registers its commands)
from semcom.cli.app import app, main

#: The order ``semcom --help`` lists the commands in: the main job, one image through
#: the system, sweeps and reports, then the catalogues.
ORDER = ("demo", "send", "receive", "inspect", "judge", "bench", "report", "train", "serve",
         "edge", "schemes", "channels", "judges")  # fmt: skip
app.registered_commands.sort(
    key=lambda c: (
        ORDER.index(c.name or c.callback.__name__)  # type: ignore[union-attr]
        if (c.name or getattr(c.callback, "__name__", "")) in ORDER
        else len(ORDER)
    )
)

__all__ = ["app", "main"]
