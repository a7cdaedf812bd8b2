"""Shared fixtures of the test suite."""

from pathlib import Path

import pytest

from tests import PROJECT_ROOT


@pytest.fixture(scope="session")
def project_root() -> Path:
    """Root of the project checkout."""
    return PROJECT_ROOT
