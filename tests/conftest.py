"""Shared fixtures of the test suite."""

from pathlib import Path

import pytest

from tests import PROJECT_ROOT


@pytest.fixture(scope="session")
def project_root() -> Path:
    """Root of the project checkout."""
    return PROJECT_ROOT


@pytest.fixture
def use_record(tmp_path, monkeypatch):
    """The curated record of synthesis results (``binaccel.records.record_path``, normally the committed
    ``binaccel/measured.json``) becomes ``tmp_path / "measured.json"`` for the test. Returns a function
    that writes a record there (``use_record(record)`` -> its path). Tests that read the record use this,
    so that they do not depend on the figures committed in the package; only the test of the installed
    record itself (tests/app/test_records.py) reads the committed file."""
    from binaccel import records

    path = tmp_path / "measured.json"
    monkeypatch.setattr(records, "record_path", lambda: path)

    def use(record) -> Path:
        records.write_record(record, path)
        return path

    return use
