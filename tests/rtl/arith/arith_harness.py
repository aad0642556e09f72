"""Shared test machinery for ``dfx.rtl.arith``: stream vectors through a block on Amaranth's
simulator and collect what comes out, plus corner-case vector generators.

The reference numerics are the golden model's (``dfx.isa.golden.fp``), compared bit for bit.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from dfx.isa.golden import fp as gfp


def stream(
    dut,
    inputs: dict[str, list[int]],
    *,
    en: list[int] | None = None,
    valid: list[int] | None = None,
    tail: int | None = None,
) -> tuple[list[int], list[int]]:
    """Drive ``inputs`` (port path -> values, one per cycle) into ``dut`` back to back, then
    ``tail`` (default ``dut.latency``) idle cycles; return ``(result, valid_out)`` as seen on
    every cycle, just before its clock edge.

    Port paths are attribute names, ``inputs[i]`` for array members. ``en``/``valid`` give the
    per-cycle clock enable and ``valid_in`` (default all ones); idle cycles have valid 0, en 1
    and keep the last operands.
    """
    n = len(next(iter(inputs.values())))
    total = n + (dut.latency if tail is None else tail)
    ports = []
    for name, values in inputs.items():
        if "[" in name:
            base, idx = name[:-1].split("[")
            port = getattr(dut, base)[int(idx)]
        else:
            port = getattr(dut, name)
        ports.append((port, [int(v) for v in values]))
    en = (list(en) if en is not None else [1] * n) + [1] * (total - n)
    valid = (list(valid) if valid is not None else [1] * n) + [0] * (total - n)
    results: list[int] = []
    valids: list[int] = []

    comb = dut.latency == 0  # no registers, so no sync domain to tick

    async def tb(ctx):
        last_valid = last_en = None
        for t in range(total):
            if t < n:
                for port, values in ports:
                    ctx.set(port, values[t])
            if valid[t] != last_valid:
                ctx.set(dut.valid_in, valid[t])
                last_valid = valid[t]
            if en[t] != last_en:
                ctx.set(dut.en, en[t])
                last_en = en[t]
            # outputs as they are just before the clock edge that ends cycle t
            trigger = ctx.delay(1e-8) if comb else ctx.tick()
            *_, result, valid_out = await trigger.sample(dut.result, dut.valid_out)
            results.append(result)
            valids.append(valid_out)

    sim = Simulator(dut)
    sim.add_clock(1e-8, if_exists=True)
    sim.add_testbench(tb)
    sim.run()
    return results, valids


def check_stream(dut, inputs: dict[str, list[int]], expected: list[int], hexw: int = 8) -> None:
    """Stream back to back; every result must appear exactly ``latency`` cycles later."""
    results, valids = stream(dut, inputs)
    n, lat = len(expected), dut.latency
    assert valids == [0] * lat + [1] * n, "valid_out is not valid_in delayed by latency"
    got = results[lat:]
    bad = [i for i in range(n) if got[i] != int(expected[i])]
    if bad:
        lines = []
        for i in bad[:10]:
            ops = ", ".join(f"{k}={int(v[i]):#0{hexw + 2}x}" for k, v in inputs.items())
            want = int(expected[i])
            lines.append(f"  {ops}: got {got[i]:#0{hexw + 2}x}, want {want:#0{hexw + 2}x}")
        raise AssertionError(f"{len(bad)} of {n} results wrong:\n" + "\n".join(lines))


def pipeline_model(results: list[int], valid: list[int], en: list[int], latency: int):
    """Cycle model of an en-stalled pipeline fed ``results[t]`` (the reference result of
    cycle t's operands), ``valid[t]``, ``en[t]``: ``[(result or None, valid_out)]`` per cycle."""
    queue = [(None, 0)] * latency
    out = []
    for r, v, e in zip(results, valid, en, strict=True):
        if latency == 0:
            out.append((r, v))
            continue
        out.append(queue[-1])
        if e:
            queue = [(r, v)] + queue[:-1]
    return out


# ------------------------------------------------------------------------- references


def ref_mul(a16, b16) -> np.ndarray:
    """Exact FP32 product of FP16 bit patterns (golden widen16 + mul32), as uint32 bits."""
    a = gfp.bits_f16(np.asarray(a16, dtype=np.uint16))
    b = gfp.bits_f16(np.asarray(b16, dtype=np.uint16))
    return np.asarray(gfp.f32_bits(gfp.mul32(gfp.widen16(a), gfp.widen16(b))))


def ref_add(a32, b32) -> np.ndarray:
    a = gfp.bits_f32(np.asarray(a32, dtype=np.uint32))
    b = gfp.bits_f32(np.asarray(b32, dtype=np.uint32))
    return np.asarray(gfp.f32_bits(gfp.add32(a, b)))


def ref_round16(a32) -> np.ndarray:
    return np.asarray(gfp.f16_bits(gfp.round16(gfp.bits_f32(np.asarray(a32, dtype=np.uint32)))))


# ------------------------------------------------------------------------ corner cases

_F16_GROUPS = {
    "zeros": [0x0000, 0x8000],
    "smallest subnormals": [0x0001, 0x8001, 0x0002, 0x0003],
    "largest subnormal, power-of-two subnormal": [0x03FF, 0x83FF, 0x0200],
    "smallest normals": [0x0400, 0x8400, 0x0401],
    "largest normals": [0x7BFF, 0xFBFF, 0x7BFE],
    "around one": [0x3C00, 0xBC00, 0x3C01, 0x3BFF, 0x3800, 0x4000, 0x3555, 0x5A41],
    "products under/overflow FP16, not FP32": [0x1400, 0x2000, 0x5C00, 0x6000],
    "infinities": [0x7C00, 0xFC00],
    "quiet NaNs, with payloads": [0x7E00, 0xFE00, 0x7E01, 0xFFFF],
    "signalling NaNs": [0x7C01, 0x7D00, 0xFC01],
}
FP16_CORNERS = [v for group in _F16_GROUPS.values() for v in group]

_F32 = {
    "zero": 0x00000000,
    "min_sub": 0x00000001,
    "sub2": 0x00000002,
    "sub3": 0x00000003,
    "max_sub": 0x007FFFFF,
    "half_sub": 0x00400000,
    "min_norm": 0x00800000,
    "min_norm1": 0x00800001,
    "max": 0x7F7FFFFF,
    "max1": 0x7F7FFFFE,
    "big": 0x7F000000,
    "big2": 0x7EFFFFFF,
    "one": 0x3F800000,
    "one_up": 0x3F800001,
    "one_dn": 0x3F7FFFFF,
    "half_ulp_of_one": 0x33800000,  # 2^-24: 1 + this is a tie
    "half_ulp_of_one_up": 0x33800001,
    "three_half_ulps_of_one": 0x34400000,
    "two24": 0x4B800000,
    "two24_1": 0x4B800001,
    "three": 0x40400000,
    "tenth": 0x3DCCCCCD,
    "pi": 0x40490FDB,
    "1e-30": 0x0DA24260,
    "1e30": 0x7149F2CA,
    "inf": 0x7F800000,
    "qnan": 0x7FC00000,
    "qnan_payload": 0x7FC12345,
    "snan": 0x7F800001,
    "snan_payload": 0x7FA00000,
    "nan_all_ones": 0x7FFFFFFF,
}
"""Named FP32 patterns; :data:`FP32_CORNERS` has each with both signs."""
FP32_CORNERS = sorted({v for v in _F32.values()} | {v | 0x80000000 for v in _F32.values()})


def all_pairs(values) -> tuple[list[int], list[int]]:
    a = [x for x in values for _ in values]
    b = [y for _ in values for y in values]
    return a, b


def random_fp32_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FP32 operand pairs that exercise an adder: raw random patterns, close exponents,
    near-cancellation, subnormals, big exponent gaps, ties, near-overflow (``n`` per kind)."""
    u32 = np.uint32
    sign = lambda k: rng.integers(0, 2, k, dtype=u32) << u32(31)  # noqa: E731
    frac = lambda k: rng.integers(0, 1 << 23, k, dtype=u32)  # noqa: E731

    def make(e, f, s):
        return (s | (e.astype(u32) << u32(23)) | f).astype(u32)

    A, B = [], []
    # raw random bit patterns
    A.append(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(u32))
    B.append(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(u32))
    # exponents within 0..30 of each other (most rounding paths), any signs
    ea = rng.integers(1, 254, n)
    eb = np.clip(ea - rng.integers(-30, 31, n), 0, 254)
    A.append(make(ea, frac(n), sign(n)))
    B.append(make(eb, frac(n), sign(n)))
    # near cancellation: b = -(a +- a few ulps), also with 1-exponent gaps
    a = make(rng.integers(1, 254, n), frac(n), sign(n))
    delta = rng.integers(-40, 41, n).astype(np.int64)
    shift = rng.integers(0, 2, n).astype(np.int64) << 23
    b = ((a.astype(np.int64) + delta - shift) & 0x7FFFFFFF).astype(u32) | (~a & u32(1 << 31))
    A.append(a)
    B.append(b)
    # subnormal and tiny-normal operands
    A.append(make(rng.integers(0, 3, n), frac(n), sign(n)))
    B.append(make(rng.integers(0, 3, n), frac(n), sign(n)))
    # ties: b is exactly half an ulp of a (or 1.5, 2.5 ... ulps) at a 24..26-bit gap
    a = make(rng.integers(30, 220, n), frac(n), sign(n))
    e_a = (a >> u32(23)) & u32(0xFF)
    b = make(
        e_a - rng.integers(24, 27, n).astype(u32),
        (rng.integers(0, 4, n) << 21).astype(u32),
        sign(n),
    )
    A.append(a)
    B.append(b)
    # near overflow
    A.append(make(rng.integers(252, 255, n), frac(n), sign(n)))
    B.append(make(rng.integers(250, 255, n), frac(n), sign(n)))
    return np.concatenate(A), np.concatenate(B)
