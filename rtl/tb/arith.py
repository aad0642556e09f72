"""cocotb testbench for the pipelined FP blocks (Fp16Mul, Fp32Add, Fp32Mul, Fp32ToFp16).

The unit under test is named by ``DFX_UNIT``; its ``latency`` by ``DFX_LATENCY``. Operands are
random bit patterns mixed with the corner cases of docs/numerics.md; ``en`` is dropped at
random to stall the pipeline (the blocks' only back-pressure) and ``valid_in`` gaps are random.
Every result is compared bit for bit with :mod:`dfx.isa.golden.fp`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from dfx.isa.golden import fp

F16_CORNERS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
               0x7E00, 0x7D01, 0xFE01, 0x3C00, 0x3C01, 0xBC00, 0x3800, 0x0200]
F32_CORNERS = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,
               0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7FA00001,
               0xFFC00001, 0x3F800000, 0x3F800001, 0xBF800000, 0x33800000, 0x477FE000,
               0x477FF000, 0x38800000, 0x33000000, 0x387FC000]


def _f16(b: int) -> np.float16:
    return np.array([b], dtype=np.uint16).view(np.float16)[0]


def _f32(b: int) -> np.float32:
    return np.array([b], dtype=np.uint32).view(np.float32)[0]


def _b32(x: object) -> int:
    return int(np.asarray(x, dtype=np.float32).reshape(1).view(np.uint32)[0])


def _b16(x: object) -> int:
    return int(np.asarray(x, dtype=np.float16).reshape(1).view(np.uint16)[0])


#: unit -> (operand widths, golden function on bit patterns)
UNITS: dict[str, tuple[tuple[int, ...], Callable[..., int]]] = {
    "fp16_mul": ((16, 16), lambda a, b: _b32(fp.mul32(fp.widen16(_f16(a)), fp.widen16(_f16(b))))),
    "fp32_add": ((32, 32), lambda a, b: _b32(fp.add32(_f32(a), _f32(b)))),
    "fp32_mul": ((32, 32), lambda a, b: _b32(fp.mul32(_f32(a), _f32(b)))),
    "fp32_to_fp16": ((32,), lambda a: _b16(fp.round16(_f32(a)))),
}


class TB:
    """Clock, reset, operand driver and result monitor of one FP block."""

    def __init__(self, dut, unit: str, latency: int) -> None:
        self.dut, self.latency = dut, latency
        self.widths, self.golden = UNITS[unit]
        self.ports = [getattr(dut, name) for name in ("a", "b")[: len(self.widths)]]
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self) -> None:
        self.dut.rst.value = 1
        self.dut.en.value = 1
        self.dut.valid_in.value = 0
        for p in self.ports:
            p.value = 0
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def run(self, operands: list[tuple[int, ...]], stall: float, gap: float,
                  rng: random.Random) -> list[tuple[tuple[int, ...], int]]:
        """Drive ``operands`` with random stalls/gaps; return (operands, result) in order."""
        dut, out = self.dut, []
        sent: list[tuple[int, ...]] = []
        todo = list(operands)
        cycles = 0
        while (todo or len(out) < len(sent)) and cycles < 100 * (len(operands) + self.latency):
            cycles += 1
            en = rng.random() >= stall
            dut.en.value = int(en)
            if todo and rng.random() >= gap:
                ops = todo[0]
                for p, v in zip(self.ports, ops, strict=True):
                    p.value = v
                dut.valid_in.value = 1
                if en:
                    sent.append(todo.pop(0))
            else:
                dut.valid_in.value = 0
            # outputs visible now belong to the previous edges; consumed on an enabled edge
            if en and int(dut.valid_out.value):
                out.append(int(dut.result.value))
            await FallingEdge(dut.clk)
        assert len(out) == len(sent) == len(operands), (len(out), len(sent), len(operands))
        return list(zip(sent, out, strict=True))


def _vectors(widths: tuple[int, ...], n: int, rng: random.Random) -> list[tuple[int, ...]]:
    corners = F16_CORNERS if widths[0] == 16 else F32_CORNERS
    vec = [tuple(c for _ in widths) for c in corners]
    vec += [tuple(rng.choice(corners) for _ in widths) for _ in range(4 * len(corners))]
    vec += [tuple(rng.getrandbits(w) for w in widths) for _ in range(n)]
    return vec


async def _scenario(dut, stall: float, gap: float, seed: int) -> None:
    unit = os.environ["DFX_UNIT"]
    tb = TB(dut, unit, int(os.environ.get("DFX_LATENCY", "1")))
    await tb.reset()
    rng = random.Random(seed)
    pairs = await tb.run(_vectors(tb.widths, 2000, rng), stall, gap, rng)
    for ops, got in pairs:
        want = tb.golden(*ops)
        assert got == want, f"{unit}{tuple(hex(o) for o in ops)}: got {got:#x}, golden {want:#x}"


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def streaming(dut) -> None:
    """One operand set per cycle, never stalled."""
    await _scenario(dut, stall=0.0, gap=0.0, seed=1)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def backpressure(dut) -> None:
    """Random stalls (en low) and random input gaps."""
    await _scenario(dut, stall=0.3, gap=0.3, seed=2)
