"""Bad input to the ``binaccel`` command, run as a user runs it: one line on stderr naming the file or
option and what was expected, the exit status of its class, no traceback, and no output left behind."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from binaccel.cli import main
from binaccel.sw import modelfile
from binaccel.sw.randmodel import random_model


def _run(tmp_path, *argv, env=None):
    """As a user runs it: a new process (so an escaping exception would show its traceback)."""
    return subprocess.run([sys.executable, "-m", "binaccel", "--build-dir", str(tmp_path / "build"), *argv],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **(env or {})},
                          timeout=300)


def _one_line_error(r, status, *needles):
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


class _Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def _call(tmp_path, capsys, *argv):
    """The same in this process (``binaccel.cli.main``), for the many cases that need no new process."""
    capsys.readouterr()
    try:
        code = main(["--build-dir", str(tmp_path / "build"), *argv])
    except SystemExit as e:
        code = e.code
    return _Result(code, capsys.readouterr().err)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.bnm"
    modelfile.save(random_model(np.random.default_rng(0)), path)
    return path


@pytest.mark.parametrize("argv, needles", [
    (["train", "--model", "siman", "--epochs", "0"], ["--epochs", "at least 1", "'0'"]),
    (["train", "--model", "siman", "--lr", "-1"], ["--lr", "above 0"]),
    (["train", "--model", "siman", "--threads", "-1"], ["--threads", "at least 0"]),
    (["train", "--model", "siman", "--epochs", "two"], ["--epochs", "expected an integer", "'two'"]),
    (["export", "--checkpoint", "x.pt", "--m-bits", "0"], ["--m-bits", "at least 1"]),
    (["run", "--model", "m.bnm", "--images", "-1"], ["--images", "at least 1"]),
    (["run", "--model", "m.bnm", "--idle", "1.5"], ["--idle", "probability in [0, 1)"]),
    (["synth", "--board", "icebreaker", "--timeout", "-1"], ["--timeout", "above 0"]),
    (["bench", "--reps", "0"], ["--reps", "at least 1"]),
])
def test_bad_numbers_are_usage_errors(tmp_path, capsys, argv, needles):
    _one_line_error(_call(tmp_path, capsys, *argv), 2, *needles)
    assert not (tmp_path / "build").exists()


def test_missing_file_in_a_new_process(tmp_path):
    _one_line_error(_run(tmp_path, "info", str(tmp_path / "none.bnm")), 2, str(tmp_path / "none.bnm"),
                    "No such file")


def test_missing_and_wrong_files(tmp_path, capsys, model_file):
    _one_line_error(_call(tmp_path, capsys, "info", str(tmp_path)), 2, str(tmp_path))
    _one_line_error(_call(tmp_path, capsys, "export", "--checkpoint", str(tmp_path / "none.pt")), 2,
                    str(tmp_path / "none.pt"), "not found")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint")
    _one_line_error(_call(tmp_path, capsys, "export", "--checkpoint", str(bad)), 2, str(bad),
                    "not a readable checkpoint")
    assert not (tmp_path / "bad.bnm").exists()
    # a model file given as a checkpoint
    _one_line_error(_call(tmp_path, capsys, "export", "--checkpoint", str(model_file), "--out", str(tmp_path / "o.bnm")), 2,
                    str(model_file))
    assert not (tmp_path / "o.bnm").exists()


def test_inputs_are_never_overwritten(tmp_path, capsys, model_file):
    before = model_file.read_bytes()
    _one_line_error(_call(tmp_path, capsys, "export", "--model-file", str(model_file), "--format", "qonnx",
                         "--out", str(model_file)), 2, str(model_file), "overwrite the input")
    _one_line_error(_call(tmp_path, capsys, "export", "--model-file", str(model_file)), 2, str(model_file),
                    "expected --format qonnx")
    assert model_file.read_bytes() == before


def test_data_dir_needs_cifar10(tmp_path, capsys):
    _one_line_error(_call(tmp_path, capsys, "train", "--model", "siman", "--data", "digits", "--data-dir", str(tmp_path)),
                    2, "--data-dir", "cifar10")


def test_bad_output_folder_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _one_line_error(_call(tmp_path, capsys, "train", "--model", "siman", "--data", "digits", "--out", str(blocker)),
                    2, str(blocker))
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root may write into a read-only folder
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
        try:
            _one_line_error(_call(tmp_path, capsys, "train", "--model", "siman", "--data", "digits", "--out",
                                  str(out)), 2, str(out), "not writable")
        finally:
            out.chmod(0o700)


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "info", str(tmp_path / "none.bnm")])
    monkeypatch.setenv("BINACCEL_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["info", str(tmp_path / "none.bnm")])


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip().startswith("binaccel ")


def test_check_images(tmp_path, capsys):
    out = tmp_path / "m"
    main(["train", "--model", "sign", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress"])
    main(["export", "--checkpoint", str(out / "sign.pt"), "--data", "digits"])
    capsys.readouterr()
    main(["check", "--checkpoint", str(out / "sign.pt"), "--model-file", str(out / "sign.bnm"), "--data", "digits",
          "--images", "50"])
    r = json.loads(capsys.readouterr().out)
    assert (r["checked"], r["matched"]) == (50, 50)
    _one_line_error(_call(tmp_path, capsys, "check", "--checkpoint", str(out / "sign.pt"), "--model-file",
                          str(out / "sign.bnm"), "--images", "0"), 2, "--images", "at least 1")
