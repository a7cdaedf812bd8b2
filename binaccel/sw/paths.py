"""Where binaccel writes its outputs: one build folder, chosen by the user.

Every generated file (checkpoints, model files, Verilog, simulation builds, synthesis reports,
bitstreams, bench and demo results) goes under :func:`build_dir`. It is, in order of precedence:

1. the folder set by :func:`set_build_dir` (the ``binaccel --build-dir DIR`` option);
2. the environment variable ``BINACCEL_BUILD_DIR``;
3. ``build`` in the current working directory.

The folder is resolved when it is asked for, not at import, so the option and the variable apply to
everything that runs after them. Nothing is ever written inside the installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "build_dir", "set_build_dir"]

#: Environment variable naming the build folder.
ENV_VAR = "BINACCEL_BUILD_DIR"

_chosen: Path | None = None


def set_build_dir(path) -> None:
    """Use ``path`` as the build folder from now on (``None``: back to the variable or ``./build``).
    The choice is also put into ``BINACCEL_BUILD_DIR`` of this process, so that the processes it
    starts (simulations, tool runs) write into the same folder."""
    global _chosen
    _chosen = None if path is None else Path(path).expanduser().resolve()
    if _chosen is not None:
        os.environ[ENV_VAR] = str(_chosen)


def build_dir(*parts) -> Path:
    """The build folder (absolute), or a path below it when ``parts`` are given. Not created."""
    if _chosen is not None:
        root = _chosen
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR]).expanduser().resolve()
    else:
        root = Path.cwd().resolve() / "build"
    return root.joinpath(*parts)
