"""The binaccel command: train -> export -> check -> info on the small digits set, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from binaccel.sw import modelfile
from binaccel.cli import main
from binaccel.sw.randmodel import random_model


def _info_layers(out: str) -> list[tuple[str, str]]:
    """(name, output kind) of each row of `binaccel info`'s layer table (the lines after the model line)."""
    return [(line.split()[0], line.split()[-1]) for line in out.splitlines()[1:]]


def test_train_export_check_info(tmp_path, capsys):
    out = tmp_path / "m"
    main(["train", "--model", "mcn1", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress"])
    assert (out / "mcn1.pt").exists()
    main(["export", "--checkpoint", str(out / "mcn1.pt"), "--data", "digits"])
    assert (out / "mcn1.bnm").exists()
    capsys.readouterr()
    main(["check", "--checkpoint", str(out / "mcn1.pt"), "--model-file", str(out / "mcn1.bnm"), "--data", "digits"])
    r = json.loads(capsys.readouterr().out)
    assert r["checked"] == 397 and r["matched"] == 397
    main(["info", str(out / "mcn1.bnm")])
    m = modelfile.load(out / "mcn1.bnm")
    assert m.name == "mcn1" and m.layers[0].name == "conv1" and m.layers[-1].out_kind == "logits"
    assert _info_layers(capsys.readouterr().out) == [(l.name, l.out_kind) for l in m.layers]


def test_info_on_random_model_and_bad_file(tmp_path, capsys):
    path = tmp_path / "r.bnm"
    modelfile.save(random_model(np.random.default_rng(0)), path)
    main(["info", str(path)])
    layers = modelfile.load(path).layers
    assert "fc" in [l.name for l in layers]
    assert _info_layers(capsys.readouterr().out) == [(l.name, l.out_kind) for l in layers]
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "r.bnm" in err and "checksum" in err.lower()


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "binaccel", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "demo" in r.stdout


def test_unknown_model_rejected():
    with pytest.raises(SystemExit):
        main(["train", "--model", "nope"])
