"""The binaccel command: train -> export -> check -> info on the small digits set, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from binaccel.sw import modelfile
from binaccel.cli import main
from binaccel.sw.randmodel import random_model


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
    text = capsys.readouterr().out
    assert "conv1" in text and "mcn1" in text and "logits" in text


def test_info_on_random_model_and_bad_file(tmp_path, capsys):
    path = tmp_path / "r.bnm"
    modelfile.save(random_model(np.random.default_rng(0)), path)
    main(["info", str(path)])
    assert "fc" in capsys.readouterr().out
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
