"""Every command in the README is checked here, so the README cannot drift from the code.

* The command-line block's cheap commands (send, inspect, receive, schemes, channels) run
  for real, in a temporary folder, on a synthetic ``image.png`` and a photo-like
  ``photo.jpg``.
* Every other ``semcom`` command (long sweeps and trainings) is parsed by the real
  command line (options, types, choices) and its scheme and channel specs are built, so
  a renamed option or a spec that no longer parses fails here.
* Every ``benchmarks/*.py`` command names a script that exists and options its
  ``--help`` lists; every ``make`` target exists.
* No command carries a path of one machine (``/work/...``) or calls a bare ``semcom``
  that only exists inside an activated virtual environment.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")

#: Commands of the "Command line" block that run for real (all cheap).
RUN_FOR_REAL = ("send", "inspect", "receive", "judge", "schemes", "channels", "judges")


def _blocks() -> list[list[str]]:
    """Shell commands of each ```bash block, continuations joined, comments dropped,
    ``NAME=value`` assignments expanded into the commands after them."""
    out = []
    for body in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", body)
        env: dict[str, str] = {}
        cmds = []
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            loop = re.match(r"^for (\w+) in (\S+)[^;]*; do(?:\s+#.*)?$", line)
            if loop:  # a loop's commands are checked with its first value
                env[loop.group(1)] = loop.group(2)
                continue
            words = shlex.split(line, comments=True)
            if words and all(re.match(r"^[A-Z]\w*=", w) for w in words):
                for w in words:
                    key, _, value = w.partition("=")
                    env[key] = _expand(value, env)
                continue
            # as the shell does: an unquoted $VAR splits into its words
            words = [
                x
                for w in words
                for x in (shlex.split(_expand(w, env)) if w.startswith("$") else [_expand(w, env)])
            ]
            cmds.append(shlex.join(words))
        out.append(cmds)
    return out


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def _table_commands() -> list[str]:
    """Backticked commands in table cells: benchmark scripts and semcom commands (a cell
    starting with a bare ``semcom ... --out`` counts too, so that it is caught)."""
    cells = re.findall(r"\| `([^`]+)`", README)
    return [
        c
        for c in cells
        if re.match(r"^(?:[A-Z_]+=\S+ )*\.venv/bin/python benchmarks/", c)
        or re.match(r"^(?:\.venv/bin/)?semcom \w+ --", c)
    ]


ALL = [c for block in _blocks() for c in block] + _table_commands()


def _words(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # OMP_WAIT_POLICY=PASSIVE ...
        words.pop(0)
    return words


def test_the_readme_has_commands_and_no_machine_paths():
    assert any(c.startswith("make demo") for c in ALL) and any(
        c.startswith("make test") for c in ALL
    )
    for cmd in ALL:
        assert "/work/" not in cmd, cmd
        first = _words(cmd)[0]
        assert first != "semcom", f"bare `semcom` (use .venv/bin/semcom): {cmd}"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for cmd in ALL:
        words = _words(cmd)
        if words[0] == "make":
            for target in words[1:]:
                assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), cmd


@cache
def _script_help(script: str) -> str:
    res = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-500:]
    return res.stdout


@pytest.mark.parametrize("cmd", [c for c in ALL if "benchmarks/" in c])
def test_benchmark_commands_name_real_scripts_and_options(cmd):
    words = _words(cmd)
    script = next(w for w in words if w.startswith("benchmarks/"))
    assert (ROOT / script).is_file(), cmd
    help_text = _script_help(script)
    for opt in (w.split("=")[0] for w in words if w.startswith("--")):
        assert opt in help_text, f"{script} has no option {opt}"


def _semcom_commands() -> list[list[str]]:
    """Arguments of every ``.venv/bin/semcom`` command, and of the semcom command a
    ``torchrun ... -m semcom ...`` line starts."""
    out = [_words(c)[1:] for c in ALL if _words(c)[0].endswith("bin/semcom")]
    for c in ALL:
        words = _words(c)
        if words[0].endswith("bin/torchrun"):
            assert "-m" in words and words[words.index("-m") + 1] == "semcom", c
            out.append(words[words.index("-m") + 2 :])
    return out


@pytest.mark.parametrize("args", _semcom_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_semcom_command_parses_and_its_specs_build(args):
    import typer

    from semcom.channel.spec import split_channel_list
    from semcom.cli import app
    from semcom.schemes import create_scheme, split_scheme_list

    if args[0] == "train":
        from semcom.train.cli import build_parser, trainable_models

        ns = build_parser("semcom train").parse_args(args[1:])
        assert ns.model in trainable_models()
        return
    command = typer.main.get_command(app).commands[args[0]]
    ctx = command.make_context(args[0], list(args[1:]), resilient_parsing=False)
    params = ctx.params
    for spec in split_scheme_list(params.get("schemes_") or ""):
        create_scheme(spec)
    scheme = params.get("scheme")
    for spec in scheme if isinstance(scheme, (list, tuple)) else [scheme] if scheme else []:
        create_scheme(spec)
    for key in ("channels_", "channels"):
        if params.get(key):
            split_channel_list(params[key])


def test_the_command_line_block_runs(tmp_path, monkeypatch, capsys):
    """The README's command-line examples, run as written, in a fresh folder."""
    from semcom.cli import main
    from semcom.data.synthetic import SyntheticWorld
    from semcom.imageio import save_image

    monkeypatch.chdir(tmp_path)
    save_image(SyntheticWorld().generate([0]).images[0], tmp_path / "image.png")
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
    photo.save(tmp_path / "photo.jpg")
    (tmp_path / "photos").mkdir()
    for i in range(2):
        photo.rotate(90 * i, expand=True).save(tmp_path / "photos" / f"p{i}.jpg")
    block = next(b for b in _blocks() if any("bin/semcom send" in c for c in b))
    ran = 0
    for cmd in block:
        args = _words(cmd)[1:]
        if args[0] in RUN_FOR_REAL:
            assert main(args) == 0, f"{cmd}: {capsys.readouterr().err}"
            ran += 1
    assert ran >= 7
    assert (tmp_path / "msg.smc").stat().st_size <= 400
    assert (tmp_path / "photo.smc").stat().st_size <= 800
    assert len(list((tmp_path / "photos-smc").iterdir())) == 2
