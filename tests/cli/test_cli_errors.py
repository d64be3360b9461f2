"""The command line's failure modes: one line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepreservoir.cli import main


def run_main(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments, status=None):
    assert code != 0
    if status is not None:
        assert code == status
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_flag(capsys):
    code, _, err = run_main(capsys, "demo", "--bogus")
    assert_one_line_error(code, err, "unrecognized arguments: --bogus", status=2)


def test_unknown_command(capsys):
    code, _, err = run_main(capsys, "frobnicate")
    assert_one_line_error(code, err, "invalid choice: 'frobnicate'", status=2)


def test_bad_flag_value(capsys):
    code, _, err = run_main(capsys, "sweep", "x.toml", "--workers", "0")
    assert_one_line_error(code, err, "--workers", "expected a positive int", status=2)


def test_no_command_prints_help_and_fails(capsys):
    code, _, err = run_main(capsys)
    assert code == 2
    assert "usage: deepreservoir" in err


def test_inspect_missing_path(capsys, tmp_path):
    code, _, err = run_main(capsys, "inspect", str(tmp_path / "nope"))
    assert_one_line_error(code, err, "deepreservoir inspect: error:", "nope", status=1)


def test_inspect_not_an_artifact(capsys, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("hello")
    code, _, err = run_main(capsys, "inspect", str(tmp_path / "junk"))
    assert_one_line_error(code, err, "deepreservoir inspect: error:", status=1)


def test_sweep_missing_config(capsys, tmp_path):
    code, _, err = run_main(capsys, "sweep", str(tmp_path / "missing.toml"))
    assert_one_line_error(code, err, "missing.toml", "does not exist", status=1)


@pytest.mark.parametrize(("text", "fragment"), [
    ("[sweep\nranks = [1]", "not valid TOML"),
    ("[train]\nepochs = 1", "missing the [sweep] table"),
    ("[sweep]\nrankz = [1]", "unknown key(s) in [sweep]: rankz"),
    ("[sweep]\nranks = [0, 1]", "'sweep.ranks' must be a non-empty list of ints >= 1"),
    ("[sweep]\nranks = [1, 1]", "without repeats"),
    ("[sweep]\nfamilies = ['gauss']", "'sweep.families' must be one of"),
    ("[sweep]\npresets = ['huge']", "'sweep.presets' must be one of"),
    ("[sweep]\ndataset = 'cifar'", "'sweep.dataset' must be one of mnist1d, digits"),
    ("[sweep]\nranks = [65]\npresets = ['tiny']", "exceed the narrowest layer (40)"),
    ("[sweep]\n[train]\nlr = -1", "'train.lr' must be a number > 0"),
    ("[sweep]\n[train]\nepochs = 2.5", "'train.epochs' must be an int >= 1"),
    ("[sweep]\n[train]\nmomentum = 0.9", "unknown key(s) in [train]: momentum"),
    ("[sweep]\n[extra]\nx = 1", "unknown table(s) extra"),
])
def test_sweep_bad_config(capsys, tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, _, err = run_main(capsys, "sweep", str(path))
    assert_one_line_error(code, err, fragment, status=1)
    assert not (tmp_path / "bad.nc").exists()


def test_reproduce_unknown_study(capsys, tmp_path):
    (tmp_path / "one.py").write_text("TITLE = 't'\nPAPER = 'p'\ndef run(out_dir, **kw):\n"
                                     "    return {}\n")
    code, _, err = run_main(capsys, "reproduce", "nosuch", "--studies-dir", str(tmp_path))
    assert_one_line_error(code, err, "Unknown study 'nosuch'", "one", status=1)


def test_reproduce_without_name(capsys):
    code, _, err = run_main(capsys, "reproduce")
    assert_one_line_error(code, err, "needs a study NAME or --list", status=2)


def test_reproduce_missing_studies_dir(capsys, tmp_path):
    code, _, err = run_main(capsys, "reproduce", "--list", "--studies-dir",
                            str(tmp_path / "absent"))
    assert_one_line_error(code, err, "does not exist", status=1)


def test_console_script_error_is_one_line(tmp_path):
    """Through a real process: the entry point's exit status and stderr."""
    done = subprocess.run([sys.executable, "-m", "deepreservoir.cli", "inspect",
                           str(tmp_path / "nothing")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "No saved model" in done.stderr
