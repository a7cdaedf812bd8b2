"""Atomic file output: a reader sees the old file or the whole new one, never a half-written one.

Every writer of reports, records, checkpoints' JSON and model files goes through these: the data
goes to a temporary file in the target's folder (same file system), which then replaces the target
with ``os.replace``; the folder is created if needed. The file gets the permissions a plain
``open(path, "w")`` would give it (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
"""

from __future__ import annotations

import json
import os
import tempfile

__all__ = ["write_bytes_atomic", "write_text_atomic", "write_json_atomic"]


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once, at import (os.umask can only be read by setting it, which is not thread-safe)
_UMASK = _read_umask()


def write_bytes_atomic(path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all; ``durable``: also flush it to the disk
    (``fsync``) before it replaces the target, so that a crash cannot leave an empty file."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path, obj, *, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")
