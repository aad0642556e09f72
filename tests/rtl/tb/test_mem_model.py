"""The Python side of the memory model (rtl/tb/mem_model.py): interleave split against a
brute-force mapping, word swap, channel timing against ``Channels.cycles``, layouts."""

from __future__ import annotations

import itertools
import random

import pytest

from dfx.isa.config import load_core
from dfx.rtl.tb import mem_model as mm
from dfx.sim.timing.params import derive


def layout(n=4, il=16, size=1 << 12, beat=16):
    return mm.MemLayout(beat_bytes=beat, hbm_channels=n, hbm_bytes=size, interleave=il,
                        ddr_bytes=1 << 14, hbm_bases=(0,) * n)


@pytest.mark.parametrize("n,il", [(4, 16), (3, 16), (32, 64), (1, 16)])
def test_scatter_gather_against_brute_force(n, il):
    lay = layout(n, il, size=1 << 14, beat=max(16, il))
    rng = random.Random(n * il)
    total = lay.hbm_bytes * n
    for _ in range(60):
        addr = rng.randrange(0, total)
        length = rng.randrange(0, min(total - addr, 3 * il * n + 5) + 1)
        data = bytes(rng.getrandbits(8) for _ in range(length))
        expect: dict[int, dict[int, int]] = {}
        for k, byte in enumerate(data):
            c, off = lay.hbm_location(addr + k)
            assert c == ((addr + k) // il) % n
            expect.setdefault(c, {})[off] = byte
        pieces = lay.hbm_scatter(addr, data)
        assert [(c, lo, len(p)) for c, lo, p in pieces] == lay.hbm_ranges(addr, length)
        got = {c: {lo + i: b for i, b in enumerate(p)} for c, lo, p in pieces}
        assert got == expect
        assert lay.hbm_gather(addr, length, {c: p for c, _lo, p in pieces}) == data
    with pytest.raises(ValueError, match="outside"):
        lay.hbm_ranges(total - 4, 5)


def test_word_swap():
    data = bytes(range(32))
    assert mm.word_swap(data, 16) == bytes(range(15, -1, -1)) + bytes(range(31, 15, -1))
    assert mm.word_swap(mm.word_swap(data, 8), 8) == data


@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_channel_timing_matches_channels(core):
    c = load_core(core)
    p = derive(c)
    for ch in (p.hbm, p.ddr):
        t = mm.ChannelTiming.from_channels(ch, c.timing.dma_port_bits // 8)
        assert (t.latency, t.turnaround) == (ch.latency, ch.turnaround)
        for beats in (1, 2, 3, 7, 16, 256):
            times, free = t.beat_times(100, beats)
            assert free - 100 == ch.cycles(t.granules(beats))
            assert times[0] == 100 and all(b > a for a, b in itertools.pairwise(times))
            assert times[-1] < free
        assert t.floor <= -(t.rate_num - 1)


def test_layout_from_core_and_checks():
    lay = mm.MemLayout.from_core(load_core("tiny"))
    assert (lay.hbm_channels, lay.hbm_bytes, lay.ddr_bytes, lay.beat_bytes, lay.interleave) == (
        4, 1 << 20, 2 * 8 << 20, 16, 16)
    assert lay.channels == 5 and lay.ddr_channel == 4 and lay.words(4) == (16 << 20) // 16
    big = mm.MemLayout.from_core(load_core("dfx-u280"), hbm_bytes=1 << 16, ddr_bytes=1 << 20)
    assert big.beat_bytes == 64 and big.hbm_channels == 32 and big.hbm_timing.rate_num == 64
    with pytest.raises(ValueError, match="hbm_bytes must be a power of two"):
        layout(size=3000)
    with pytest.raises(ValueError, match="hbm_bases needs 4"):
        mm.MemLayout(16, 4, 4096, 16, 4096, (0, 0))
    with pytest.raises(ValueError, match="multiple of the memory size"):
        mm.MemLayout(16, 1, 4096, 16, 4096, (100,))
    with pytest.raises(ValueError, match="channel must be"):
        lay.size(5)
