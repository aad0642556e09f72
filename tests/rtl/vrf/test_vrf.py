"""The vector register file: construction checks and read/write behaviour (Amaranth sim)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.rtl.vrf.vrf import Vrf


@pytest.mark.parametrize("kw, msg", [
    ({"vectors": 0, "d": 8}, "vectors must be a positive integer"),
    ({"vectors": 4, "d": 6}, "d must be a power of two"),
])
def test_bad_parameters(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        Vrf(**kw, read_ports=["a"], write_ports=["a"])


def test_bad_port_names() -> None:
    with pytest.raises(ValueError, match="read_ports must not repeat"):
        Vrf(4, 8, read_ports=["a", "a"], write_ports=["b"])
    with pytest.raises(ValueError, match="write_ports must be a non-empty"):
        Vrf(4, 8, read_ports=["a"], write_ports=[])


def test_from_core_and_ports() -> None:
    v = Vrf.from_core(load_core("tiny"), read_ports=["vpu_a", "mpu"], write_ports=["vpu"])
    assert v.vectors == 4096 and v.d == 8 and v.read_latency == 1 and v.copies == 2
    assert v.read_ports == ("vpu_a", "mpu") and v.write_ports == ("vpu",)


def test_write_then_read_next_cycle() -> None:
    dut = Vrf(16, 4, read_ports=["a", "b"], write_ports=["x", "y"])

    async def bench(ctx):
        # two ports write different vectors in the same cycle
        ctx.set(dut.w_x.addr, 3)
        ctx.set(dut.w_x.data, [1, 2, 3, 4])
        ctx.set(dut.w_x.en, 1)
        ctx.set(dut.w_y.addr, 5)
        ctx.set(dut.w_y.data, [5, 6, 7, 8])
        ctx.set(dut.w_y.en, 1)
        ctx.set(dut.r_a.addr, 3)
        ctx.set(dut.r_a.en, 1)
        await ctx.tick()
        ctx.set(dut.w_x.en, 0)
        ctx.set(dut.w_y.en, 0)
        # the read in the write cycle saw the old contents; the next one sees the write
        assert [int(x) for x in ctx.get(dut.r_a.data)] == [0, 0, 0, 0]
        ctx.set(dut.r_b.addr, 5)
        ctx.set(dut.r_b.en, 1)
        await ctx.tick()
        assert [int(x) for x in ctx.get(dut.r_a.data)] == [1, 2, 3, 4]
        assert [int(x) for x in ctx.get(dut.r_b.data)] == [5, 6, 7, 8]
        ctx.set(dut.r_a.en, 0)
        ctx.set(dut.r_a.addr, 5)
        await ctx.tick()
        assert [int(x) for x in ctx.get(dut.r_a.data)] == [1, 2, 3, 4]  # held while en low

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("seed", [0, 1])
def test_random_traffic_matches_one_memory(seed: int) -> None:
    """Every port busy at random: each read returns the vector as it was at the start of its
    en cycle, whichever write port last wrote it (the live-value table picks the copy)."""
    import random

    rng = random.Random(seed)
    vectors, d = 8, 2
    reads, writes = ["a", "b", "c"], ["x", "y", "z"]
    dut = Vrf(vectors, d, read_ports=reads, write_ports=writes)
    assert dut.copies == 9

    async def bench(ctx):
        ref = [[0] * d for _ in range(vectors)]
        held = {r: [0] * d for r in reads}
        expect: dict[str, list[int]] = {}
        for _ in range(300):
            addrs = rng.sample(range(vectors), len(writes))  # distinct: no WAW in one cycle
            new = {}
            for w, a in zip(writes, addrs, strict=True):
                en = rng.random() < 0.6
                val = [rng.randrange(1 << 16) for _ in range(d)]
                port = getattr(dut, f"w_{w}")
                ctx.set(port.addr, a)
                ctx.set(port.data, val)
                ctx.set(port.en, en)
                if en:
                    new[a] = val
            for r in reads:
                port = getattr(dut, f"r_{r}")
                en = rng.random() < 0.7
                a = rng.randrange(vectors)
                ctx.set(port.addr, a)
                ctx.set(port.en, en)
                if en:
                    held[r] = list(ref[a])
            await ctx.tick()
            for a, val in new.items():
                ref[a] = val
            for r in reads:
                expect[r] = held[r]
                got = [int(x) for x in ctx.get(getattr(dut, f"r_{r}").data)]
                assert got == expect[r], (r, got, expect[r])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_copies_are_ultraram_with_one_write_and_one_read_port() -> None:
    """The copies are what block RAM can hold (1 write + 1 synchronous read port each, marked
    for UltraRAM); only the live-value table has many ports."""
    from amaranth.lib.memory import Memory

    from dfx.rtl.vrf.lvt import LiveValueTable

    dut = Vrf(16, 4, read_ports=["a", "b"], write_ports=["x", "y", "z"])
    frag = dut.elaborate(None)
    subs = {k: v[0] if isinstance(v, tuple) else v for k, v in frag._named_submodules.items()}
    copies = [v for v in subs.values() if isinstance(v, Memory)]
    assert len(copies) == 6
    for mem in copies:
        assert len(mem.write_ports) == 1 and len(mem.read_ports) == 1
        assert mem.read_ports[0].domain == "sync" and mem.attrs["ram_style"] == "ultra"
    (lvt,) = [v for v in subs.values() if isinstance(v, LiveValueTable)]
    assert (lvt.depth, lvt.writers, lvt.readers) == (16, 3, 2)


def test_ultraram_copies_have_no_initialiser() -> None:
    """URAM has no initial contents: the copies' Verilog has no ``initial`` block; the
    live-value table's LUT-RAM tables (one per write port) keep theirs (dfx.rtl.uram_init)."""
    from amaranth.back import verilog

    text = verilog.convert(Vrf(16, 4, read_ports=["a", "b"], write_ports=["x", "y"]),
                           emit_src=False)
    assert text.count('(* ram_style = "ultra" *)') == 4
    assert text.count("initial begin") == 2


@pytest.mark.parametrize("writers", [1, 2, 5])
def test_live_value_table_names_the_last_writer(writers: int) -> None:
    """The XOR form: after random writes (distinct addresses per cycle), every read names the
    port that last wrote the entry (0 for entries never written)."""
    import random

    from dfx.rtl.vrf.lvt import LiveValueTable

    rng = random.Random(writers)
    depth, readers = 16, 3
    dut = LiveValueTable(depth, writers, readers)

    async def bench(ctx):
        last = [0] * depth
        for _ in range(200):
            addrs = rng.sample(range(depth), writers)
            wrote = {}
            for k, a in enumerate(addrs):
                en = rng.random() < 0.7
                ctx.set(getattr(dut, f"w{k}_addr"), a)
                ctx.set(getattr(dut, f"w{k}_en"), en)
                if en:
                    wrote[a] = k
            want = []
            for j in range(readers):
                a = rng.randrange(depth)
                ctx.set(getattr(dut, f"r{j}_addr"), a)
                ctx.set(getattr(dut, f"r{j}_en"), 1)
                want.append(last[a])
            await ctx.tick()
            for a, k in wrote.items():
                last[a] = k
            assert [ctx.get(getattr(dut, f"r{j}_sel")) for j in range(readers)] == want

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
