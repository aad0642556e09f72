"""Memory planning (compiler/memplan.py): HBM/DDR regions of every card never overlap, are
aligned and fit; capacity errors name the card, memory, tensor and sizes; VRF allocation by
liveness never lets two live buffers share a vector (checked statically and by running real
compiled programs on the functional simulator)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.frontend.gpt2 import GPT2Config, GPT2Model
from dfx.compiler.frontend.hf import hf_config_dict, save_checkpoint
from dfx.compiler.frontend.presets import PRESETS, init_tensor
from dfx.compiler.memplan import CFG_FIELDS, CapacityError, Use, allocate_vrf, plan_card
from dfx.compiler.partition import partition
from dfx.isa.config import load_core
from dfx.isa.encoding import encode_program
from dfx.sim.functional import Appliance

U280 = load_core("dfx-u280")
TINY = load_core("tiny")


def preset_dims(name: str) -> dict[str, int]:
    c = PRESETS[name].config
    return {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head, "n_ctx": c.n_ctx,
            "vocab": c.vocab_size}


KV_REGION = re.compile(r"^[kv]\d+$")


def absolute_regions(mem, n_layer: int) -> list[tuple[str, int, int, str]]:
    """Every region instance as (space, start, end, name), per-layer regions once per layer."""
    out = []
    for r in mem.regions.values():
        if not r.per_layer:
            out.append((r.space, r.offset, r.offset + r.size, r.name))
            continue
        if r.space == "ddr":
            base, stride = mem.ddr_layer_base, mem.ddr_layer_stride
        elif KV_REGION.match(r.name):
            base, stride = mem.kv_base, mem.kv_layer_stride
        else:
            base, stride = mem.hbm_layer_base, mem.hbm_layer_stride
        assert r.offset + r.size <= stride, f"{r.name} spills out of its layer block"
        for layer in range(n_layer):
            start = base + layer * stride + r.offset
            out.append((r.space, start, start + r.size, f"{r.name}@{layer}"))
    return out


SMALL = {"n_layer": 3, "n_embd": 32, "n_head": 4, "n_ctx": 40, "vocab": 3000}
PLANS = [("gpt2-tiny", U280, 1), ("gpt2-tiny", U280, 4), ("gpt2-mini", U280, 2),
         ("gpt2", U280, 4), ("gpt2-xl-24h", U280, 4), ("gpt2-xl", U280, 5),
         ("gpt2-xl", U280, 4), ("small", TINY, 1), ("small", TINY, 3), ("small", TINY, 4)]


@pytest.mark.parametrize("name,core,cards", PLANS,
                         ids=[f"{n}-{c.name}-{k}" for n, c, k in PLANS])
def test_regions_disjoint_aligned_and_within_capacity(name: str, core, cards: int) -> None:
    dm = SMALL if name == "small" else preset_dims(name)
    p = partition(dm, cards, core)
    for card in range(cards):
        mem = plan_card(p, card, core)
        regions = absolute_regions(mem, dm["n_layer"])
        for space, cap, align in (("hbm", core.b.hbm.capacity_bytes, core.tile_bytes),
                                  ("ddr", core.b.ddr.capacity_bytes, 64)):
            spans = sorted((s, e, n) for sp, s, e, n in regions if sp == space)
            for (_s0, e0, n0), (s1, _e1, n1) in zip(spans, spans[1:], strict=False):
                assert e0 <= s1, f"card {card}: {space} regions {n0} and {n1} overlap"
            for s, e, n in spans:
                assert s % align == 0, f"card {card}: {space} region {n} at {s} not aligned"
                assert e <= cap
            used = mem.hbm_used if space == "hbm" else mem.ddr_used
            assert spans[-1][1] <= used <= cap
        assert mem.hbm_layer_stride % core.tile_bytes == 0
        assert mem.kv_layer_stride % core.tile_bytes == 0
        assert mem.kv_base >= mem.regions["lm_head"].offset + mem.regions["lm_head"].size
        assert mem.regions["cfg"].offset == 0 and mem.regions["cfg"].size == 4 * len(CFG_FIELDS)


def test_region_sizes_match_the_partition() -> None:
    p = partition(preset_dims("gpt2"), 4, U280)
    tile = U280.tile_bytes
    for card in range(4):
        s, mem = p.slices[card], plan_card(p, card, U280)
        loc = s.heads[1] * p.head_pad
        size = {n: r.size for n, r in mem.regions.items()}
        assert size["wq"] == size["wk"] == size["wv"] == (768 // 64) * (loc // 16) * tile
        assert size["wproj"] == (p.attn_width // 64) * (s.proj_cols[1] // 16) * tile
        assert size["wfc"] == (768 // 64) * (s.fc_cols[1] // 16) * tile
        assert size["wfc2"] == (4 * 768 // 64) * (s.proj_cols[1] // 16) * tile
        assert size["lm_head"] == (768 // 64) * (s.vocab_cols[1] // 16) * tile
        assert {n for n in size if KV_REGION.match(n)} == {f"{kv}{h}" for kv in "kv"
                                                          for h in range(3)}
        assert size["k0"] == size["v0"] == (p.head_pad // 64) * (p.ctx_pad // 16) * tile
        assert size["tokens"] == 4 * p.ctx_pad
        assert size["logits"] == 2 * p.vocab_pad * p.ctx_pad
        assert size["wte"] == 2 * 50257 * 768 and size["wpe"] == 2 * 1024 * 768
        assert size["bq"] == 2 * loc and size["bfc"] == 2 * s.fc_cols[1]


def test_uneven_heads_size_each_cards_regions() -> None:
    """gpt2-xl on 4 cards (7/6/6/6 heads): Q/K/V weights, biases and the KV cache (one k/v
    region pair per local head) are sized for the card's own heads."""
    p = partition(preset_dims("gpt2-xl"), 4, U280)
    tile = U280.tile_bytes
    for card, heads in enumerate((7, 6, 6, 6)):
        mem = plan_card(p, card, U280)
        size = {n: r.size for n, r in mem.regions.items()}
        assert size["wq"] == (1600 // 64) * (heads * 64 // 16) * tile
        assert size["bq"] == 2 * heads * 64
        assert {n for n in size if KV_REGION.match(n)} == {f"{kv}{h}" for kv in "kv"
                                                          for h in range(heads)}
        assert mem.kv_layer_stride == 2 * heads * (64 // 64) * (p.ctx_pad // 16) * tile


def test_hbm_overflow_names_card_tensor_and_sizes() -> None:
    """gpt2-xl (1.5B) on one card of the tiny board (4 MiB of HBM)."""
    with pytest.raises(CapacityError) as e:
        compile_model("gpt2-xl", cards=1, core="tiny", weights=False)
    msg = str(e.value)
    m = re.fullmatch(r"card 0: HBM overflow: the model needs ([\d,]+) bytes of HBM \(largest "
                     r"tensor '(\w+)' ([\d,]+) bytes\) but board tiny has ([\d,]+); "
                     r"use more cards", msg)
    assert m, msg
    need, tensor, size, cap = m.groups()
    assert tensor == "lm_head"  # 1600 x 50264 (padded vocabulary)
    assert int(size.replace(",", "")) == 1600 * 50264 * 2
    assert int(cap.replace(",", "")) == TINY.b.hbm.capacity_bytes
    assert int(need.replace(",", "")) > 48 * 1600 * 6400 * 2 * 2


def test_ddr_overflow_names_card_and_sizes() -> None:
    """A small model whose logits buffer (vocab x context) does not fit the tiny DDR."""
    p = partition({"n_layer": 1, "n_embd": 32, "n_head": 2, "n_ctx": 1024, "vocab": 50257},
                  2, TINY)
    with pytest.raises(CapacityError,
                       match=r"^card 0: DDR overflow: embeddings, logits and parameters need "
                             r"[\d,]+ bytes but board tiny has 16,777,216$"):
        plan_card(p, 0, TINY)


# ---------------------------------------------------------------------------------------------
# VRF allocation


def live_ranges(comp, card: int) -> dict[str, tuple[int, int]]:
    """Independent live ranges: first..last use, widened to a whole loop when the buffer is
    read in the loop before being written there or used both inside and outside it."""
    prog = comp.programs[card]
    uses: dict[str, list[Use]] = {}
    for u in prog.uses():
        uses.setdefault(u.buf, []).append(u)
    rng = {b: (min(u.pc for u in us), max(u.pc for u in us)) for b, us in uses.items()}
    for _ in range(4):
        for b, us in uses.items():
            lo, hi = rng[b]
            for ls, le in prog.loops:
                inside = sorted((u.pc, not u.write) for u in us if ls <= u.pc <= le)
                if inside and (lo < ls or hi > le or inside[0][1]):
                    lo, hi = min(lo, ls), max(hi, le)
            rng[b] = (lo, hi)
    return rng


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # the tiny core cannot hold 50257 logits in its VRF: a 2000-token vocabulary there
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_ctx=64, vocab_size=2000, name="v2000")
    model = GPT2Model.from_loader(
        cfg, lambda n: init_tensor(cfg, n, seed=3, scale=8.0, bias_std=0.1))
    ckpt = save_checkpoint(model, tmp_path_factory.mktemp("memplan") / "v2000")
    return {
        "gpt2-tiny/2": compile_model("gpt2-tiny", cards=2, scale=8),
        "gpt2-mini/4": compile_model("gpt2-mini", cards=4, weights=False),
        "gpt2/1": compile_model("gpt2", cards=1, weights=False),
        "v2000/tiny/4": compile_model(str(ckpt), cards=4, core="tiny"),
    }


@pytest.mark.parametrize("key", ["gpt2-tiny/2", "gpt2-mini/4", "gpt2/1", "v2000/tiny/4"])
def test_vrf_live_buffers_never_overlap(compiled, key: str) -> None:
    comp = compiled[key]
    cap = comp.binary.core.buffers.vrf_vectors
    for card, prog in enumerate(comp.programs):
        addr, rng = comp.vrf[card], live_ranges(comp, card)
        assert set(addr) == set(rng) <= set(prog.buffers)
        for b, a in addr.items():
            assert 0 <= a and a + prog.buffers[b] <= cap
        names = sorted(addr)
        for i, b1 in enumerate(names):
            for b2 in names[i + 1:]:
                share = (addr[b1] < addr[b2] + prog.buffers[b2]
                         and addr[b2] < addr[b1] + prog.buffers[b1])
                live = not (rng[b1][1] < rng[b2][0] or rng[b2][1] < rng[b1][0])
                assert not (share and live), f"card {card}: {b1} and {b2} live and overlapping"


def clobbers(comp, binary, vrf: list[dict[str, int]], tokens: list[int]) -> list[str]:
    """Run ``binary`` and track the owner of every VRF vector: every read of buffer B must find
    vectors last written as part of B. Returns the violations."""
    app = Appliance(binary)
    errors: list[str] = []
    for card in app.cards:
        prog, addr = comp.programs[card.index], vrf[card.index]
        owner = np.full(card.n_vrf, "", dtype=object)

        def buffer_at(pc: int, base: int, write: bool, prog=prog, addr=addr) -> str:
            item = prog.items[pc]
            for name, v in item.operands.items():
                is_write = name in ("y", "dst") or item.op == "recv"
                if (hasattr(v, "buf") and is_write == write
                        and addr[v.buf] <= base < addr[v.buf] + prog.buffers[v.buf]):
                    return v.buf
            raise AssertionError(f"pc {pc}: no operand at v[{base}]")

        def vread(base: int, n: int, card=card, real=card.vread, owner=owner, at=buffer_at):
            buf = at(card.pc, base, False)
            bad = [a for a in range(base, base + n) if owner[a] != buf]
            if bad:
                errors.append(f"card {card.index} pc {card.pc}: reads {buf} at v[{bad[0]}], "
                              f"last written by {owner[bad[0]] or 'nobody'}")
            return real(base, n)

        def vwrite(base: int, data, card=card, real=card.vwrite, owner=owner, at=buffer_at):
            owner[base:base + data.shape[0]] = at(card.pc, base, True)
            return real(base, data)

        card.vread, card.vwrite = vread, vwrite
    app.generate(tokens, max_new_tokens=3)
    return errors


@pytest.mark.parametrize("key", ["gpt2-tiny/2", "v2000/tiny/4"])
def test_vrf_allocation_holds_when_run(compiled, key: str) -> None:
    comp = compiled[key]
    assert clobbers(comp, comp.binary, comp.vrf, [496, 995, 11, 314]) == []


def test_vrf_run_check_catches_a_bad_allocation(compiled) -> None:
    """The check above has teeth: put LayerNorm's temporary on top of the residual x."""
    comp = compiled["gpt2-tiny/2"]
    bad = [dict(v) for v in comp.vrf]
    bad[0]["tmp"] = bad[0]["x"]
    ins, _ = comp.programs[0].resolve(bad[0], comp.memory[0].addr)
    cards = list(comp.binary.cards)
    cards[0] = dataclasses.replace(cards[0], program=encode_program(ins))
    binary = dataclasses.replace(comp.binary, cards=cards)
    errors = clobbers(comp, binary, bad, [496, 995, 11, 314])
    assert errors and "reads x" in errors[0] and "last written by tmp" in errors[0]


def test_allocate_vrf_reuses_dead_space_and_keeps_loop_carried_buffers() -> None:
    uses = [Use("a", 0, True), Use("a", 2, False),  # a: 0..2
            Use("b", 3, True), Use("b", 4, False),  # b: after a is dead -> reuses a's space
            Use("c", 5, False), Use("c", 7, True),  # c: read before written in loop 5..8
            Use("d", 6, True), Use("d", 6, False)]  # d: inside the loop only
    addr = allocate_vrf({"a": 4, "b": 4, "c": 2, "d": 3}, uses, [(5, 8)], 16, 0)
    assert addr["a"] == addr["b"] == 0
    # c is live for the whole loop, so d (live at pc 6) may not share its vectors
    assert not (addr["c"] < addr["d"] + 3 and addr["d"] < addr["c"] + 2)


def test_vrf_overflow_names_buffer_and_sizes() -> None:
    uses = [Use("x", 0, True), Use("y", 1, True), Use("x", 2, False), Use("y", 2, False)]
    with pytest.raises(CapacityError, match=r"^card 3: VRF overflow: cannot place 'y' \(9 "
                                            r"vectors\) at instruction 1: 8 of 16 vectors are "
                                            r"live there$"):
        allocate_vrf({"x": 8, "y": 9}, uses, [], 16, 3)


def test_vrf_overflow_from_a_real_model(tmp_path) -> None:
    """The real 50257-token vocabulary needs 6283 logit vectors of 8 on the tiny core: more
    than its 4096-vector VRF (HBM and DDR do fit this 32-wide model)."""
    cfg = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_ctx=32, vocab_size=50257, name="wide")
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict(cfg)))
    with pytest.raises(CapacityError, match=r"^card 0: VRF overflow: cannot place 'logits' "
                                            r"\(6283 vectors\) at instruction \d+: \d+ of 4096 "
                                            r"vectors are live there$"):
        compile_model(str(tmp_path), cards=2, core="tiny", weights=False)
