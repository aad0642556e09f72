"""``Fabric``: random ops from three clients over HBM, DDR and the weight buffer, checked against
an in-order reference (claim order per space), with memory stalls and back-pressure. The issue
stage's clients (DMA, MPU) claim one at a time, as issue does; the word port at any time."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator
from dma_harness import Mems, tiny_geometry, wbuf_image

from dfx.rtl.dma.fabric import ISSUE_CLIENTS, Fabric
from dfx.rtl.dma.geometry import MEM_SPACES, Client
from dfx.rtl.isa_layouts import Space

NAMES = {Space.HBM: "hbm", Space.DDR: "ddr", Space.WBUF: "wbuf"}


def _gen(rng: random.Random, g, client: Client, writes: bool, n_cmds: int, rows: int):
    """Random commands: each claims 1-2 spaces and has 1-3 ops per space."""
    C, W = g.channels, g.beat_bytes  # noqa: N806
    cmds = []
    for _ in range(n_cmds):
        spaces = rng.sample(list(MEM_SPACES), rng.choice([1, 1, 2]))
        ops = []
        for sp in spaces:
            k = rng.randrange(1, 4)
            blk = g.block_rows(sp)
            for i in range(k):
                start = rng.randrange(0, rows)
                nrows = rng.randrange(1, min(3, blk - start % blk) + 1)
                while True:
                    m0, m1 = rng.getrandbits(C), rng.getrandbits(C)
                    masks = [((m0 if j == 0 else -1) & (m1 if j == nrows - 1 else -1))
                             & ((1 << C) - 1) for j in range(nrows)]
                    if all(masks):
                        break
                wr = writes and rng.random() < 0.5
                rows_data = []
                if wr:
                    for mk in masks:
                        data = rng.getrandbits(8 * C * W)
                        strb = rng.getrandbits(C * W)
                        keep = sum(((1 << W) - 1) << (W * b) for b in range(C) if mk >> b & 1)
                        rows_data.append((data, strb & keep))
                ops.append({"space": sp, "write": int(wr), "row": start, "nrows": nrows,
                            "m0": m0, "m1": m1, "end": int(i == k - 1),
                            "tag": rng.getrandbits(48), "masks": masks, "rows": rows_data})
        # interleave spaces' ops but keep each space's own order
        order = []
        per = {sp: [o for o in ops if o["space"] == sp] for sp in spaces}
        while any(per.values()):
            sp = rng.choice([s for s in spaces if per[s]])
            order.append(per[sp].pop(0))
        cmds.append({"spaces": spaces, "ops": order})
    return cmds


@pytest.mark.parametrize("stall, seed", [(0.0, 1), (0.3, 2)])
def test_random_ops_in_claim_order(stall: float, seed: int) -> None:
    g = tiny_geometry()
    C, W, R = g.channels, g.beat_bytes, g.row_bytes  # noqa: N806
    clients = [Client.WORD, Client.DMA, Client.MPU]
    writers = {Client.WORD, Client.DMA}
    dut = Fabric(g, wbuf_latency=2, clients=clients, writers=writers)
    rng = random.Random(seed)
    mems = Mems(g, stall=stall, seed=seed)
    rows = 12  # ops start in rows 0..11 and span up to 3 rows
    init = {k: rng.randbytes((rows + 3) * R) for k in ("hbm", "ddr", "wbuf")}
    mems.write_hbm(0, init["hbm"])
    mems.ddr[:len(init["ddr"])] = init["ddr"]
    cmds = {c: _gen(rng, g, c, c in writers, 6, rows) for c in clients}
    claims: list[tuple[Client, int]] = []
    got: dict[Client, list] = {c: [] for c in clients}
    acks = {c: [0, 0, 0] for c in clients}
    done = [0]

    async def bases(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        for i in range(rows + 3):
            ctx.set(dut.wbuf_mem.data[i], int.from_bytes(init["wbuf"][i * R:(i + 1) * R],
                                                          "little"))

    issue = [None]  # the issue stage's clients never claim in the same cycle

    def claimer(c):
        p = dut.port(c)

        async def run(ctx):
            for k, cmd in enumerate(cmds[c]):
                if c in ISSUE_CLIENTS:
                    while issue[0] is not None:
                        await ctx.tick()
                    issue[0] = c
                ctx.set(p.claim, sum(1 << MEM_SPACES.index(s) for s in cmd["spaces"]))
                ctx.set(p.claim_valid, 1)
                await ctx.tick().until(p.claim_ok)
                claims.append((c, k))
                ctx.set(p.claim_valid, 0)
                if c in ISSUE_CLIENTS:
                    issue[0] = None
                for _ in range(rng.randrange(3)):
                    await ctx.tick()
        return run

    def opper(c):
        p = dut.port(c)

        async def run(ctx):
            for k, cmd in enumerate(cmds[c]):
                while (c, k) not in claims:
                    await ctx.tick()
                for op in cmd["ops"]:
                    ctx.set(p.op.payload, {f: op[f] for f in
                                           ("space", "write", "row", "nrows", "m0", "m1", "end",
                                            "tag")})
                    ctx.set(p.op.valid, 1)
                    await ctx.tick().until(p.op.ready)
                    ctx.set(p.op.valid, 0)
            done[0] += 1
        return run

    def wfeeder(c):
        p = dut.port(c)
        rows_out = [(op["space"], d, s) for cmd in cmds[c] for op in cmd["ops"] if op["write"]
                    for d, s in op["rows"]]

        async def run(ctx):
            for sp, d, s in rows_out:
                ctx.set(p.wdata.payload, {"space": sp, "data": d, "strb": s})
                ctx.set(p.wdata.valid, 1)
                await ctx.tick().until(p.wdata.ready)
                ctx.set(p.wdata.valid, 0)
        return run

    def sink(c):
        p = dut.port(c)
        r2 = random.Random(seed + int(c))

        async def run(ctx):
            while True:
                ok = int(r2.random() > stall)
                ctx.set(p.rdata.ready, ok)
                sig = [p.rdata.valid, p.rdata.payload]
                if c in writers:
                    sig.append(p.wack)
                _, _, v, pl, *a = await ctx.tick().sample(*sig)
                if v and ok:
                    got[c].append((pl.data, pl.tag, pl.first, pl.last))
                if a:
                    for i in range(3):
                        acks[c][i] += a[0] >> i & 1
        return run

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(bases)
    for c in clients:
        sim.add_testbench(claimer(c), background=True)
        sim.add_testbench(opper(c), background=True)
        if c in writers:
            sim.add_testbench(wfeeder(c), background=True)
        sim.add_testbench(sink(c), background=True)
    final = {}

    async def main(ctx):
        cyc = 0
        while done[0] < len(clients):
            await ctx.tick()
            cyc += 1
            assert cyc < 20000, "stuck"
        await ctx.tick().repeat(200)
        final["wbuf"] = wbuf_image(ctx, dut.wbuf_mem, g, rows + 3)

    sim.add_testbench(main)
    sim.run()

    # ---- reference: commands in claim order, each command's ops in order
    img = {k: bytearray(v) for k, v in init.items()}
    expect: dict[Client, list] = {c: [] for c in clients}
    n_acks = {c: [0, 0, 0] for c in clients}
    for c, k in claims:
        for op in cmds[c][k]["ops"]:
            mem = img[NAMES[op["space"]]]
            for j, mk in enumerate(op["masks"]):
                r = op["row"] + j
                if op["write"]:
                    d, s = op["rows"][j]
                    raw = d.to_bytes(R, "little")
                    for b in range(R):
                        if s >> b & 1:
                            mem[r * R + b] = raw[b]
                else:
                    expect[c].append((bytes(mem[r * R:(r + 1) * R]), mk, op["tag"], j == 0,
                                      j == op["nrows"] - 1))
            if op["write"] and op["end"]:
                n_acks[c][MEM_SPACES.index(op["space"])] += 1
    for c in clients:
        assert len(got[c]) == len(expect[c]), c
        for (data, tag, first, last), (ref, mk, etag, efirst, elast) in zip(
                got[c], expect[c], strict=True):
            raw = data.to_bytes(R, "little")
            for b in range(C):
                if mk >> b & 1:
                    assert raw[b * W:(b + 1) * W] == ref[b * W:(b + 1) * W]
            assert (tag, first, last) == (etag, efirst, elast)
        if c in writers:
            assert acks[c] == n_acks[c], c
    assert mems.read_hbm(0, len(img["hbm"])) == bytes(img["hbm"])
    assert bytes(mems.ddr[:len(img["ddr"])]) == bytes(img["ddr"])
    assert final["wbuf"] == bytes(img["wbuf"])
