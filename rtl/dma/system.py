"""``MemorySystem``: the core's memory system (DFX §2.2: read and write interfaces to all HBM
pseudo-channels, ``timing.dma_port_bits`` wide; DDR for tokens, embeddings, biases; the on-chip
weight buffer), behind the clients' streams (docs/core.md "Memory system").

Ports: ``hbm`` (one :class:`~dfx.rtl.bus.axi.AxiSignature` manager per pseudo-channel),
``ddr`` (one), ``hbm_base`` / ``ddr_base`` (64-bit buffer addresses from the control
registers: AXI address = base + local offset), and per client the streams documented in
docs/core.md: ``dma_*`` (:class:`~.dma_engine.DmaEngine`).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..bus.axi import AxiSignature
from .dma_engine import DmaEngine
from .dma_ops import dma_cmd_layout
from .fabric import Fabric
from .geometry import ADDR_BITS, Client, Geometry
from .loader import ProgramLoader, prog_cmd_layout
from .lutstream import LutStream
from .weights import WeightStreamer, mpu_cmd_layout
from .word import WordPort, word_req_layout, word_resp_layout

__all__ = ["MemorySystem"]


class MemorySystem(wiring.Component):
    """The memory system (module doc). Parameters: ``geometry``, ``wbuf_latency``
    (``timing.wbuf_latency``); :meth:`from_core` takes both from a core configuration."""

    def __init__(self, geometry: Geometry, *, wbuf_latency: int, max_interleave: int,
                 bias_depth: int, program_words: int, lut: dict[str, int] | None = None):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, not {geometry!r}")
        g = self._g = geometry
        self._wbuf_latency = wbuf_latency
        clients = [Client.LOADER, Client.WORD, Client.DMA, Client.MPU]
        self._lut = LutStream(g, **lut) if lut is not None else None
        if self._lut is not None:
            clients.append(Client.LUT)
        self._fabric = Fabric(g, wbuf_latency=wbuf_latency, clients=clients,
                              writers=[Client.WORD, Client.DMA])
        self._loader = ProgramLoader(g, words=program_words)
        self._word = WordPort(g)
        self._dma = DmaEngine(g)
        self._mpu = WeightStreamer(g, max_interleave=max_interleave, bias_depth=bias_depth)
        super().__init__({
            "hbm": Out(AxiSignature(data_width=8 * g.beat_bytes)).array(g.channels),
            "ddr": Out(AxiSignature(data_width=8 * g.beat_bytes)),
            "hbm_base": In(data.ArrayLayout(ADDR_BITS, g.channels)),
            "ddr_base": In(ADDR_BITS),
            "prog_cmd": In(stream.Signature(prog_cmd_layout(program_words))),
            "prog_data": Out(stream.Signature(self._loader.data.payload.shape())),
            "word_req": In(stream.Signature(word_req_layout())),
            "word_resp": Out(stream.Signature(word_resp_layout())),
            "dma_cmd": In(stream.Signature(dma_cmd_layout(g))),
            "dma_load": Out(stream.Signature(data.ArrayLayout(16, g.d))),
            "dma_store": In(stream.Signature(data.ArrayLayout(16, g.d))),
            "dma_done": Out(1),
            "mpu_cmd": In(stream.Signature(mpu_cmd_layout(max_interleave))),
            "mpu_tiles": Out(stream.Signature(data.ArrayLayout(data.ArrayLayout(16, g.d),
                                                               g.l))),
            "mpu_bias": Out(stream.Signature(data.ArrayLayout(16, g.l))),
        } | ({} if self._lut is None else {
            "lut_cmd": In(stream.Signature(self._lut.cmd.payload.shape())),
            "lut_signs": Out(stream.Signature(self._lut.signs.payload.shape())),
            "lut_scales": Out(stream.Signature(self._lut.scales.payload.shape())),
            "lut_bias": Out(stream.Signature(self._lut.bias.payload.shape())),
        }))

    @classmethod
    def from_core(cls, core: Any, **overrides: Any) -> MemorySystem:
        """The memory system of a :class:`dfx.isa.config.CoreConfig`; ``overrides`` go to
        :meth:`Geometry.from_core`."""
        g = Geometry.from_core(core, **overrides)
        lut = LutStream.params(core) if getattr(core, "lutgemm", None) is not None else None
        return cls(g, wbuf_latency=core.timing.wbuf_latency, **WeightStreamer.params(core),
                   program_words=core.buffers.instruction_words, lut=lut)

    @property
    def geometry(self) -> Geometry:
        return self._g

    @property
    def wbuf_mem(self) -> Any:
        """The weight buffer's storage (for simulator back doors)."""
        return self._fabric.wbuf_mem

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        m.submodules.fabric = fab = self._fabric
        m.submodules.dma = dma = self._dma
        for c in range(g.channels):
            wiring.connect(m, wiring.flipped(self.hbm[c]), fab.hbm[c])
        wiring.connect(m, wiring.flipped(self.ddr), fab.ddr)
        m.d.comb += [fab.hbm_base.eq(self.hbm_base), fab.ddr_base.eq(self.ddr_base)]
        wiring.connect(m, dma.mem, fab.dma)
        wiring.connect(m, wiring.flipped(self.dma_cmd), dma.cmd)
        wiring.connect(m, dma.load_data, wiring.flipped(self.dma_load))
        wiring.connect(m, wiring.flipped(self.dma_store), dma.store_data)
        m.d.comb += self.dma_done.eq(dma.done)
        m.submodules.loader = ld = self._loader
        wiring.connect(m, ld.mem, fab.loader)
        wiring.connect(m, wiring.flipped(self.prog_cmd), ld.cmd)
        wiring.connect(m, ld.data, wiring.flipped(self.prog_data))
        m.d.comb += ld.ddr_base.eq(self.ddr_base)
        m.submodules.word = wp = self._word
        wiring.connect(m, wp.mem, fab.word)
        wiring.connect(m, wiring.flipped(self.word_req), wp.req)
        wiring.connect(m, wp.resp, wiring.flipped(self.word_resp))
        if self._lut is not None:
            m.submodules.lut = lut = self._lut
            wiring.connect(m, lut.mem, fab.lut)
            wiring.connect(m, wiring.flipped(self.lut_cmd), lut.cmd)
            wiring.connect(m, lut.signs, wiring.flipped(self.lut_signs))
            wiring.connect(m, lut.scales, wiring.flipped(self.lut_scales))
            wiring.connect(m, lut.bias, wiring.flipped(self.lut_bias))
        m.submodules.mpu = mpu = self._mpu
        wiring.connect(m, mpu.mem, fab.mpu)
        wiring.connect(m, wiring.flipped(self.mpu_cmd), mpu.cmd)
        wiring.connect(m, mpu.tiles, wiring.flipped(self.mpu_tiles))
        wiring.connect(m, mpu.bias, wiring.flipped(self.mpu_bias))
        return m

    # ---- fixed latencies (cycles, when nothing else is in the way; docs/core.md "Memory
    # system", measured in tests/rtl/dma/test_dma_latency.py)
    @property
    def cmd_to_op(self) -> dict[str, int]:
        """From a command's handshake (cycle t) to its first op leaving the client: DMA and
        MPU t + 3 (command queue, latch, first state), LUT t + 6 (three cycles of sizes),
        lw/sw and the loader t + 1."""
        return {"dma": 3, "mpu": 3, "lut": 6, "word": 1, "loader": 1}

    @property
    def op_to_addr(self) -> int:
        """From an op's handshake to ``arvalid``/``awvalid`` on every port it uses (the port's
        queue, then the address register): the AXI handshake can be in that cycle."""
        return 2

    @property
    def op_to_wbuf_row(self) -> int:
        """From a weight-buffer read op's handshake to its first row at the client: the
        queue, then ``timing.wbuf_latency``; one row per cycle after that."""
        return 1 + self._wbuf_latency

    @property
    def r_to_row(self) -> int:
        """From the R handshake of a row's last beat (on its slowest port) to the row at the
        client: the R buffer (2) and the row register; tiles are on ``mpu_tiles`` then, lw
        responses on ``word_resp``."""
        return 3

    @property
    def row_to_vector(self) -> int:
        """From a row at the client to the unit cut from it (Extractor): ``dma_load`` vectors,
        bias beats before their FIFO."""
        return 2

    @property
    def store_to_w(self) -> int:
        """From a ``dma_store`` vector's handshake to its first W beat (Placer, write row, W
        queue), when its AW has been taken; a two-row vector's second row one cycle later."""
        return 3

    @property
    def b_to_done(self) -> int:
        """From the last B handshake of a store / store_t / copy (or sw) to ``dma_done`` (or
        the ``word_resp``): port, space and client counters."""
        return 3

    @property
    def load_done(self) -> int:
        """From the handshake of a load's last vector to ``dma_done``."""
        return 1

    @property
    def write_to_done(self) -> dict[str, int]:
        """Per space, cycles from a write's completion (the last B handshake; the weight
        buffer: its last row written) to ``dma_done`` / the ``word_resp``: the space's
        acknowledgement, then the client's counter (HBM 3 = :attr:`b_to_done`, DDR 2, the
        weight buffer 1)."""
        return {"hbm": self._fabric.spaces["hbm"].wack_latency + 1,
                "ddr": self._fabric.spaces["ddr"].wack_latency + 1, "wbuf": 1}

    @property
    def fabric(self) -> Fabric:
        return self._fabric

    @property
    def dma(self) -> DmaEngine:
        return self._dma

    @property
    def lut_stream(self) -> LutStream | None:
        return self._lut

    @property
    def word(self) -> WordPort:
        return self._word

    @property
    def weights(self) -> WeightStreamer:
        """The MPU weight streamer (its latencies)."""
        return self._mpu
