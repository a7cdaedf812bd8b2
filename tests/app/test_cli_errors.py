"""Bad input to the ``binaccel`` command, run as a user runs it: one line on stderr naming the file or
option and what was expected, the exit status of its class, no traceback, and no output left behind."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from binaccel.cli import build_parser, main
from binaccel.sw import modelfile, netzoo
from binaccel.sw.models import build
from binaccel.sw.pipeline import export_model
from binaccel.sw.randmodel import random_model
from binaccel.sw.train import save_checkpoint
from binaccel.sw.zoo import configs


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


def _no_traceback_and_only(folder, *names):
    """``folder`` holds exactly ``names`` (nothing half-written, no temporary file left)."""
    assert sorted(os.listdir(folder)) == sorted(names)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Untrained checkpoints and the model files exported from them (no training: milliseconds):
    ``sign`` and ``siman`` on 8x8 digits, ``sign_b`` (sign, other weights), ``sign28`` (sign, 28x28),
    and ``vgg`` (a CIFAR-shaped network that does not fit the default builds, model file only)."""
    d = tmp_path_factory.mktemp("models")
    for name, arch, seed, shape in (("sign", "sign", 0, (1, 8, 8)), ("sign_b", "sign", 1, (1, 8, 8)),
                                    ("siman", "siman", 0, (1, 8, 8)), ("sign28", "sign", 0, (1, 28, 28))):
        net, _ = configs(arch, input_shape=shape, classes=10)
        torch.manual_seed(seed)
        m = build(net)
        m.eval()
        save_checkpoint(m, d / f"{name}.pt")
        export_model(m, str(d / f"{name}.bnm"), name=name)
    modelfile.save(netzoo.build("vgg_small"), d / "vgg.bnm")
    return d


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.bnm"
    modelfile.save(random_model(np.random.default_rng(0)), path)
    return path


@pytest.mark.parametrize("argv, needles", [
    (["train", "--model", "siman", "--epochs", "0"], ["--epochs", "at least 1", "'0'"]),
    (["train", "--model", "siman", "--lr", "-1"], ["--lr", "above 0"]),
    (["train", "--model", "siman", "--threads", "-1"], ["--threads", "thread count in 0.."]),
    (["train", "--model", "siman", "--threads", "100000"], ["--threads", "thread count in 0..", "'100000'"]),
    (["train", "--model", "siman", "--data", "cifar10", "--data-dir", "none"], ["--data-dir", "none", "no such folder"]),
    (["train", "--model", "siman", "--epochs", "two"], ["--epochs", "expected an integer", "'two'"]),
    (["export", "--checkpoint", "x.pt", "--m-bits", "0"], ["--m-bits", "1..16"]),
    (["export", "--checkpoint", "x.pt", "--m-bits", "99"], ["--m-bits", "1..16", "'99'"]),
    (["run", "--model", "m.bnm", "--images", "-1"], ["--images", "at least 1"]),
    (["run", "--model", "m.bnm", "--idle", "1.5"], ["--idle", "probability in [0, 1)"]),
    (["synth", "--board", "icebreaker", "--timeout", "-1"], ["--timeout", "above 0"]),
    (["synth", "--board", "icebreaker", "--closure-margin", "2"], ["--closure-margin", "(0, 1]"]),
    (["bench", "--reps", "0"], ["--reps", "at least 1"]),
    (["bench", "--threads", "100000"], ["--threads", "thread count in 1.."]),
    (["bench", "--networks", "mnist_sign,nope"], ["--networks", "vgg_small", "'mnist_sign,nope'"]),
    (["demo", "--models", "sign,nope"], ["--models", "siman", "'sign,nope'"]),
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


# --- checkpoints ------------------------------------------------------------------------------------

def _broken_checkpoints(models, tmp_path):
    """(file, what the message says) for checkpoints broken in every way a user meets."""
    good = (models / "sign.pt").read_bytes()
    blob = torch.load(models / "sign.pt", weights_only=False)
    cases = []

    def case(name, needle, data=None, obj=None):
        path = tmp_path / f"{name}.pt"
        if obj is not None:
            torch.save(obj, path)
        else:
            path.write_bytes(data)
        cases.append((path, needle))

    case("truncated", "not a readable checkpoint", data=good[:1000])
    case("empty", "not a readable checkpoint", data=b"")
    case("text", "not a readable checkpoint", data=b"hello\n")
    case("foreign", "field 'format': expected 'binaccel-checkpoint'", obj={"weights": torch.zeros(3)})
    case("newer", "field 'version': expected 1", obj={**blob, "version": 9})
    case("noconfig", "field 'config'", obj={k: v for k, v in blob.items() if k != "config"})
    case("badconfig", "field 'config'", obj={**blob, "config": {**blob["config"], "arch": "nope"}})
    first = next(iter(blob["state_dict"]))
    case("missing", "field 'state_dict'", obj={**blob, "state_dict": {k: v for k, v in blob["state_dict"].items()
                                                                     if k != first}})
    key = "convs.0.weight"
    case("reshaped", f"field 'state_dict.{key}'", obj={**blob, "state_dict": {**blob["state_dict"],
                                                                              key: torch.zeros(3)}})
    (tmp_path / "folder.pt").mkdir()
    cases.append((tmp_path / "folder.pt", "is a folder"))
    return cases


def test_broken_checkpoints(tmp_path, capsys, models):
    """Every broken checkpoint: one line naming the file and the field, status 2, no output left."""
    for path, needle in _broken_checkpoints(models, tmp_path):
        out = tmp_path / "out" / "o.bnm"
        _one_line_error(_call(tmp_path, capsys, "export", "--checkpoint", str(path), "--out", str(out)), 2,
                        str(path), needle)
        _one_line_error(_call(tmp_path, capsys, "check", "--checkpoint", str(path), "--model-file",
                              str(models / "sign.bnm"), "--data", "digits"), 2, str(path), needle)
        assert not (tmp_path / "out").exists()


def test_broken_checkpoint_in_a_new_process(tmp_path, models):
    bad = tmp_path / "t.pt"
    bad.write_bytes((models / "sign.pt").read_bytes()[:1000])
    last = _one_line_error(_run(tmp_path, "export", "--checkpoint", str(bad)), 2, str(bad),
                           "not a readable checkpoint")
    assert len(last) < 200
    assert sorted(os.listdir(tmp_path)) == ["t.pt"]


# --- a checkpoint and a model file that do not belong together, images that do not fit the model ------

@pytest.mark.parametrize("checkpoint, model, field", [
    ("siman", "sign", "meta.arch"),               # another architecture, the same shapes
    ("sign_b", "sign", "meta.weights_sha256"),    # the same network, other weights
    ("sign", "sign28", "input_shape"),            # another input shape
])
def test_checkpoint_and_model_file_must_belong_together(tmp_path, capsys, models, checkpoint, model, field):
    ckpt, bnm = models / f"{checkpoint}.pt", models / f"{model}.bnm"
    for argv in (["check", "--checkpoint", str(ckpt), "--model-file", str(bnm), "--data", "digits"],
                 ["run", "--model", str(bnm), "--checkpoint", str(ckpt), "--data", "digits", "--no-progress",
                  "--json", str(tmp_path / "r.json")]):
        _one_line_error(_call(tmp_path, capsys, *argv), 2, str(bnm), str(ckpt), f"field '{field}'")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "build").exists()  # refused before any run


def test_the_pair_that_belongs_together_checks(tmp_path, capsys, models):
    capsys.readouterr()
    assert main(["check", "--checkpoint", str(models / "sign.pt"), "--model-file", str(models / "sign.bnm"),
                 "--data", "digits", "--images", "20"]) is None
    r = json.loads(capsys.readouterr().out)
    assert (r["checked"], r["matched"]) == (20, 20)


def test_images_must_fit_the_model(tmp_path, capsys, models):
    bnm = models / "sign.bnm"
    for argv in (["check", "--checkpoint", str(models / "sign.pt"), "--model-file", str(bnm), "--data", "mnist"],
                 ["run", "--model", str(bnm), "--data", "mnist"],
                 ["run", "--model", str(bnm), "--data", "mnist", "--design", "engine-link"]):
        _one_line_error(_call(tmp_path, capsys, *argv), 2, str(bnm), "(1, 8, 8)", "--data mnist", "(1, 28, 28)")
    _one_line_error(_call(tmp_path, capsys, "check", "--checkpoint", str(models / "sign.pt"), "--model-file", str(bnm),
                          "--data", "digits", "--images", "5000"), 2, "--images 5000", "397")
    _one_line_error(_call(tmp_path, capsys, "run", "--model", str(bnm), "--data", "digits", "--images", "5000"), 2,
                    "--images 5000", "397")
    assert not (tmp_path / "build").exists()


def test_a_network_that_does_not_fit_the_build(tmp_path, capsys, models):
    vgg = models / "vgg.bnm"
    _one_line_error(_call(tmp_path, capsys, "run", "--model", str(vgg)), 2, str(vgg),
                    "does not fit the accelerator build", "conv0")
    _one_line_error(_call(tmp_path, capsys, "run", "--model", str(vgg), "--design", "engine-link"), 2, str(vgg),
                    "does not run on the engine build 2x2x32", "max_fan_in")
    assert not (tmp_path / "build").exists()


def test_the_fp_model_is_calibrated_on_images_of_its_shape(tmp_path, capsys):
    net, _ = configs("fp", input_shape=(1, 8, 8), classes=10)
    ckpt = tmp_path / "fp.pt"
    save_checkpoint(build(net), ckpt)
    _one_line_error(_call(tmp_path, capsys, "export", "--checkpoint", str(ckpt)), 2, str(ckpt), "--data mnist",
                    "(1, 28, 28)", "(1, 8, 8)")
    _no_traceback_and_only(tmp_path, "fp.pt")


# --- the data options --------------------------------------------------------------------------------

def test_data_options_are_checked_by_every_command(tmp_path, capsys, models):
    ckpt, bnm = str(models / "sign.pt"), str(models / "sign.bnm")
    for argv in (["export", "--checkpoint", ckpt, "--out", str(tmp_path / "o.bnm")],
                 ["check", "--checkpoint", ckpt, "--model-file", bnm],
                 ["run", "--model", bnm]):
        _one_line_error(_call(tmp_path, capsys, *argv, "--data-dir", str(tmp_path)), 2, "--data-dir", "cifar10")
        _one_line_error(_call(tmp_path, capsys, *argv, "--data", "cifar10"), 2, "--data cifar10 needs --data-dir")
    _no_traceback_and_only(tmp_path)


def test_bad_cifar10_folder(tmp_path, capsys):
    """A CIFAR-10 folder without batches or with a broken batch: the file named, no checkpoint folder made."""
    (tmp_path / "c").mkdir()
    out = tmp_path / "out"
    _one_line_error(_call(tmp_path, capsys, "train", "--model", "sign", "--data", "cifar10", "--data-dir",
                          str(tmp_path / "c"), "--out", str(out)), 2, str(tmp_path / "c"), "data_batch_1")
    (tmp_path / "c" / "data_batch_1").write_bytes(b"not a pickle")
    _one_line_error(_call(tmp_path, capsys, "train", "--model", "sign", "--data", "cifar10", "--data-dir",
                          str(tmp_path / "c"), "--out", str(out)), 2, str(tmp_path / "c" / "data_batch_1"),
                    "not a CIFAR-10 python batch file")
    assert not out.exists()


# --- outputs ----------------------------------------------------------------------------------------

def test_outputs_that_cannot_be_written(tmp_path, capsys, models):
    """An output below a file, a folder given as the output file, a device: refused before any work."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    ckpt, bnm = str(models / "sign.pt"), str(models / "sign.bnm")
    for argv, needle in (
            (["export", "--checkpoint", ckpt, "--data", "digits", "--out", str(blocker / "o.bnm")], str(blocker)),
            (["export", "--checkpoint", ckpt, "--data", "digits", "--out", str(tmp_path)], "is a folder"),
            (["export", "--checkpoint", ckpt, "--data", "digits", "--out", os.devnull], "not a regular file"),
            (["run", "--model", bnm, "--data", "digits", "--json", str(blocker / "r.json")], str(blocker)),
            (["verilog", "-o", str(blocker / "e.v")], str(blocker)),
            (["records", "--markdown", str(blocker / "r.md")], str(blocker)),
            (["train", "--model", "sign", "--out", str(blocker / "m")], str(blocker)),
            (["demo", "--out", str(blocker / "d")], str(blocker)),
            (["bench", "--out", str(blocker / "b")], str(blocker))):
        _one_line_error(_call(tmp_path, capsys, *argv), 2, needle)
    assert blocker.read_text() == "x"
    _no_traceback_and_only(tmp_path, "a_file")
    _one_line_error(_call(tmp_path, capsys, "--build-dir", str(blocker), "info", bnm), 2, "--build-dir",
                    str(blocker), "is a file")


def test_an_input_is_never_an_output(tmp_path, capsys, models):
    ckpt = tmp_path / "sign.pt"
    ckpt.write_bytes((models / "sign.pt").read_bytes())
    before = ckpt.read_bytes()
    for out in (ckpt, tmp_path / "." / "sign.pt"):
        _one_line_error(_call(tmp_path, capsys, "export", "--checkpoint", str(ckpt), "--out", str(out)), 2,
                        "overwrite the input", str(ckpt))
    bnm = tmp_path / "sign.bnm"
    bnm.write_bytes((models / "sign.bnm").read_bytes())
    _one_line_error(_call(tmp_path, capsys, "run", "--model", str(bnm), "--json", str(bnm)), 2, "overwrite the input")
    assert ckpt.read_bytes() == before and bnm.read_bytes() == (models / "sign.bnm").read_bytes()
    _no_traceback_and_only(tmp_path, "sign.pt", "sign.bnm")


def test_a_file_that_is_not_binaccels_is_replaced_only_with_force(tmp_path, capsys, models):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    ckpt, bnm = str(models / "sign.pt"), str(models / "sign.bnm")
    graph = tmp_path / "g.onnx"
    assert main(["export", "--model-file", bnm, "--format", "qonnx", "--out", str(graph)]) is None
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sign.pt").write_text("my notes")
    for argv in (["export", "--checkpoint", ckpt, "--data", "digits", "--out", str(notes)],
                 ["export", "--model-file", bnm, "--format", "qonnx", "--out", str(notes)],
                 ["import", "--qonnx", str(graph), "--out", str(notes)],
                 ["run", "--model", bnm, "--data", "digits", "--json", str(notes)],
                 ["verilog", "-o", str(notes)],
                 ["records", "--markdown", str(notes)]):
        _one_line_error(_call(tmp_path, capsys, *argv), 2, str(notes), "--force")
    _one_line_error(_call(tmp_path, capsys, "train", "--model", "sign", "--data", "digits", "--out",
                          str(tmp_path / "out")), 2, str(tmp_path / "out" / "sign.pt"), "not a binaccel checkpoint")
    _one_line_error(_call(tmp_path, capsys, "export", "--model-file", bnm, "--format", "qonnx", "--out",
                          str(tmp_path / "out" / "sign.pt")), 2, "not a QONNX graph written by binaccel")
    assert notes.read_text() == "my notes" and (tmp_path / "out" / "sign.pt").read_text() == "my notes"
    _no_traceback_and_only(tmp_path, "notes.txt", "g.onnx", "out")
    # binaccel's own output is replaced; --force replaces anything
    out = tmp_path / "m.bnm"
    export = ["export", "--checkpoint", ckpt, "--data", "digits", "--out"]
    assert main([*export, str(out)]) is None and modelfile.is_model_file(out)
    assert main([*export, str(out)]) is None and modelfile.is_model_file(out)
    assert main([*export, str(notes), "--force"]) is None and modelfile.is_model_file(notes)
    _no_traceback_and_only(tmp_path, "notes.txt", "g.onnx", "out", "m.bnm")


# --- interrupts ---------------------------------------------------------------------------------------

def _interrupt(tmp_path, argv, *, when):
    """Start ``binaccel ARGV`` as a user does and press Ctrl-C (SIGINT) once ``when(stderr_so_far)``."""
    env = {**os.environ, "BINACCEL_BUILD_DIR": str(tmp_path / "build")}
    env.pop("BINACCEL_DEBUG", None)
    p = subprocess.Popen([sys.executable, "-m", "binaccel", *argv], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, cwd=tmp_path, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    if when is not None:
        while not when(seen):
            chunk = os.read(p.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
    else:
        time.sleep(0.5)  # the libraries take seconds to load
    p.send_signal(signal.SIGINT)
    rest = p.stderr.read()
    p.wait(timeout=60)
    return p.returncode, (seen + rest).decode(errors="replace")


def test_ctrl_c_while_starting(tmp_path):
    """Pressed while the libraries load (and, on a fast machine, maybe just after): status 130."""
    out = tmp_path / "out"
    rc, err = _interrupt(tmp_path, ["train", "--model", "sign", "--data", "digits", "--epochs", "50", "--out", str(out),
                                    "--no-progress"], when=None)
    assert rc == 130 and "Traceback" not in err and err.strip().splitlines()[-1] == "binaccel: interrupted"
    assert not out.exists()


def test_ctrl_c_while_training_leaves_no_checkpoint(tmp_path):
    """Pressed once the progress bar shows that training runs: status 130, no checkpoint, no folder."""
    out = tmp_path / "out"
    rc, err = _interrupt(tmp_path, ["train", "--model", "sign", "--data", "digits", "--epochs", "50", "--out",
                                    str(out)], when=lambda seen: b"step" in seen)
    assert rc == 130 and "Traceback" not in err and err.strip().splitlines()[-1].endswith("binaccel: interrupted")
    assert not out.exists()


# --- help ---------------------------------------------------------------------------------------------

def _options(parser, command="binaccel"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, name)
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield command, action


def test_every_option_has_help_with_its_default():
    missing = [(c, a.option_strings or a.dest) for c, a in _options(build_parser()) if not a.help]
    assert not missing
    unshown = [(c, a.option_strings) for c, a in _options(build_parser())
               if a.default is not None and a.default is not False and "default" not in a.help]
    assert not unshown
    main_help = build_parser().format_help()
    assert "examples:" in main_help and "exit status" in main_help
