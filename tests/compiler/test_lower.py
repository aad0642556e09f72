"""Lowering (compiler/lower.py, docs/compiler.md "The program of one card"): the shape of each
card's program, and the ring all-gathers (present only for N > 1, matched send/receive streams
between neighbours, complete vectors on every card, chunks within the router FIFO)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.lower import R_NT, R_NV, R_T, allgather_schedule
from dfx.compiler.program import Label
from dfx.isa.encoding import Count

CASES = [("gpt2-tiny", 1), ("gpt2-tiny", 2), ("gpt2-tiny", 3), ("gpt2-tiny", 4),
         ("gpt2-mini", 4), ("gpt2", 3), ("gpt2", 4), ("gpt2", 5), ("gpt2-xl-24h", 4),
         ("gpt2-xl", 4)]  # gpt2-tiny on 3, gpt2 on 5, gpt2-xl on 4 cards: uneven heads
GATHERED = ("attn", "proj", "ffn", "mlp")  # per layer; "logits" once per token


@pytest.fixture(scope="module")
def comps() -> dict[tuple[str, int], object]:
    return {(n, c): compile_model(n, cards=c, weights=False) for n, c in CASES}


def ops(prog, lo: int = 0, hi: int | None = None) -> list[str]:
    return [it.op for it in prog.items[lo:hi]]


@pytest.mark.parametrize("name,cards", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_program_shape(comps, name: str, cards: int) -> None:
    comp = comps[(name, cards)]
    n_layer = comp.graph.dims["n_layer"]
    for c, prog in enumerate(comp.programs):
        o = ops(prog)
        # one hardware loop (over the layers), one halt at the very end
        assert o.count("loop") == o.count("endloop") == 1
        assert o.count("halt") == 1 and o[-1] == "halt"
        loop_pc = o.index("loop")
        assert prog.items[loop_pc].operands["count"] == Count(n_layer)
        body = (loop_pc + 1, o.index("endloop"))  # Program.loops includes the endloop
        assert body in prog.loops
        # the token loop: a branch back to "token" right before the halt
        last = prog.items[-2]
        assert last.op == "blt" and last.operands["target"] == Label("token")
        assert prog.labels["token"] < loop_pc
        # per layer: LayerNorm twice, Q/K/V + c_proj + c_fc + c_proj, attention per local head
        heads = comp.partition.slices[c].heads[1]
        inner = Counter(ops(prog, body[0], body[1] + 1))
        s = comp.partition.slices[c]
        assert inner["conv1d"] == 3 + (s.proj_cols[1] > 0) * 2 + (s.fc_cols[1] > 0)
        assert inner["maskedmm"] == heads and inner["vexp"] == heads
        assert inner["mm"] == heads  # P·V per head
        assert inner["srsqrt"] == 2 and inner["vaccsq"] == 2
        assert inner["store_t"] == heads and inner["store"] == heads  # V^T and K per head
        # the epilogue: ln_f, LM head, arg-max, logits to DDR
        after = Counter(ops(prog, body[1] + 1))
        assert after["srsqrt"] == 1 and after["vargmax"] == 1
        assert after["mm"] == (1 if s.vocab_cols[1] else 0)
        # GELU fused into exactly one conv1d per layer (c_fc), on cards that have fc columns
        gelu = [it for it in prog.items[body[0]:body[1] + 1]
                if it.op == "conv1d" and it.operands.get("gelu")]
        assert len(gelu) == (1 if s.fc_cols[1] else 0)
        # causal attention bound to the position register; each local head has its own
        # score buffer and row-max register, and its softmax covers positions 0..t only
        masked = [it for it in prog.items if it.op == "maskedmm"]
        for it in masked:
            assert it.operands["limit"] == R_T
            assert it.operands["nt"] == Count(0, reg=R_NT)
        assert len({it.operands["y"].buf for it in masked}) == heads
        assert len({it.operands["max"] for it in masked}) == heads
        for it in prog.items:
            if it.op in ("vexp", "vsubs", "vmuls") and it.operands["y"].buf.startswith("scores"):
                assert it.operands["n"] == Count(0, reg=R_NV)


@pytest.mark.parametrize("name,cards", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_allgathers_only_with_several_cards(comps, name: str, cards: int) -> None:
    comp = comps[(name, cards)]
    for prog in comp.programs:
        o = Counter(ops(prog))
        if cards == 1:
            assert o["send"] == o["recv"] == 0
        else:
            assert o["send"] > 0 and o["recv"] > 0
        notes = {it.note for it in prog.items if it.op in ("send", "recv")}
        expected = {"attention heads", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "logits"}
        assert {n.rsplit("allgather ", 1)[-1] for n in notes} == (expected if cards > 1
                                                                  else set())


def stream(prog, op: str) -> list[tuple[str, int]]:
    """The vectors a card sends (or receives), in program order, as (buffer, vector index)."""
    out = []
    for it in prog.items:
        if it.op == op:
            v, n = it.operands["v"], it.operands["n"]
            assert n.reg == 0
            out += [(v.buf, v.off + k) for k in range(n.imm)]
    return out


@pytest.mark.parametrize("name,cards", [c for c in CASES if c[1] > 1],
                         ids=[f"{n}-{c}" for n, c in CASES if c > 1])
def test_ring_streams_match_between_neighbours(comps, name: str, cards: int) -> None:
    """What card c sends, card c+1 receives: the same vectors of the same buffers, in the same
    order (the FIFO carries no addresses)."""
    comp = comps[(name, cards)]
    fifo = comp.binary.core.buffers.router_fifo_vectors
    for c in range(cards):
        sent = stream(comp.programs[c], "send")
        got = stream(comp.programs[(c + 1) % cards], "recv")
        assert sent == got, f"card {c} -> {(c + 1) % cards}: streams differ"
        for it in comp.programs[c].items:
            if it.op in ("send", "recv"):
                assert 1 <= it.operands["n"].imm <= fifo


@pytest.mark.parametrize("name,cards", [c for c in CASES if c[1] > 1],
                         ids=[f"{n}-{c}" for n, c in CASES if c > 1])
def test_allgather_completes_every_vector(comps, name: str, cards: int) -> None:
    """After each all-gather every card holds the whole vector: the slice it computed plus
    what it received cover the buffer exactly once; it forwards only vectors it holds."""
    comp = comps[(name, cards)]
    p = comp.partition
    hv = p.vec(p.head_pad)
    own = {
        "attn": [(s.heads[0] * hv, s.heads[1] * hv) for s in p.slices],
        "proj": [(s.proj_cols[0] // p.d, s.proj_cols[1] // p.d) for s in p.slices],
        "ffn": [(s.fc_cols[0] // p.d, s.fc_cols[1] // p.d) for s in p.slices],
        "mlp": [(s.proj_cols[0] // p.d, s.proj_cols[1] // p.d) for s in p.slices],
        "logits": [(s.vocab_cols[0] // p.d, s.vocab_cols[1] // p.d) for s in p.slices],
    }
    total = {"attn": p.vec(p.attn_width), "proj": p.vec(p.n_embd), "ffn": p.vec(4 * p.n_embd),
             "mlp": p.vec(p.n_embd), "logits": p.vec(p.vocab_pad)}
    for c, prog in enumerate(comp.programs):
        for buf in own:
            have = set(range(own[buf][c][0], sum(own[buf][c])))
            received: list[int] = []
            for it in prog.items:  # one layer's (or the epilogue's) traffic for this buffer
                if it.op in ("send", "recv") and it.operands["v"].buf == buf:
                    v, n = it.operands["v"], it.operands["n"].imm
                    idx = list(range(v.off, v.off + n))
                    if it.op == "send":
                        assert set(idx) <= have | set(received), f"card {c} sends {buf} early"
                    else:
                        received += idx
            assert sorted(received) == sorted(set(received)), f"card {c}: {buf} received twice"
            assert have.isdisjoint(received)
            assert have | set(received) == set(range(total[buf])), f"card {c}: {buf} incomplete"


def test_send_recv_counts_balanced(comps) -> None:
    for (name, cards), comp in comps.items():
        if cards == 1:
            continue
        counts = [Counter() for _ in range(cards)]
        for c, prog in enumerate(comp.programs):
            for it in prog.items:
                if it.op in ("send", "recv"):
                    counts[c][it.op] += it.operands["n"].imm
        for c in range(cards):
            assert counts[c]["send"] == counts[(c + 1) % cards]["recv"], (name, cards, c)


def test_single_card_program_has_no_ring_at_all(comps) -> None:
    comp = comps[("gpt2-tiny", 1)]
    assert not any(it.op in ("send", "recv") for it in comp.programs[0].items)
    ins = comp.instructions[0]
    assert [i.op for i in ins].count("loop") == 1


# ---------------------------------------------------------------------------------------------
# The all-gather schedule is deadlock-free whatever the slice lengths


def run_ring(slices: list[tuple[int, int]], fifo: int, schedule=allgather_schedule
             ) -> list[set[int]]:
    """Run every card's :func:`allgather_schedule` on an abstract ring, a vector at a time (a
    send blocks while the next card's FIFO holds ``fifo`` vectors, a receive until a vector is
    there), and return the vectors each card holds at the end; fails on a deadlock. A step that
    is enabled stays enabled until taken, so one schedule decides for all (Kahn networks)."""
    n = len(slices)
    progs = [[(op, v) for op, start, count in schedule(slices, c, fifo)
              for v in range(start, start + count)] for c in range(n)]
    have = [set(range(s, s + k)) for s, k in slices]
    fifos: list[list[int]] = [[] for _ in range(n)]  # into card c
    pc = [0] * n
    while any(pc[c] < len(progs[c]) for c in range(n)):
        moved = False
        for c in range(n):
            while pc[c] < len(progs[c]):
                op, v = progs[c][pc[c]]
                if op == "send":
                    if len(fifos[(c + 1) % n]) >= fifo:
                        break
                    assert v in have[c], f"card {c} sends vector {v} it does not hold"
                    fifos[(c + 1) % n].append(v)
                else:
                    if not fifos[c]:
                        break
                    got = fifos[c].pop(0)
                    assert got == v, f"card {c} expected vector {v}, got {got}"
                    have[c].add(v)
                pc[c] += 1
                moved = True
        assert moved, "deadlock: " + ", ".join(
            f"card {c} at {progs[c][pc[c]]}" for c in range(n) if pc[c] < len(progs[c]))
    assert not any(fifos)
    return have


def slices_of(counts: list[int]) -> list[tuple[int, int]]:
    return [(sum(counts[:c]), k) for c, k in enumerate(counts)]


@pytest.mark.parametrize("counts,fifo", [
    ([7, 6, 6, 6], 64),  # gpt2-xl's heads on dfx-u280 (one vector per head)
    ([14, 12, 12, 12], 8),  # ... and on tiny (head_pad 64 = 8 vectors per head, 2 per chunk)
    ([2, 1, 1, 1], 1),
    ([1, 0, 0, 0], 8),  # gpt2-tiny's projection on dfx-u280: one card has every column
    ([0, 5, 0, 17], 4),
    ([33, 1, 9], 8),
    ([3, 3], 1),
    ([9, 8, 8, 8, 8], 2),
])
def test_allgather_schedule_completes_unequal_slices(counts: list[int], fifo: int) -> None:
    slices = slices_of(counts)
    for have in run_ring(slices, fifo):
        assert have == set(range(sum(counts)))
    for c in range(len(counts)):  # chunks within the FIFO; sends and receives balanced
        sched = allgather_schedule(slices, c, fifo)
        assert all(1 <= k <= fifo for _, _, k in sched)
        nxt = allgather_schedule(slices, (c + 1) % len(counts), fifo)
        assert ([(s, k) for op, s, k in sched if op == "send"]
                == [(s, k) for op, s, k in nxt if op == "recv"])


def test_allgather_schedule_random_slices() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(2, 7))
        counts = [int(x) for x in rng.integers(0, 40, n)]
        fifo = int(rng.integers(1, 10))
        for have in run_ring(slices_of(counts), fifo):
            assert have == set(range(sum(counts)))


def test_ring_checker_catches_a_send_first_schedule() -> None:
    """The checker has teeth: each step's whole slice sent before receiving deadlocks once a
    slice exceeds the FIFO (and every card is named with its blocked operation)."""
    def send_first(slices, card, fifo):
        n, out = len(slices), []
        for step in range(n - 1):
            for op, (start, count) in (("send", slices[(card - step) % n]),
                                       ("recv", slices[(card - step - 1) % n])):
                out += [(op, start + k, min(fifo, count - k)) for k in range(0, count, fifo)]
        return out

    run_ring(slices_of([2, 2, 2]), 2, send_first)  # slices within the FIFO: fine
    with pytest.raises(AssertionError, match=r"deadlock: card 0 at \('send'"):
        run_ring(slices_of([9, 8, 8, 8]), 2, send_first)
