"""``AxiMemory`` (rtl/tb/axi_mem.py, Amaranth RAM) on Amaranth's simulator: every beat cycle
and B response equals the timing model's ``Port`` schedule for the same requests (tiny and
dfx-u280 HBM timing, DDR timing), data round trips, stalls and back-pressure change timing
only, range / 4 KiB / burst errors."""

from __future__ import annotations

import random

import pytest
from axi_mem_harness import Req, expected, run_master

from dfx.isa.config import load_core
from dfx.rtl.tb import mem_model as mm
from dfx.rtl.tb.axi_mem import AxiMemory, BackdoorSignature, MemorySystem
from dfx.sim.timing.params import derive

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def mem_for(core_name: str, which: str = "hbm", size: int = 1 << 14, **kw):
    core = load_core(core_name)
    ch = getattr(derive(core), which)
    timing = mm.ChannelTiming.from_channels(ch, core.timing.dma_port_bits // 8)
    return AxiMemory(timing, size, ram="amaranth", **kw), timing, ch


def check_schedule(timing, ch, reqs):
    for r, d0, beats, free in expected(timing, ch, reqs):
        assert r.beat_cycles == beats, (r, d0, beats)
        if r.write:
            assert r.b_cycle == free, (r, free)
        else:
            assert r.first_valid == d0


def random_reqs(rng, n, words, gap=(0, 3), max_beats=9, write_p=0.5, b=16):
    reqs, at = [], 0
    for i in range(n):
        beats = rng.randint(1, max_beats)
        word = rng.randrange(0, words - beats)
        w = rng.random() < write_p
        reqs.append(Req(w, word, beats, at=at, id=i % 2,
                        data=[rng.getrandbits(8 * b) for _ in range(beats)] if w else []))
        at += rng.randint(*gap)
    return reqs


@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_reads_match_port(core):
    dut, timing, ch = mem_for(core)
    reqs = [Req(False, 0, 1, at=3), Req(False, 8, 4, at=3), Req(False, 100, 16, at=4),
            Req(False, 7, 1, at=60), Req(False, 9, 3, at=200), Req(False, 1, 2, at=201)]
    run_master(dut, reqs, cycles=400)
    check_schedule(timing, ch, reqs)
    assert reqs[0].first_valid == reqs[0].accepted + timing.latency  # idle channel


@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_mixed_traffic_matches_port_and_data(core):
    dut, timing, ch = mem_for(core)
    b = timing.beat_bytes
    rng = random.Random(core)
    # writes first so that reads see data; then a random mix (turnarounds both ways)
    reqs = [Req(True, 16 * i, 8, at=0, id=i % 2, data=[rng.getrandbits(8 * b) for _ in range(8)])
            for i in range(4)]
    reqs += random_reqs(rng, 40, 64, b=b)
    for r in reqs[4:]:
        r.at += 2
    run_master(dut, reqs, cycles=3000)
    assert all(r.accepted is not None for r in reqs)
    check_schedule(timing, ch, reqs)
    mem: dict[int, int] = {}
    for r in sorted(reqs, key=lambda r: r.accepted):
        if r.write:
            for k, v in enumerate(r.data):
                mem[r.word + k] = v
            assert r.resp == [0]
        else:
            assert r.rdata == [mem.get(r.word + k, 0) for k in range(r.beats)]
            assert r.resp == [0] * r.beats


def test_ddr_timing():
    dut, timing, ch = mem_for("tiny", "ddr")
    reqs = [Req(False, 0, 5, at=2), Req(True, 3, 2, at=2, data=[1, 2]), Req(False, 3, 2, at=3)]
    run_master(dut, reqs, cycles=300)
    check_schedule(timing, ch, reqs)
    assert reqs[2].rdata == [1, 2]
    assert timing.turnaround == 0


@pytest.mark.parametrize("ready_p,wvalid_p,stall", [(0.5, 1.0, 0), (1.0, 0.6, 0), (0.7, 0.7, 6),
                                                    (1.0, 1.0, 15)])
def test_back_pressure_and_stalls_keep_results(ready_p, wvalid_p, stall):
    dut, timing, ch = mem_for("tiny", seed=0xACE1)
    rng = random.Random(stall)
    reqs = random_reqs(rng, 30, 48)
    run_master(dut, reqs, cycles=6000, ready_p=ready_p, wvalid_p=wvalid_p, stall=stall,
               seed=stall + 1)
    assert all(r.accepted is not None for r in reqs)
    mem: dict[int, int] = {}
    for r in sorted(reqs, key=lambda r: r.accepted):
        if r.write:
            for k, v in enumerate(r.data):
                mem[r.word + k] = v
            assert r.resp == [0]
        else:
            assert r.rdata == [mem.get(r.word + k, 0) for k in range(r.beats)]
    # never earlier than the model allows
    for r, _d0, beats, _free in expected(timing, ch, reqs):
        assert all(got >= want for got, want in zip(r.beat_cycles, beats, strict=True))
    if stall == 15:
        slow = [r for r in reqs if not r.write]
        assert any(r.first_valid > r.accepted + timing.latency for r in slow)


def test_errors_and_slverr():
    """Out of range: SLVERR, zero data, nothing written; sticky error bits."""
    base = 1 << 20
    dut, timing, ch = mem_for("tiny", size=1 << 12, base=base)
    reqs = [Req(True, 1, 1, at=1, data=[7]), Req(True, 255, 2, at=1, data=[8, 9]),
            Req(False, 250, 10, at=1), Req(False, 1, 1, at=2)]
    err = run_master(dut, reqs, base=base, cycles=300)
    assert reqs[0].resp == [0] and reqs[3].rdata == [7]
    assert reqs[1].resp == [2]  # past the end: SLVERR
    assert reqs[2].resp == [2] * 10 and reqs[2].rdata == [0] * 10
    assert err == mm.ERR_RANGE | mm.ERR_4K  # 250 + 10 words of 16 bytes cross 4 KiB
    dut, *_ = mem_for("tiny", size=1 << 12, base=base)
    err = run_master(dut, [], base=base, cycles=50, raw=[(base - 16, 0, 4, 1)])
    assert err == mm.ERR_RANGE
    dut, *_ = mem_for("tiny", size=1 << 12, base=base)
    err = run_master(dut, [], base=base, cycles=50, raw=[(base, 0, 3, 1), (base, 1, 4, 2)])
    assert err == mm.ERR_BURST  # narrow beat, then a WRAP burst


def test_parameter_checks():
    core = load_core("tiny")
    t = mm.ChannelTiming.from_channels(derive(core).hbm, 16)
    with pytest.raises(ValueError, match="size must be a power of two"):
        AxiMemory(t, 3 << 10)
    with pytest.raises(ValueError, match="base"):
        AxiMemory(t, 1 << 12, base=100)
    with pytest.raises(ValueError, match="queue_depth"):
        AxiMemory(t, 1 << 12, queue_depth=1)
    with pytest.raises(ValueError, match="ram must be"):
        AxiMemory(t, 1 << 12, ram="sram")
    with pytest.raises(TypeError, match="ChannelTiming"):
        AxiMemory(derive(core).hbm, 1 << 12)
    with pytest.raises(ValueError, match="granule"):
        mm.ChannelTiming(10, 1, 16, 1, 64, 16)
    with pytest.raises(ValueError, match="exceeds one beat"):
        mm.ChannelTiming(10, 1, 17, 1, 16, 16)
    m = AxiMemory(t, 1 << 12, base=1 << 12)
    assert (m.size, m.base, m.words, m.beat_bytes, m.latency) == (4096, 4096, 256, 16, 10)
    sysm = MemorySystem.from_core(core, hbm_bytes=1 << 12, ddr_bytes=1 << 14)
    assert len(sysm.channels) == 5 and sysm.layout.ddr_channel == 4
    assert sysm.bd.signature == BackdoorSignature(3, 11).flip()
