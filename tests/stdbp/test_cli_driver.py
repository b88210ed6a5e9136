"""The `stdbp` driver, the one-line error guard and atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stdbp import cli
from stdbp.errors import UserError, cli_errors
from stdbp.fileio import atomic_write, atomic_write_json, refuse_overwrite


def test_usage_lists_every_command(capsys):
    cli.main([])
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frobnicate" in err[0]


def test_every_command_module_resolves():
    """Each subcommand names a module and a typer app that exist (catches a renamed module)."""
    for name in cli.COMMANDS:
        app = cli._load(name)
        assert callable(app), name


def test_user_error_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        with cli_errors():
            raise UserError("model.onnx", "node 3: attribute threshold missing", "re-export the model")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "model.onnx" in err and "threshold" in err and "fix:" in err


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})

    def broken(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind


def test_refuse_overwrite(tmp_path):
    target = tmp_path / "x"
    refuse_overwrite(target, force=False)
    target.write_text("keep me")
    with pytest.raises(UserError, match="already exists"):
        refuse_overwrite(target, force=False)
    refuse_overwrite(target, force=True)
    assert target.read_text() == "keep me"


def test_driver_version_in_subprocess():
    out = subprocess.run([sys.executable, "-c", "from stdbp.cli import main; main(['--version'])"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip()
