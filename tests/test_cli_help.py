"""Help and listings say true things: every example they show is accepted."""

from __future__ import annotations

import re

import pytest

from semcom.channel import create_channel
from semcom.channel.spec import EXAMPLES, help_text, split_channel_list
from semcom.cli import main
from semcom.errors import InputError


@pytest.mark.parametrize("spec", [s for s, _ in EXAMPLES])
def test_every_channel_example_is_accepted_by_channels_option(spec):
    assert split_channel_list(spec) == [spec]
    assert split_channel_list(f"ideal,{spec},bsc:1e-4") == ["ideal", spec, "bsc:1e-4"]
    create_channel(spec)


def test_channels_output_is_plain_text_and_shows_the_examples(capsys):
    assert main(["channels"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == help_text()
    assert "``" not in out and "::" not in out  # no RST markup
    for spec, _ in EXAMPLES:
        assert spec in out
    for line in out.splitlines():
        assert len(line) <= 80, line
    for example in re.findall(r"semcom \w+ --channels (\S+)", out):
        split_channel_list(example)


def test_channel_lists_split_at_kinds_only():
    assert split_channel_list("erasure:0.1,64,burst=4,ideal") == ["erasure:0.1,64,burst=4", "ideal"]
    assert split_channel_list("bsc(ber=1e-3),awgn:snr_db=5,qam=16") == [
        "bsc(ber=1e-3)",
        "awgn:snr_db=5,qam=16",
    ]
    with pytest.raises(InputError, match="unknown channel 'nosuch'"):
        split_channel_list("ideal,nosuch:1")
    with pytest.raises(InputError, match="unknown channel 'foo' in spec 'foo'"):
        split_channel_list("ideal,foo")


def test_schemes_lists_options_with_defaults_that_parse(capsys):
    from semcom.schemes import create_scheme, list_schemes

    assert main(["schemes"]) == 0
    out = capsys.readouterr().out
    blocks = {b.split(":", 1)[0]: b for b in out.strip().split("\n\n") if not b.startswith("Ex")}
    assert set(blocks) == set(list_schemes())
    for name, block in blocks.items():
        head = block.splitlines()[0]
        assert len(head) > len(name) + 2  # a summary after the name
        assert "rate:" in block
        for opt, value in re.findall(r"^  (\w+)=(\S+): ", block, flags=re.M):
            if value in ("none", "cpu") or opt in ("vit", "decoder"):
                continue
            create_scheme(f"{name}[{opt}={value}]")  # the default shown is accepted
    example = re.search(r"--scheme '([^']+)'", out).group(1)
    create_scheme(example)


def _help_words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z0-9_-]{2,}", text)


@pytest.mark.parametrize("columns", ["60", "120"])
def test_help_text_reads_as_prose_at_any_width(monkeypatch, capsys, columns):
    """Every word of every command's and option's help reaches the screen: no Rich markup
    eats `name[key=value]`, nothing is cropped, no docstring line breaks mid-sentence."""
    import typer

    from semcom.cli import app

    monkeypatch.setenv("COLUMNS", columns)
    command = typer.main.get_command(app)
    for name, cmd in command.commands.items():
        if name == "train":
            continue  # argparse, checked below
        assert main([name, "--help"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "…" not in out, f"{name}: cropped help"
        texts = [cmd.help or ""] + [p.help or "" for p in cmd.params]
        for text in texts:
            for word in _help_words(text):
                assert word in out, f"semcom {name} --help lost {word!r}"
    assert main(["send", "--help"]) == 0
    assert "name[key=value,...]" in " ".join(capsys.readouterr().out.split())
    assert main(["--help"]) == 0
    listing = " ".join(capsys.readouterr().out.split())
    for cmd in command.commands.values():
        assert cmd.short_help and cmd.short_help in listing  # whole sentences, not cut


def test_train_help_names_the_command_and_every_model(capsys):
    from semcom.train.cli import trainable_models

    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: semcom train") and "python -m" not in out and "``" not in out
    flat = " ".join(out.split())
    for model in trainable_models():
        assert model in flat
    assert main(["train", "--model", "nosuch", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("semcom: error: unknown model 'nosuch'")
    assert "vit-synth" in err[0]


def test_unknown_dataset_is_named(capsys):
    assert main(["bench", "--dataset", "nosuch", "--n-images", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nosuch'" in err and "tiny-imagenet" in err


def test_examples_in_option_help_are_accepted():
    """Specs shown as examples in --help (scheme specs after 'e.g.') build."""
    import typer

    from semcom.cli import app
    from semcom.schemes import create_scheme

    command = typer.main.get_command(app)
    found = 0
    for cmd in command.commands.values():
        for param in cmd.params:
            text = param.help or ""
            for spec in re.findall(r"\b((?:jpeg|webp|avif|raw|patch-\w+)\[[^\]\s]*\])", text):
                if "..." in spec or "PATH" in spec:
                    continue  # a pattern (name[key=value,...]), not an example
                create_scheme(spec)
                found += 1
            for spec in re.findall(r"\b(\w+:[\w.:,=-]+)", text):
                if spec.split(":")[0] in ("ideal", "bsc", "erasure", "budget", "awgn", "rayleigh"):
                    split_channel_list(spec)
                    found += 1
    assert found >= 3


def test_rates_that_are_not_numbers_are_one_line(capsys):
    assert main(["bench", "--rates", "0.25,abc", "--n-images", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'abc' is not a number" in err[0]
