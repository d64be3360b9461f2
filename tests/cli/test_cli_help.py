"""``--help`` of every command exits 0 and names every option the command accepts."""

from __future__ import annotations

import pytest

from deepreservoir.cli import build_parser, main

OPTIONS = {
    "demo": ["--out", "--quick", "--seed", "--threads", "--no-progress"],
    "sweep": ["CONFIG", "--out", "--workers", "--threads-per-worker", "--threads", "--scheduler",
              "--no-progress"],
    "inspect": ["PATH"],
    "reproduce": ["NAME", "--list", "--quick", "--out", "--seed", "--data", "--recipe",
                  "--studies-dir", "--threads", "--no-progress"],
}


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in OPTIONS:
        assert command in out


@pytest.mark.parametrize("command", list(OPTIONS))
def test_command_help(capsys, command):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: deepreservoir {command}")
    for option in OPTIONS[command]:
        assert option in out


@pytest.mark.parametrize("command", list(OPTIONS))
def test_help_documents_exactly_the_parser_options(command):
    """The lists above are the parser's own options, so the help cannot drift from them."""
    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
    actions = sub.choices[command]._actions
    flags = {s for a in actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    positionals = {a.metavar for a in actions if not a.option_strings}
    assert flags | positionals == set(OPTIONS[command])


def test_version(capsys):
    import deepreservoir as dr

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"deepreservoir {dr.__version__}"
