"""The test suite, mirroring the package: ``tests/sw``, ``tests/hw``, ``tests/sim`` and ``tests/app``
(the application layer: cli, commands, bench, demo, records). Test-only gateware and testbenches live
here too (``tests/hw/gateware.py``, ``tests/sim/*_designs.py``, ``tests/sim/tb_*.py``)."""

from pathlib import Path

#: Root of the project checkout (the folder holding ``binaccel/``, ``docs/``, ``constraints/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
