"""The MPU weight streamer through the memory system: tiles in ``tile_order`` and conv1d biases
per block, bit for bit, from HBM / DDR / the weight buffer, with a consumer that takes a
block's biases only after its tiles (as the MPU does); one tile per cycle."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator
from dma_harness import Mems, tiny_geometry, wbuf_load

from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.isa_layouts import Space
from dfx.rtl.mpu.mpu import tile_order

SPACES = {"hbm": Space.HBM, "ddr": Space.DDR, "wbuf": Space.WBUF}


def run_weights(g, cmds, *, window: int, stall: float, seed: int, mpu_like: bool = True,
                max_interleave: int = 2, bias_depth: int = 8):
    """Each cmd: dict(space, addr, kt, nt, kts, G, batch, bias, bspace, baddr). Returns
    (tiles, tile cycles, biases, images)."""
    rng = random.Random(seed)
    dut = MemorySystem(g, wbuf_latency=2, max_interleave=max_interleave,
                       bias_depth=bias_depth, program_words=64)
    mems = Mems(g, hbm_bytes=4 * window, ddr_bytes=window, stall=stall, seed=seed)
    images = {k: rng.randbytes(window) for k in SPACES}
    mems.write_hbm(0, images["hbm"])
    mems.ddr[:window] = images["ddr"]
    # expected per command: the sequence of (row, block) boundaries for the consumer
    plan = []
    for c in cmds:
        for _ in range(c["batch"] or 1):
            order = list(tile_order(c["kt"], c["nt"], c["G"]))
            plan.append((c, order))
    n_tiles = sum(len(o) for _, o in plan)
    tiles, when, biases = [], [], []

    async def feed(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        await wbuf_load(ctx, dut.wbuf_mem, g, images["wbuf"])
        for c in cmds:
            ctx.set(dut.mpu_cmd.payload, {
                "space": SPACES[c["space"]], "addr": c["addr"], "kt": c["kt"], "nt": c["nt"],
                "kt_stride": c["kts"], "interleave": c["G"], "batch": c["batch"],
                "bias": c["bias"], "bspace": SPACES[c["bspace"]], "baddr": c["baddr"]})
            ctx.set(dut.mpu_cmd.valid, 1)
            await ctx.tick().until(dut.mpu_cmd.ready)
            ctx.set(dut.mpu_cmd.valid, 0)

    async def consumer(ctx):
        """Takes tiles; a block's biases only once all its tiles are in (the MPU's order)."""
        r2 = random.Random(seed + 5)
        cyc = 0
        allowed = 0  # bias beats that may be taken
        seen = 0
        blocks = []  # (tiles needed before, groups) per block with biases
        acc = 0
        for c, order in plan:
            if not c["bias"]:
                acc += len(order)
                continue
            for b0 in range(0, c["nt"], c["G"]):
                gb = min(c["G"], c["nt"] - b0)
                acc += c["kt"] * gb
                blocks.append((acc, gb))
        n_bias = sum(gb for _, gb in blocks)
        while len(tiles) < n_tiles or len(biases) < n_bias:
            while blocks and (seen >= blocks[0][0] or not mpu_like):
                allowed += blocks.pop(0)[1]
            ok_t = int(not stall or r2.random() > stall)
            ok_b = int((allowed > len(biases)) and (not stall or r2.random() > stall))
            ctx.set(dut.mpu_tiles.ready, ok_t)
            ctx.set(dut.mpu_bias.ready, ok_b)
            _, _, tv, tp, bv, bp = await ctx.tick().sample(
                dut.mpu_tiles.valid, dut.mpu_tiles.payload, dut.mpu_bias.valid,
                dut.mpu_bias.payload)
            cyc += 1
            assert cyc < 20000, "stuck"
            if tv and ok_t:
                tiles.append(b"".join(int(x).to_bytes(2, "little") for lane in tp for x in lane))
                when.append(cyc)
                seen += 1
            if bv and ok_b:
                biases.append(b"".join(int(x).to_bytes(2, "little") for x in bp))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return tiles, when, biases, images


def _expect(g, cmds, images):
    tb, lb = g.row_bytes, 2 * g.l
    tiles, biases = [], []
    for c in cmds:
        img, bimg = images[c["space"]], images[c["bspace"]]
        kts = c["kts"] or c["kt"]
        for _ in range(c["batch"] or 1):
            for n, k in tile_order(c["kt"], c["nt"], c["G"]):
                a = c["addr"] + (n * kts + k) * tb
                tiles.append(img[a:a + tb])
            if c["bias"]:
                for n in range(c["nt"]):
                    a = c["baddr"] + n * lb
                    biases.append(bimg[a:a + lb])
    return tiles, biases


@pytest.mark.parametrize("stall, seed", [(0.0, 1), (0.3, 2)])
def test_tiles_and_biases(stall: float, seed: int) -> None:
    g = tiny_geometry()
    window = 4096
    rng = random.Random(seed)
    cmds = []
    for _ in range(8):
        kt, nt, G = rng.randrange(1, 4), rng.randrange(1, 6), rng.choice([1, 2])  # noqa: N806
        kts = rng.choice([0, kt, kt + rng.randrange(3)])
        span = ((nt - 1) * (kts or kt) + kt) * g.row_bytes
        bias = rng.random() < 0.6
        cmds.append({
            "space": rng.choice(list(SPACES)), "kt": kt, "nt": nt, "G": G, "kts": kts,
            "batch": rng.choice([0, 1, 2]), "bias": int(bias),
            "addr": g.row_bytes * rng.randrange((window - span) // g.row_bytes + 1),
            "bspace": rng.choice(list(SPACES)),
            "baddr": 2 * rng.randrange((window - nt * 2 * g.l) // 2),
        })
    tiles, _, biases, images = run_weights(g, cmds, window=window, stall=stall, seed=seed)
    et, eb = _expect(g, cmds, images)
    assert tiles == et
    assert biases == eb


@pytest.mark.parametrize("space", ["hbm", "wbuf"])
def test_one_tile_per_cycle(space: str) -> None:
    g = tiny_geometry()
    kt, nt = 8, 8
    cmds = [{"space": space, "addr": 0, "kt": kt, "nt": nt, "G": 2, "kts": 0, "batch": 1,
             "bias": 0, "bspace": "ddr", "baddr": 0}]
    tiles, when, _, images = run_weights(g, cmds, window=4096, stall=0.0, seed=3)
    assert tiles == _expect(g, cmds, images)[0]
    assert when[-1] - when[0] == kt * nt - 1


def test_biases_cost_one_op_per_block_row() -> None:
    """With biases in the same space, each block adds its bias ops (one, or two when its
    biases cross a row) to the tile stream."""
    g = tiny_geometry()
    kt, nt, G = 4, 8, 2  # noqa: N806
    cmds = [{"space": "hbm", "addr": 0, "kt": kt, "nt": nt, "G": G, "kts": 0, "batch": 1,
             "bias": 1, "bspace": "hbm", "baddr": 2048}]
    tiles, when, biases, images = run_weights(g, cmds, window=4096, stall=0.0, seed=4,
                                              mpu_like=False)
    et, eb = _expect(g, cmds, images)
    assert tiles == et and biases == eb
    assert when[-1] - when[0] == kt * nt - 1 + (nt // G - 1)


@pytest.mark.parametrize("baddr", [56, 58, 62, 2 * 64 - 2])
def test_bias_block_across_rows(baddr: int) -> None:
    """A block's biases that cross a row: groups in the first row, across the boundary and
    wholly in the second row."""
    g = tiny_geometry()
    cmds = [{"space": "hbm", "addr": 0, "kt": 1, "nt": 6, "G": 2, "kts": 0, "batch": 2,
             "bias": 1, "bspace": bs, "baddr": baddr} for bs in ("ddr", "hbm", "wbuf")]
    tiles, _, biases, images = run_weights(g, cmds, window=4096, stall=0.2, seed=baddr)
    et, eb = _expect(g, cmds, images)
    assert tiles == et and biases == eb
