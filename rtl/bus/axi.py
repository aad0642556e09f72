"""AXI4 and AXI4-Lite interfaces as Amaranth ``wiring.Signature``\\ s (AMBA AXI IHI0022).

The member names are the AXI signal names (``awaddr``, ``wdata``, ``rready`` ...), so a port
path flattened with ``_`` (:mod:`dfx.rtl.bus.vitis`) gives the names Vitis and cocotbext-axi's
``AxiBus.from_prefix(dut, "m_axi_hbm00")`` expect: ``m_axi_hbm00_awaddr``.

Both signatures are written from the **manager's** (master's) side: ``Out`` members are driven
by the manager. A subordinate (slave) port is ``In(AxiSignature(...))`` (flipped).

Only the signals dfx uses are present: no ``awlock``/``awcache``/``awprot``/``awqos``/
``awregion``/user signals (Vitis and cocotbext-axi treat them as optional); bursts are INCR,
so ``arburst``/``awburst`` are driven by the manager but may be ignored by a subordinate.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiLiteSignature", "AxiSignature", "BURST_INCR", "RESP_OKAY", "RESP_SLVERR"]

BURST_INCR = 0b01
RESP_OKAY = 0b00
RESP_SLVERR = 0b10


def _check(name: str, value: int, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    return value


class AxiSignature(wiring.Signature):
    """An AXI4 (full) manager port: five channels, INCR bursts of up to 256 beats.

    Parameters: ``addr_width`` (bits, 12..64; Vitis wants 64), ``data_width`` (bits, a power of
    two 8..1024), ``id_width`` (bits, 1..16; keep it small, cocotbext-axi spawns a coroutine
    per id).
    """

    def __init__(self, *, addr_width: int = 64, data_width: int, id_width: int = 1):
        _check("addr_width", addr_width, 12, 64)
        _check("data_width", data_width, 8, 1024)
        if data_width & (data_width - 1):
            raise ValueError(f"data_width must be a power of two, not {data_width}")
        _check("id_width", id_width, 1, 16)
        self._aw, self._dw, self._iw = addr_width, data_width, id_width
        size = (data_width // 8).bit_length() - 1
        self._size = size
        super().__init__({
            "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8),
            "awsize": Out(3), "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8),
            "arsize": Out(3), "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self) -> int:
        return self._aw

    @property
    def data_width(self) -> int:
        return self._dw

    @property
    def id_width(self) -> int:
        return self._iw

    @property
    def size(self) -> int:
        """``awsize``/``arsize`` of a full beat: log2(data_width / 8)."""
        return self._size

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AxiSignature) and other.addr_width == self._aw
                and other.data_width == self._dw and other.id_width == self._iw)

    def __hash__(self) -> int:
        return hash((AxiSignature, self._aw, self._dw, self._iw))

    def __repr__(self) -> str:
        return (f"AxiSignature(addr_width={self._aw}, data_width={self._dw}, "
                f"id_width={self._iw})")


class AxiLiteSignature(wiring.Signature):
    """An AXI4-Lite manager port (``addr_width`` bits, 32-bit data), e.g. the host's side of
    the Vitis ``s_axi_control`` slave (which is ``In(AxiLiteSignature(...))``)."""

    def __init__(self, *, addr_width: int = 12, data_width: int = 32):
        _check("addr_width", addr_width, 4, 64)
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width!r}")
        self._aw, self._dw = addr_width, data_width
        super().__init__({
            "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self) -> int:
        return self._aw

    @property
    def data_width(self) -> int:
        return self._dw

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AxiLiteSignature) and other.addr_width == self._aw
                and other.data_width == self._dw)

    def __hash__(self) -> int:
        return hash((AxiLiteSignature, self._aw, self._dw))

    def __repr__(self) -> str:
        return f"AxiLiteSignature(addr_width={self._aw}, data_width={self._dw})"
