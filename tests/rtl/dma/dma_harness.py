"""Memories for the memory-system tests: HBM pseudo-channels and DDR behind :class:`AxiMem`
models, addressed by ISA byte address, plus the ISA-level reference images."""

from __future__ import annotations

from typing import Any

from dma_axi_model import AxiMem

from dfx.isa.config import load_core
from dfx.rtl.dma.geometry import Geometry

HBM_BASE = 0x1000_0000  # pseudo-channel c at HBM_BASE * (c + 1)
DDR_BASE = 0x8000_0000


def tiny_geometry(**kw: Any) -> Geometry:
    return Geometry.from_core(load_core("tiny"), **kw)


class Mems:
    """HBM (``hbm_bytes`` of ISA space) and DDR (``ddr_bytes``) as AXI memories."""

    def __init__(self, g: Geometry, *, hbm_bytes: int = 1 << 16, ddr_bytes: int = 1 << 16,
                 latency: int = 6, stall: float = 0.0, seed: int = 0,
                 ddr_latency: int | None = None) -> None:
        self.g = g
        self.hbm_bytes, self.ddr_bytes = hbm_bytes, ddr_bytes
        per = hbm_bytes // g.channels
        self.hbm = [bytearray(per) for _ in range(g.channels)]
        self.ddr = bytearray(ddr_bytes)
        self.latency, self.ddr_latency = latency, ddr_latency or latency
        self.stall, self.seed = stall, seed
        self.models: list[AxiMem] = []

    def hbm_base(self, c: int) -> int:
        return HBM_BASE * (c + 1)

    def attach(self, sim: Any, hbm_ports: Any, ddr_port: Any) -> None:
        for c, port in enumerate(hbm_ports):
            mm = AxiMem(port, 0, base=self.hbm_base(c), latency=self.latency,
                        stall=self.stall, seed=self.seed * 101 + c, mem=self.hbm[c])
            self.models.append(mm)
            sim.add_process(mm.process)
        mm = AxiMem(ddr_port, 0, base=DDR_BASE, latency=self.ddr_latency, stall=self.stall,
                    seed=self.seed * 101 + 99, mem=self.ddr)
        self.models.append(mm)
        sim.add_process(mm.process)

    def set_bases(self, ctx: Any, hbm_base: Any, ddr_base: Any) -> None:
        for c in range(self.g.channels):
            ctx.set(hbm_base[c], self.hbm_base(c))
        ctx.set(ddr_base, DDR_BASE)

    # ---- ISA byte images
    def _loc(self, a: int) -> tuple[int, int]:
        w, c = self.g.beat_bytes, self.g.channels
        return (a // w) % c, (a // (w * c)) * w + a % w

    def write_hbm(self, addr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            c, off = self._loc(addr + i)
            self.hbm[c][off] = b

    def read_hbm(self, addr: int, n: int) -> bytes:
        out = bytearray(n)
        for i in range(n):
            c, off = self._loc(addr + i)
            out[i] = self.hbm[c][off]
        return bytes(out)

    def hbm_image(self) -> bytes:
        return self.read_hbm(0, self.hbm_bytes)

    def write(self, space: str, addr: int, data: bytes) -> None:
        if space == "hbm":
            self.write_hbm(addr, data)
        else:
            self.ddr[addr:addr + len(data)] = data

    def read(self, space: str, addr: int, n: int) -> bytes:
        if space == "hbm":
            return self.read_hbm(addr, n)
        return bytes(self.ddr[addr:addr + n])


async def wbuf_load(ctx: Any, mem: Any, g: Geometry, image: bytes) -> None:
    """Put ``image`` (whole rows) into the weight buffer's storage (back door)."""
    r = g.row_bytes
    for i in range(len(image) // r):
        ctx.set(mem.data[i], int.from_bytes(image[i * r:(i + 1) * r], "little"))


def wbuf_image(ctx: Any, mem: Any, g: Geometry, rows: int) -> bytes:
    r = g.row_bytes
    return b"".join(int(ctx.get(mem.data[i])).to_bytes(r, "little") for i in range(rows))
