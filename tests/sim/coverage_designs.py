"""A tiny design for the coverage tests (``tests/sim/test_coverage.py``): a saturating counter with
a branch the testbench never reaches (the ``code == MAGIC`` arm), so that coverage must report it."""
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: The ``code`` value that selects the arm the testbench ``tests/sim/tb_coverage.py`` never drives.
MAGIC = 0xA5


class CovCounter(wiring.Component):
    """``count`` counts the cycles with ``en``; ``code == MAGIC`` (never driven) sets ``flag``."""

    code: In(8)
    en: In(1)
    count: Out(8)
    flag: Out(1)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.code == MAGIC):
            m.d.sync += self.flag.eq(1)  # the unreached arm
        with m.Elif(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m
