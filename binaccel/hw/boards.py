"""Boards: iCEBreaker (iCE40UP5K) and ULX3S (ECP5 LFE5U-85F), and the board top-level.

:class:`BoardTop` puts a design with byte streams (``i_stream`` in, ``o_stream`` out, 8-bit
payloads, ``sync`` domain) on a board: a PLL makes the accelerator clock (the ``sync`` domain)
from the board oscillator, the reset is synchronised, and the design's streams are joined to
the board's USB-UART (FTDI) pins through :class:`~binaccel.hw.uart.UARTRx` /
:class:`~binaccel.hw.uart.UARTTx` and a receive FIFO.

Pins come from the ``amaranth-boards`` platform files (``amaranth_boards.icebreaker``,
``amaranth_boards.ulx3s``); ``constraints/`` holds the same pins in PCF/LPF for reading.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Instance, Module, Signal, ResetSignal
from amaranth.lib import wiring, stream, fifo, io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from binaccel.sw.link import DEFAULT_BAUD

from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["BOARDS", "Board", "BoardTop", "ByteRegister", "UARTBridge", "make_platform", "ice40_pll_params",
           "ecp5_pll_params", "ACCEL_CLOCK_ATTR"]

#: Netlist attribute marking the accelerator clock signal; the synthesis flow finds the clock
#: net by it (the net's name after flattening depends on the design) to constrain it.
ACCEL_CLOCK_ATTR = "binaccel_accel_clock"


@dataclass(frozen=True)
class Board:
    """What the flow needs to know about one board."""
    name: str
    family: str               # "ice40" or "ecp5"
    device: str
    package: str
    osc_hz: int               # board oscillator
    default_clk_mhz: float    # default accelerator clock
    clk_resource: str         # amaranth-boards resource names
    reset_resource: str
    rx_fifo_depth: int = 256  # default UART receive FIFO (bytes)
    uart_resource: str = "uart"
    led_resource: str = "led"

    def platform_class(self):
        if self.name == "icebreaker":
            return ICEBreakerPlatform
        if self.name == "ulx3s":
            return ULX3S_85F_Platform
        raise AssertionError(self.name)


BOARDS = {
    "icebreaker": Board("icebreaker", "ice40", "iCE40UP5K", "SG48", 12_000_000, 48.0,
                        clk_resource="clk12", reset_resource="button"),
    "ulx3s": Board("ulx3s", "ecp5", "LFE5U-85F", "BG381", 25_000_000, 100.0,
                   clk_resource="clk25", reset_resource="button_pwr",
                   # distributed RAM: a DP16KD's 5.8 ns clock-to-out would cap the clock at
                   # ~140 MHz
                   rx_fifo_depth=64),
}


def _board(board):
    if isinstance(board, Board):
        return board
    if board not in BOARDS:
        raise ValueError(f"board must be one of {sorted(BOARDS)}, not {board!r}")
    return BOARDS[board]


def make_platform(board):
    """A fresh ``amaranth-boards`` platform instance for ``board`` (a name from :data:`BOARDS`)."""
    return _board(board).platform_class()()


# --- PLL parameter search ---------------------------------------------------------------------

def ice40_pll_params(fin_hz, fout_hz):
    """SB_PLL40 parameters (SIMPLE feedback) giving the output closest to ``fout_hz``.

    Same search and limits as IceStorm's ``icepll``: PFD 10-133 MHz, VCO 533-1066 MHz,
    output 16-275 MHz. Returns a dict with ``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE`` and the
    achieved ``fout_hz`` / ``fvco_hz`` / ``fpfd_hz``. Raises ``ValueError`` if no setting
    exists or the output is out of range.
    """
    fin, want = fin_hz / 1e6, fout_hz / 1e6
    best = None
    for divr in range(16):
        fpfd = fin / (divr + 1)
        if not 10 <= fpfd <= 133:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not 533 <= fvco <= 1066:
                continue
            for divq in range(1, 7):
                fout = fvco / 2 ** divq
                if best is None or abs(fout - want) < abs(best[3] - want):
                    best = (divr, divf, divq, fout, fvco, fpfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting for {fin_hz / 1e6:g} MHz input")
    divr, divf, divq, fout, fvco, fpfd = best
    if not 16 <= fout <= 275:
        raise ValueError(f"iCE40 PLL output {fout:g} MHz out of range 16-275 MHz "
                         f"(requested {want:g} MHz)")
    filter_range = (1 if fpfd < 17 else 2 if fpfd < 26 else 3 if fpfd < 44 else
                    4 if fpfd < 66 else 5 if fpfd < 101 else 6)
    return {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range,
            "fout_hz": fout * 1e6, "fvco_hz": fvco * 1e6, "fpfd_hz": fpfd * 1e6}


def ecp5_pll_params(fin_hz, fout_hz):
    """EHXPLLL parameters (feedback from CLKOP) giving the output closest to ``fout_hz``.

    Same search and limits as Project Trellis' ``ecppll``: PFD 3.125-400 MHz, VCO 400-800 MHz
    (ties broken towards 600 MHz), output 10-400 MHz. Returns a dict with ``CLKI_DIV``,
    ``CLKFB_DIV``, ``CLKOP_DIV``, ``CLKOP_CPHASE``, ``fout_hz`` and ``fvco_hz``.
    """
    fin, want = fin_hz / 1e6, fout_hz / 1e6
    best = None
    for clki_div in range(1, 129):
        fpfd = fin / clki_div
        if not 3.125 <= fpfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            for clkop_div in range(1, 129):
                fvco = fpfd * clkfb_div * clkop_div
                if not 400 <= fvco <= 800:
                    continue
                fout = fvco / clkop_div
                err = abs(fout - want)
                if (best is None or err < best[0] or
                        (err == best[0] and abs(fvco - 600) < abs(best[5] - 600))):
                    best = (err, clki_div, clkfb_div, clkop_div, fout, fvco)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting for {fin_hz / 1e6:g} MHz input")
    _, clki_div, clkfb_div, clkop_div, fout, fvco = best
    if not 10 <= fout <= 400:
        raise ValueError(f"ECP5 PLL output {fout:g} MHz out of range 10-400 MHz "
                         f"(requested {want:g} MHz)")
    # CLKOP is its own feedback, so its phase against CLKI does not matter to the design; this
    # is the coarse phase ecppll writes for these dividers in the common cases.
    return {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
            "CLKOP_CPHASE": (clkop_div - 1) // 2, "fout_hz": fout * 1e6, "fvco_hz": fvco * 1e6}


# --- board top-level --------------------------------------------------------------------------

_BYTE_IN = wiring.In(stream.Signature(8))
_BYTE_OUT = wiring.Out(stream.Signature(8))


class ByteRegister(wiring.Component):
    """A register stage for a byte stream that breaks every combinational path through it.

    ``i_stream.ready`` is ``~o_stream.valid`` (from a flip-flop), so it takes at most one byte
    every two cycles: far above UART rates. ``o_stream.payload`` is stable while
    ``valid & ~ready``.
    """

    i_stream: wiring.In(stream.Signature(8))
    o_stream: wiring.Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [self.o_stream.payload.eq(self.i_stream.payload),
                         self.o_stream.valid.eq(1)]
        with m.Elif(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        return m


class UARTBridge(wiring.Component):
    """A byte-stream design behind a UART: the part of :class:`BoardTop` that is not pins.

    ``rx`` -> :class:`~binaccel.hw.uart.UARTRx` -> receive FIFO (``rx_fifo_depth`` bytes,
    ``SyncFIFOBuffered``; none if 0) -> :class:`ByteRegister` -> ``design.i_stream``;
    ``design.o_stream`` -> :class:`ByteRegister` -> :class:`~binaccel.hw.uart.UARTTx` -> ``tx``.
    The register stages keep the glue's paths (FIFO block RAM clock-to-out, the transmitter's
    ready) out of the design's. ``error`` latches any framing error or receive overrun until
    reset. Everything is in the ``sync`` domain.
    """

    rx: wiring.In(1, init=1)
    tx: wiring.Out(1, init=1)
    error: wiring.Out(1)

    def __init__(self, design, *, divisor, rx_fifo_depth):
        if not isinstance(rx_fifo_depth, int) or rx_fifo_depth < 0:
            raise ValueError(f"rx_fifo_depth must be a non-negative int, not {rx_fifo_depth!r}")
        self.design = design
        self.divisor = divisor
        self.rx_fifo_depth = rx_fifo_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UARTRx(divisor=self.divisor)
        m.submodules.uart_tx = tx = UARTTx(divisor=self.divisor)
        m.submodules.design = design = self.design
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        m.submodules.rx_reg = rx_reg = ByteRegister()
        m.submodules.tx_reg = tx_reg = ByteRegister()
        if self.rx_fifo_depth:
            m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8,
                                                                   depth=self.rx_fifo_depth)
            wiring.connect(m, rx.o_stream, rx_fifo.w_stream)
            wiring.connect(m, rx_fifo.r_stream, rx_reg.i_stream)
        else:
            wiring.connect(m, rx.o_stream, rx_reg.i_stream)
        wiring.connect(m, rx_reg.o_stream, design.i_stream)
        wiring.connect(m, design.o_stream, tx_reg.i_stream)
        wiring.connect(m, tx_reg.o_stream, tx.i_stream)
        with m.If(rx.framing_error | rx.overrun):
            m.d.sync += self.error.eq(1)
        return m


class BoardTop(wiring.Component):
    """Top-level that puts a byte-stream design on a board.

    Parameters
    ----------
    design_factory : callable
        Called with no arguments; returns the design, a ``wiring.Component`` with ports
        ``i_stream: In(stream.Signature(8))`` and ``o_stream: Out(stream.Signature(8))`` in the
        ``sync`` domain.
    board : str, keyword-only
        A name from :data:`BOARDS` (``"icebreaker"`` or ``"ulx3s"``).
    clk_mhz : float, keyword-only
        Accelerator (``sync``) clock. If it differs from the oscillator a PLL makes it; the
        achieved frequency (``clk_hz``) must be within 1 % of the request. Default: the board's
        ``default_clk_mhz`` (48 MHz iCEBreaker, 100 MHz ULX3S).
    baud : int, keyword-only
        UART bit rate (default :data:`binaccel.sw.link.DEFAULT_BAUD`, 3,000,000: both boards'
        FTDI bridges run it; 115200 and other rates are selectable). The bit period is
        ``clk_hz / baud`` cycles, fractional where it is not whole (:func:`~binaccel.hw.uart.uart_divisor`);
        at least :data:`~binaccel.hw.uart.MIN_DIVISOR` cycles, else ``ValueError``.
    rx_fifo_depth : int, keyword-only
        Bytes buffered between the UART receiver and the design (0: none). The line cannot be
        held off, so the design must keep up on average; the FIFO absorbs bursts. Default: the
        board's (256 in one block RAM on iCEBreaker, 64 in distributed RAM on ULX3S).

    Attributes
    ----------
    design, clk_hz, pll (dict of PLL parameters or ``None``), baud, divisor (clock cycles per bit,
    an ``int`` or a ``Fraction``), cd_sync (the accelerator
    clock domain; ``cd_sync.clk`` is the net :func:`binaccel.hw.synth.synthesize` constrains).

    On the board: the reset button resets the ``sync`` domain (as does PLL loss of lock and a
    power-on delay); LED 0 is lit while out of reset, LED 1 latches any UART framing error or
    receive overrun until reset.
    """

    def __init__(self, design_factory, *, board, clk_mhz=None, baud=DEFAULT_BAUD,
                 rx_fifo_depth=None):
        self.board = _board(board)
        if not callable(design_factory):
            raise TypeError(f"design_factory must be callable, not {design_factory!r}")
        if clk_mhz is None:
            clk_mhz = self.board.default_clk_mhz
        if not isinstance(clk_mhz, (int, float)) or isinstance(clk_mhz, bool) or clk_mhz <= 0:
            raise ValueError(f"clk_mhz must be a positive number (MHz), not {clk_mhz!r}")
        if rx_fifo_depth is None:
            rx_fifo_depth = self.board.rx_fifo_depth
        if not isinstance(rx_fifo_depth, int) or rx_fifo_depth < 0:
            raise ValueError(f"rx_fifo_depth must be a non-negative int, not {rx_fifo_depth!r}")

        want_hz = clk_mhz * 1e6
        if abs(want_hz - self.board.osc_hz) < 1:
            self.pll = None
            self.clk_hz = float(self.board.osc_hz)
        else:
            if self.board.family == "ice40":
                self.pll = ice40_pll_params(self.board.osc_hz, want_hz)
            else:
                self.pll = ecp5_pll_params(self.board.osc_hz, want_hz)
            self.clk_hz = self.pll["fout_hz"]
            if abs(self.clk_hz - want_hz) > 0.01 * want_hz:
                raise ValueError(f"{self.board.name}: the PLL cannot make {clk_mhz:g} MHz from "
                                 f"{self.board.osc_hz / 1e6:g} MHz (closest "
                                 f"{self.clk_hz / 1e6:g} MHz)")
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud: expected a positive int (bits per second), got {baud!r}")
        self.baud = baud
        self.divisor = uart_divisor(self.clk_hz, baud)
        self.rx_fifo_depth = rx_fifo_depth

        self.design = design_factory()
        sig = getattr(self.design, "signature", None)
        members = getattr(sig, "members", {})
        for port, want in (("i_stream", _BYTE_IN), ("o_stream", _BYTE_OUT)):
            if port not in members or members[port] != want:
                got = members[port] if port in members else "missing"
                raise TypeError(f"design from {design_factory!r} must have port {port}: "
                                f"{want!r}; it has {got}")

        self.cd_sync = ClockDomain("sync")
        self.cd_sync.clk.attrs[ACCEL_CLOCK_ATTR] = 1
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        board = self.board
        m.domains.sync = cd_sync = self.cd_sync
        locked = Signal()

        def input_pin(name, port):
            m.submodules[name] = buf = io.Buffer("i", port)
            return buf.i

        def output_pin(name, port, value):
            m.submodules[name] = buf = io.Buffer("o", port)
            m.d.comb += buf.o.eq(value)

        clk_pad = platform.request(board.clk_resource, 0, dir="-")
        if self.pll is None:
            m.d.comb += [cd_sync.clk.eq(input_pin("clk_buf", clk_pad)), locked.eq(1)]
        elif board.family == "ice40":
            # The oscillator pin (35) is the PLL's dedicated pad: it goes to the PLL raw.
            pad = clk_pad
            p = self.pll
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
                p_FILTER_RANGE=p["FILTER_RANGE"],
                i_PACKAGEPIN=pad.io,
                i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=cd_sync.clk,
                o_LOCK=locked,
            )
        else:
            clk_in = input_pin("clk_buf", clk_pad)
            p = self.pll
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(round(board.osc_hz / 1e6, 6)),
                a_FREQUENCY_PIN_CLKOP=str(round(self.clk_hz / 1e6, 6)),
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=p["CLKI_DIV"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
                p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=cd_sync.clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=cd_sync.clk, o_LOCK=locked,
            )

        # Power-on delay (iCE40 block RAM needs a few microseconds after configuration),
        # counted in a reset-less domain on the same clock.
        por_cycles = max(16, int(self.clk_hz * 10e-6))
        m.domains.por = cd_por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += cd_por.clk.eq(cd_sync.clk)
        por_count = Signal(range(por_cycles + 1))
        por_done = Signal()
        m.d.comb += por_done.eq(por_count == por_cycles)
        with m.If(~por_done):
            m.d.por += por_count.eq(por_count + 1)

        button = input_pin("button_buf", platform.request(board.reset_resource, 0, dir="-"))
        m.submodules.reset_sync = ResetSynchronizer(~locked | ~por_done | button,
                                                    domain="sync")

        # UART link and design.
        pins = platform.request(board.uart_resource, 0, dir="-")
        m.submodules.bridge = bridge = UARTBridge(self.design, divisor=self.divisor,
                                                  rx_fifo_depth=self.rx_fifo_depth)
        m.d.comb += bridge.rx.eq(input_pin("uart_rx_buf", pins.rx))
        output_pin("uart_tx_buf", pins.tx, bridge.tx)

        # Status LEDs.
        output_pin("led0_buf", platform.request(board.led_resource, 0, dir="-"),
                   ~ResetSignal("sync"))
        output_pin("led1_buf", platform.request(board.led_resource, 1, dir="-"),
                   bridge.error)
        return m
