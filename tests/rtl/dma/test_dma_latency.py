"""The fixed latencies MemorySystem exposes (the timing model's figures), measured on an idle
system with a stall-free memory: commands to AXI addresses, R beats to rows / vectors / tiles /
lw responses, store vectors to W beats, B responses to done."""

from __future__ import annotations

from amaranth.sim import Simulator
from dma_harness import Mems, tiny_geometry

from dfx.rtl.dma.dma_ops import DmaOp
from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.isa_layouts import Space


def test_latencies() -> None:
    g = tiny_geometry()
    dut = MemorySystem(g, wbuf_latency=2, max_interleave=2, bias_depth=8, program_words=16)
    mems = Mems(g, latency=6)
    ev: dict[str, list[int]] = {}

    def note(name: str, cyc: int) -> None:
        ev.setdefault(name, []).append(cyc)

    # (cycle to start, port, payload) in order, spaced so they do not overlap
    plan = [
        (3, "dma", {"op": DmaOp.LOAD, "src_space": Space.HBM, "src": 0, "n": g.d}),
        (40, "mpu", {"space": Space.HBM, "addr": 0, "kt": 1, "nt": 1, "interleave": 1,
                     "batch": 1}),
        (80, "dma", {"op": DmaOp.STORE, "dst_space": Space.HBM, "dst": 0, "n": g.d}),
        (120, "dma", {"op": DmaOp.LOAD, "src_space": Space.WBUF, "src": 0, "n": g.d}),
        (160, "word", {"write": 0, "space": Space.DDR, "addr": 20}),
        (200, "word", {"write": 1, "space": Space.HBM, "addr": 20, "wdata": 5}),
    ]
    ports = {"dma": dut.dma_cmd, "mpu": dut.mpu_cmd, "word": dut.word_req}

    async def bench(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        for p in (dut.dma_load, dut.mpu_tiles, dut.word_resp):
            ctx.set(p.ready, 1)
        ctx.set(dut.dma_store.payload, list(range(g.d)))
        ctx.set(dut.dma_store.valid, 1)
        cyc = 0
        live = None
        for _ in range(240):
            for start, name, pl in plan:
                if cyc == start:
                    ctx.set(ports[name].payload, pl)
                    ctx.set(ports[name].valid, 1)
                    live = name
            sig = [ports[live].valid, ports[live].ready] if live else [0, 0]
            _, _, cv, cr, lv, tv, rv, dn, sv, sr = await ctx.tick().sample(
                *sig, dut.dma_load.valid, dut.mpu_tiles.valid, dut.word_resp.valid,
                dut.dma_done, dut.dma_store.valid, dut.dma_store.ready)
            if cv and cr:
                note("cmd", cyc)
                ctx.set(ports[live].valid, 0)
                live = None
            for name, v in (("load", lv), ("tile", tv), ("resp", rv), ("done", dn)):
                if v:
                    note(name, cyc)
            if sv and sr:
                note("store_in", cyc)
                ctx.set(dut.dma_store.valid, 0)
            cyc += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(bench)
    sim.run()
    axi = {}
    for c, mm in enumerate(mems.models):
        for name, cyc in mm.events:
            axi.setdefault(name, []).append((cyc, c))
    ar = sorted(axi["ar"])
    r = sorted(axi["r"])
    cmd = ev["cmd"]
    op = dut.cmd_to_op
    lm = r[0][0] - ar[0][0]
    # HBM load: command -> AR -> R -> vector -> done
    assert ar[0][0] == cmd[0] + op["dma"] + dut.op_to_addr
    assert ev["load"][0] == r[0][0] + dut.r_to_row + dut.row_to_vector
    assert ev["done"][0] == ev["load"][0] + dut.load_done
    # MPU: command -> AR (all four channels) -> tile
    mpu_ar = [c for c, _ in ar if c > cmd[1]]
    assert mpu_ar[:4] == [cmd[1] + op["mpu"] + dut.op_to_addr] * 4
    assert ev["tile"][0] == mpu_ar[0] + lm + dut.r_to_row
    # store: vector -> W beat; B -> done
    w = sorted(axi["w"])
    b = sorted(axi["b"])
    assert w[0][0] == ev["store_in"][0] + dut.store_to_w
    assert ev["done"][1] == b[0][0] + dut.b_to_done
    # weight-buffer load: command -> vector
    assert ev["load"][1] == cmd[3] + op["dma"] + dut.op_to_wbuf_row + dut.row_to_vector
    assert ev["done"][2] == ev["load"][1] + dut.load_done
    # lw from DDR: request -> AR -> R -> response; sw: B -> response
    lw_ar = [c for c, ch in ar if ch == g.channels][0]
    assert lw_ar == cmd[4] + op["word"] + dut.op_to_addr
    lw_r = [c for c, ch in r if ch == g.channels][0]
    assert ev["resp"][0] == lw_r + dut.r_to_row
    assert ev["resp"][1] == b[-1][0] + dut.b_to_done


def test_bias_latency() -> None:
    """A conv1d block's bias row (its last R beat) to its first bias beat on ``mpu_bias``."""
    g = tiny_geometry()
    dut = MemorySystem(g, wbuf_latency=1, max_interleave=2, bias_depth=8, program_words=16)
    mems = Mems(g, latency=4)
    seen: list[int] = []

    async def bench(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        ctx.set(dut.mpu_bias.ready, 1)
        ctx.set(dut.mpu_tiles.ready, 1)
        ctx.set(dut.mpu_cmd.payload, {"space": Space.HBM, "addr": 0, "kt": 1, "nt": 2,
                                      "interleave": 2, "batch": 1, "bias": 1,
                                      "bspace": Space.DDR, "baddr": 0})
        ctx.set(dut.mpu_cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.mpu_cmd.valid, 0)
        for cyc in range(1, 60):
            _, _, bv = await ctx.tick().sample(dut.mpu_bias.valid)
            if bv:
                seen.append(cyc)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(bench)
    sim.run()
    r = [c for name, c in mems.models[-1].events if name == "r"]
    assert seen[0] == r[-1] + dut.r_to_row + dut.weights.bias_latency
    assert seen[1] == seen[0] + 1
