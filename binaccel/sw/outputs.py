"""Checks of an output path before the work that produces it starts.

A command that writes a file or a folder the user named calls these first, so that a path it could
not write, or should not replace, is an error (one line, naming the path) before any training,
simulation or export runs, not after it:

* :func:`check_output_file`: the file may be written (its folder exists and is writable, or can be
  created), it is not a folder, it is none of the command's inputs, and it is either absent, empty,
  or a file of the kind the command writes (``own``); anything else is replaced only with
  ``force``.
* :func:`check_output_dir`: the folder exists and is writable, or can be created.

Nothing is left by these checks (whether a folder can be written is tried with a temporary file,
removed at once); the writers (:mod:`binaccel.sw.atomic`) create the folders.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["OutputError", "check_output_file", "check_output_dir", "same_file"]


class OutputError(ValueError):
    """An output path that cannot be written or must not be replaced (names the path)."""


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (the same inode when both exist, else the same
    absolute path)."""
    a, b = os.fspath(a), os.fspath(b)
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(folder: Path) -> None:
    """Raise OSError unless a file can be created in ``folder`` (a temporary one, removed at once:
    permission bits alone do not tell, for root or on special file systems)."""
    with tempfile.TemporaryFile(dir=folder):
        pass


def check_output_dir(path, *, what: str = "output folder") -> Path:
    """Raise :class:`OutputError` unless the folder ``path`` exists and is writable, or can be created
    (its nearest existing ancestor is a writable folder); returns ``path`` as a Path."""
    path = Path(os.fspath(path)).expanduser()
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{path}: the {what} is a file, expected a folder")
        try:
            _probe(path)
        except OSError as exc:
            raise OutputError(f"{path}: the {what} is not writable ({exc.strerror or exc})") from None
        return path
    anc = _nearest_existing(path.absolute())
    if not anc.is_dir():
        raise OutputError(f"{path}: cannot create the {what}: {anc} is a file, not a folder")
    try:
        _probe(anc)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the {what}: {anc} is not writable ({exc.strerror or exc})") \
            from None
    return path


def check_output_file(path, *, inputs: Iterable = (), own: Callable[[Path], bool] | None = None,
                      what: str = "output", force: bool = False) -> Path:
    """Raise :class:`OutputError` unless ``path`` can be written and replacing it is safe:

    * it is not a folder or another file that is not a regular one (a device, a pipe: the atomic
      writers replace the path), and its folder can be written (:func:`check_output_dir`);
    * it is none of ``inputs`` (the files the command reads);
    * it does not exist, is empty, or ``own(path)`` says it is a file of the kind written here
      (``what``, e.g. "binaccel model file"); otherwise only ``force`` lets it be replaced.

    Returns ``path`` as a Path."""
    path = Path(os.fspath(path)).expanduser()
    for inp in inputs:
        if inp is not None and same_file(path, inp):
            other = "" if os.fspath(inp) == str(path) else f" {os.fspath(inp)}"
            raise OutputError(f"{path}: the output would overwrite the input{other}")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected the name of the {what} to write")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: is not a regular file; expected the name of the {what} to write")
    check_output_dir(path.parent)
    if path.exists() and not force and path.stat().st_size > 0 and own is not None and not own(path):
        raise OutputError(f"{path}: exists and is not a {what}; not replaced (--force replaces it)")
    return path
