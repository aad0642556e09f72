"""cocotb testbench of the memory model on Verilator (``mem_top.MemTop``): the back door
(speed and exactness), cocotbext-axi ``AxiMaster`` reads / writes / bursts / strobes against
it, beat timing against the timing model (``port_schedule``), stalls and back-pressure, and the
free-running speed with the hardware traffic generator. Measurements go to ``measure.json``
in the working directory.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiMaster

from dfx.isa.config import load_core
from dfx.rtl.tb.mem_model import ERR_RANGE, MemLayout, MemoryBackdoor, port_schedule
from dfx.sim.timing.params import derive

HBM_BASES = tuple((i + 1) << 32 for i in range(4))  # as mem_top.HBM_BASES
DDR_BASE = 0x40_0000_0000
CORE = load_core("tiny")
LAYOUT = MemLayout.from_core(CORE, hbm_bases=HBM_BASES, ddr_base=DDR_BASE)
MEASURE = Path("measure.json")


def record(**values):
    data = json.loads(MEASURE.read_text()) if MEASURE.exists() else {}
    data.update(values)
    MEASURE.write_text(json.dumps(data, indent=1))


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.clock = Clock(dut.ap_clk, 10, unit="ns")
        self.bd = MemoryBackdoor(dut, dut.ap_clk, LAYOUT)

    async def reset(self):
        dut = self.dut
        dut.gen_en.value = 0
        dut.stall.value = 0
        self.clock.start()
        dut.ap_rst_n.value = 0
        await ClockCycles(dut.ap_clk, 3)
        dut.ap_rst_n.value = 1
        await ClockCycles(dut.ap_clk, 2)

    def master(self, port: str) -> AxiMaster:
        return AxiMaster(AxiBus.from_prefix(self.dut, port), self.dut.ap_clk, self.dut.ap_rst_n,
                         reset_active_level=False)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def free_running_speed(dut):
    """The traffic generator on all four HBM channels, no Python per cycle."""
    tb = TB(dut)
    await tb.reset()
    cycles = 200_000
    dut.gen_en.value = 1
    t0 = time.perf_counter()
    await Timer(cycles * 10, "ns")
    wall = time.perf_counter() - t0
    dut.gen_en.value = 0
    beats = int(dut.gen_beats.value)
    await ClockCycles(dut.ap_clk, 200)
    assert int(dut.error.value) == 0
    h = derive(CORE).hbm
    bound = h.rate_num / h.rate_den / LAYOUT.beat_bytes  # beats per cycle per channel
    per_channel = beats / cycles / 4
    assert 0.5 * bound < per_channel <= bound, (per_channel, bound)
    record(free_running_cycles=cycles, free_running_wall_s=wall,
           free_running_cycles_per_s=cycles / wall, beats_per_cycle_per_channel=per_channel,
           rate_bound_beats_per_cycle=bound)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def backdoor_load_dump(dut):
    """A 4 MiB image through the linear HBM space (interleaved), DDR, unaligned pieces."""
    tb = TB(dut)
    await tb.reset()
    bd = tb.bd
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, LAYOUT.hbm_bytes * LAYOUT.hbm_channels, np.uint8).tobytes()
    t0 = time.perf_counter()
    await bd.write_hbm(0, image)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = await bd.read_hbm(0, len(image))
    t_dump = time.perf_counter() - t0
    assert back == image
    # interleave: HBM address a is in channel (a // 16) % 4 at (a // 64) * 16 + a % 16
    il, n = LAYOUT.interleave, LAYOUT.hbm_channels
    for a in (0, 15, 16, 17, 63, 64, 1000, len(image) - 1):
        ch, off = (a // il) % n, (a // (il * n)) * il + a % il
        assert await bd.read_channel(ch, off, 1) == image[a:a + 1]
    piece = bytes(range(1, 40))
    await bd.write_hbm(0x12345, piece)
    assert await bd.read_hbm(0x12340, 50) == image[0x12340:0x12345] + piece + \
        image[0x12345 + len(piece):0x12340 + 50]
    ddr = rng.integers(0, 256, 1 << 20, np.uint8).tobytes()
    await bd.write_ddr(0x7FF3, ddr)
    assert await bd.read_ddr(0x7FF3, len(ddr)) == ddr
    await bd.write_channel(LAYOUT.ddr_channel, 5, b"\xaa")
    assert await bd.read_ddr(0, 8) == b"\x00" * 5 + b"\xaa" + b"\x00" * 2
    record(backdoor_bytes=len(image), backdoor_load_s=t_load, backdoor_dump_s=t_dump)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def axi_master_data(dut):
    """AxiMaster reads what the back door wrote and vice versa; bursts, strobes, SLVERR."""
    tb = TB(dut)
    await tb.reset()
    bd = tb.bd
    rng = random.Random(3)
    for port, ch, base in (("hbm00", 0, HBM_BASES[0]), ("ddr", LAYOUT.ddr_channel, DDR_BASE)):
        axi = tb.master(port)
        pattern = bytes(rng.getrandbits(8) for _ in range(4096))
        await bd.write_channel(ch, 0, pattern)
        for off, length in ((0, 16), (0, 4096), (5, 1), (17, 300), (4000, 96), (1234, 2048)):
            got = await axi.read(base + off, length)
            assert got.data == pattern[off:off + length], (port, off, length)
        shadow = bytearray(pattern)
        for off, length in ((3, 1), (16, 16), (100, 777), (2048, 2048), (4093, 3)):
            data = bytes(rng.getrandbits(8) for _ in range(length))
            await axi.write(base + off, data)
            shadow[off:off + length] = data
        assert await bd.read_channel(ch, 0, 4096) == bytes(shadow)
        got = await axi.read(base, 4096)
        assert got.data == bytes(shadow)
    assert int(dut.error.value) == 0
    axi = tb.master("hbm03")
    resp = await axi.read(HBM_BASES[3] + LAYOUT.hbm_bytes, 16)  # one past the end
    assert int(resp.resp) == 2  # SLVERR
    assert int(dut.error.value) & ERR_RANGE


class Monitor:
    """Handshake cycles of one AXI port: per burst (write, beats, accepted, first valid, beat
    cycles, B cycle)."""

    def __init__(self, dut, port):
        self.sig = {n: getattr(dut, f"{port}_{n}") for n in (
            "arvalid", "arready", "arlen", "awvalid", "awready", "awlen", "wvalid", "wready",
            "rvalid", "rready", "bvalid", "bready")}
        self.reads: list[dict] = []
        self.writes: list[dict] = []
        self.clock = dut.ap_clk
        self.task = cocotb.start_soon(self.run())

    async def run(self):
        s = self.sig
        cycle = 0
        rq = wq = bq = 0
        w_first = None
        while True:
            await RisingEdge(self.clock)
            v = {k: int(x.value) for k, x in s.items()}
            if v["arvalid"] and v["arready"]:
                self.reads.append(dict(beats=v["arlen"] + 1, accepted=cycle, cycles=[]))
            if v["awvalid"] and v["awready"]:
                self.writes.append(dict(beats=v["awlen"] + 1, accepted=cycle, cycles=[],
                                        first=None, b=None))
            if v["wvalid"] and w_first is None:
                w_first = cycle
            if v["wvalid"] and v["wready"]:
                w = self.writes[wq]
                if w["first"] is None:
                    w["first"] = w_first
                w["cycles"].append(cycle)
                if len(w["cycles"]) == w["beats"]:
                    wq += 1
                w_first = None
            if v["rvalid"] and v["rready"]:
                r = self.reads[rq]
                r["cycles"].append(cycle)
                if len(r["cycles"]) == r["beats"]:
                    rq += 1
            if v["bvalid"] and bq < len(self.writes) and self.writes[bq]["b"] is None:
                self.writes[bq]["b"] = cycle
            if v["bvalid"] and v["bready"]:
                bq += 1
            cycle += 1


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def timing_matches_model(dut):
    """Beat and B cycles of AxiMaster traffic on hbm01 equal the timing model's Port
    schedule (the master keeps R and B ready; W bursts are checked when their beats were
    offered back to back)."""
    tb = TB(dut)
    await tb.reset()
    axi = tb.master("hbm01")
    mon = Monitor(dut, "hbm01")
    base = HBM_BASES[1]
    b = LAYOUT.beat_bytes
    rng = random.Random(7)
    for _round in range(6):
        ops = []
        for _ in range(6):
            beats = rng.choice([1, 1, 2, 3, 8, 16])
            off = rng.randrange(0, 256) * b
            if rng.random() < 0.4:
                ops.append(axi.init_write(base + off, bytes(beats * b)))
            else:
                ops.append(axi.init_read(base + off, beats * b))
        for ev in ops:
            await ev.wait()
        await ClockCycles(dut.ap_clk, rng.choice([1, 5, 40]))
    await ClockCycles(dut.ap_clk, 50)
    mon.task.cancel()
    timing = LAYOUT.hbm_timing
    transfers = [(False, r["beats"], r["accepted"], r["accepted"], r) for r in mon.reads]
    transfers += [(True, w["beats"], w["accepted"], max(w["first"], w["accepted"] + 1), w)
                  for w in mon.writes]
    transfers.sort(key=lambda x: x[2])
    sched = port_schedule(timing, derive(CORE).hbm, [t[:4] for t in transfers])
    exact = checked = 0
    for (write, _beats, _acc, _ready, rec), (d0, times, free) in zip(transfers, sched,
                                                                     strict=True):
        got = rec["cycles"]
        assert got[0] == d0, (write, rec, d0)
        assert all(g >= t for g, t in zip(got, times, strict=True))
        back_to_back = not write or all(y - x <= 2 for x, y in itertools.pairwise(got))
        if got == times:
            exact += 1
            if write:
                assert rec["b"] == free, (rec, free)
        checked += back_to_back
        if not write:
            assert got == times, (rec, times)
    assert len(transfers) > 30 and exact >= 0.8 * len(transfers), (exact, len(transfers))
    record(timing_transfers=len(transfers), timing_exact=exact)
    assert int(dut.error.value) == 0


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def stalls_keep_results(dut):
    """Random concurrent traffic with stall injection and master back-pressure: the memory
    ends up exactly as a sequential model says and every read returns its data."""
    tb = TB(dut)
    await tb.reset()
    rng = random.Random(11)
    masters = {}
    for port in ("hbm02", "ddr"):  # one master per port (a second one would see its B's)
        axi = masters[port] = tb.master(port)
        for c in (axi.write_if.aw_channel, axi.write_if.w_channel, axi.write_if.b_channel,
                  axi.read_if.ar_channel, axi.read_if.r_channel):
            c.set_pause_generator(itertools.cycle([rng.random() < 0.3 for _ in range(53)]))
    for level in (6, 15):
        dut.stall.value = level
        for port, ch, base in (("hbm02", 2, HBM_BASES[2]), ("ddr", LAYOUT.ddr_channel,
                                                               DDR_BASE)):
            axi = masters[port]
            shadow = bytearray(await tb.bd.read_channel(ch, 0, 8192))
            # disjoint regions per concurrent writer; reads of finished regions
            writes = []
            for k in range(8):
                off = k * 1024 + rng.randrange(0, 64)
                data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 900)))
                shadow[off:off + len(data)] = data
                writes.append(cocotb.start_soon(axi.write(base + off, data)))
            for w in writes:
                await w
            reads = [(off, n, cocotb.start_soon(axi.read(base + off, n)))
                     for off, n in ((rng.randrange(0, 7000), rng.randrange(1, 1000))
                                    for _ in range(8))]
            for off, n, task in reads:
                assert (await task).data == bytes(shadow[off:off + n])
            assert await tb.bd.read_channel(ch, 0, 8192) == bytes(shadow)
    assert int(dut.error.value) == 0
