"""The ``semcom`` command line: the app, the helpers its commands share, and ``main``.

Every command reports bad input (missing file, not an image, unknown scheme, rate out of
range, corrupted message) as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

try:  # typer >= 0.2x vendors click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as _cx

from semcom.errors import SemcomError, one_line


def _no_hyphen_breaks() -> None:
    """Help lines never break inside hyphenated names (``patch-mean[...]``,
    ``tiny-imagenet``), so what --help shows can be copied. Click's wrapper is the
    standard library's TextWrapper; this sets ``break_on_hyphens=False`` for it."""
    try:
        from typer._click import _textwrap
    except ImportError:  # pragma: no cover - another typer layout: default wrapping
        return
    base = _textwrap.TextWrapper
    if getattr(base, "_semcom_no_hyphens", False):
        return

    class Wrapper(base):  # type: ignore[misc, valid-type]
        _semcom_no_hyphens = True

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("break_on_hyphens", False)
            super().__init__(*args, **kwargs)

    _textwrap.TextWrapper = Wrapper  # type: ignore[misc]


_no_hyphen_breaks()

app = typer.Typer(
    name="semcom",
    help="Task-oriented image communication: real messages, real channels, task quality vs bytes.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain click help: prose rewrapped to the terminal at any width, no markup to eat
    # `name[key=value]`, no table columns cropped at narrow widths
    rich_markup_mode=None,
)

DEFAULT_DEMO_CHANNELS = "ideal,bsc:1e-4,erasure:0.05:128"


@contextlib.contextmanager
def _one_image_threads() -> Iterator[None]:
    """One torch thread while a one-image command (send, receive) runs: 64x64 models gain
    nothing from more, and on a busy machine OpenMP spin-waiting costs ~1 s. An explicit
    OMP_NUM_THREADS is respected; the previous setting is restored afterwards."""
    import os

    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _split(csv: str) -> list[str]:
    return [s.strip() for s in csv.split(",") if s.strip()]


def _rates(text: str | None) -> list[float] | None:
    """``--rates`` as numbers (InputError naming the one that is not)."""
    from semcom.errors import InputError

    if not text:
        return None
    out = []
    for item in _split(text):
        try:
            out.append(float(item))
        except ValueError:
            raise InputError(f"--rates: {item!r} is not a number") from None
    return out


def _image_size(text: str) -> int | tuple[int, int]:
    """``--size`` as a side or ``(height, width)`` (InputError when malformed)."""
    from semcom.errors import InputError
    from semcom.train.sources import parse_image_size

    try:
        return parse_image_size(text)
    except InputError as exc:
        raise InputError(f"--size: {exc}") from None


def _report_folder(out: Path) -> Path:
    """``out`` as a report folder, checked before any work: an existing file is refused."""
    from semcom.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is an existing file; the report needs a folder")
    return out


_one_line = one_line


PLUGINS_ENV = "SEMCOM_PLUGINS"


def load_plugins() -> list[str]:
    """Import the modules that ``$SEMCOM_PLUGINS`` lists (comma-separated), so that the
    schemes, judges and channels they register exist for this command; InputError
    naming a module that cannot be imported."""
    import importlib
    import os

    from semcom.errors import InputError

    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the plugin's own code: one line, whatever it raised
            raise InputError(f"${PLUGINS_ENV}: cannot import {name!r}: {exc}") from None
    return names


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    command = typer.main.get_command(app)
    try:
        load_plugins()
        rv = command.main(args=argv, prog_name="semcom", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except _cx.NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx is not None else "semcom --help")
        return 0
    except typer.Abort:
        print("semcom: aborted", file=sys.stderr)
        return 130
    except _cx.ClickException as e:  # usage errors: bad option, missing argument
        print(f"semcom: error: {_one_line(e.format_message())}", file=sys.stderr)
        return 2
    except SemcomError as e:
        print(f"semcom: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # missing / unwritable paths, a file where a folder should be, ...
        text = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
        print(f"semcom: error: {_one_line(text)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semcom: interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0
