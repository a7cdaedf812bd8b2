"""Frame link gateware: the framing layer between a byte transport (UART, simulator, ...) and the
accelerator, in both directions. The frame format is ``docs/link.md``; its constants come from
:mod:`binaccel.sw.link` (the host side), the single source of the format in code.

* :class:`FrameRx`: bytes in -> verified frame payloads out (store-and-forward), plus one status
  event per frame (delivered, or dropped and why).
* :class:`FrameTx`: transfers in (bytes with a kind and an end marker) -> framed bytes out.
* :class:`FrameLink`: both, with the receiver's status events sent back to the host as STATUS
  frames between the transfers.

Stream payload layouts: :data:`RX_BEAT` (``FrameRx.o_stream``), :data:`TX_BEAT`
(``FrameTx.i_stream``), :data:`RX_STATUS` (``FrameRx.o_status``).

Modules: :mod:`.frames` (payload layouts, CRC, parameter checks, lint waivers), :mod:`.rx`
(:class:`FrameRx`), :mod:`.tx` (:class:`FrameTx`), :mod:`.control` (:class:`FrameLink`); this
package re-exports their names.
"""

from .frames import DEFAULT_TIMEOUT, RX_BEAT, RX_STATUS, TX_BEAT, crc16_byte
from .rx import FrameRx
from .tx import FrameTx
from .control import FrameLink

__all__ = ["RX_BEAT", "TX_BEAT", "RX_STATUS", "FrameRx", "FrameTx", "FrameLink", "crc16_byte",
           "DEFAULT_TIMEOUT"]
