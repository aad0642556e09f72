#!/usr/bin/env python3
"""Modelled generation latency of GPT-2 1.5B (gpt2-xl-24h) on 4 cards with LUT-GEMM weights.

    .venv/bin/python bench/lutgemm_latency.py                  # everything (~5 min of CPU)
    .venv/bin/python bench/lutgemm_latency.py --quick          # FP16 and q=3,g=128 only
    .venv/bin/python bench/lutgemm_latency.py --json out.json  # also every report as JSON
    .venv/bin/python bench/lutgemm_latency.py --sizes          # only the unit-size section
    .venv/bin/python bench/lutgemm_latency.py --sizes 512:256,256:64 --budget-json budget.json

For FP16 and BCQ q = 2, 3, 4 x g = 32, 64, 128, row (LM head FP16, the default exclude; plus
q=3,g=128 with the LM head quantized) it compiles a timing-only binary
(``compile_model("gpt2-xl-24h", cards=4, weights=False, quant=QuantSpec.parse(spec))``, what
``dfx compile gpt2-xl-24h --cards 4 --no-weights --quant SPEC`` writes) and times a request on
the timing model (``dfx.sim.timing.perf``, what ``dfx perf`` prints; docs/timing.md, "LUT-GEMM
unit"). No weights are quantized: timing does not depend on their values.

Sections (markdown): the grid (ms per generated / prompt token, weight bytes per card, what
bounds the lutmv instructions); where card 0's time goes per generated token, FP16 vs
q=3,g=128; the anatomy of one decoder layer for both from a unit trace; what-if cores that
change only the LUT unit's scale stage (hypothetical, to show what bounds the result); unit
size: q=3,g=128 with fewer lanes and scalers, and the unit's LUT estimated from its per-leaf
figures (``--budget-json``, or those in docs/BENCHMARKS.md), no Yosys run.
The numbers are the model's, not hardware measurements.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from dfx.host import sysinfo
from dfx.host.sysinfo import cpu_model, loadavg

MODEL, CARDS = "gpt2-xl-24h", 4
GOAL_MS = 1.0  # ms per generated token at q=3, g=128
FP16 = "fp16"
REF = "bcq:q=3,g=128"
GRID = [f"bcq:q={q},g={g}" for q in (2, 3, 4) for g in (32, 64, 128, "row")]
LM_Q = "bcq:q=3,g=128,exclude=none"
CATS = ("matrix", "attention", "vector", "ring_sync", "dma_stall", "idle")
SEGMENTS = ("all-gather fc2 tail (prev. layer)", "residual 2 + LayerNorm 1",
            "Q/K/V (3, chained)", "attention: Q·Kᵀ, softmax, S·V", "all-gather heads",
            "c_proj", "all-gather c_proj tail", "residual 1 + LayerNorm 2", "fc1 + GELU",
            "all-gather fc1 tail", "fc2")
MATRIX_SEGMENTS = {2: ("attn.c_attn q", "attn.c_attn k", "attn.c_attn v"),
                   5: ("attn.c_proj",), 8: ("mlp.c_fc + gelu",), 10: ("mlp.c_proj",)}


# --------------------------------------------------------------------------- environment


def machine() -> str:
    cpu = cpu_model()
    u = platform.uname()
    return (f"{u.system} {u.release} {u.machine}, {cpu}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}")


def git_rev() -> str:
    return sysinfo.git_rev("compiler", "sim", "isa", "boards")


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------- runs


class Bench:
    """Timing-only binaries (kept in memory, per spec and core variant) and timed runs."""

    def __init__(self, prompt: int, gen: int) -> None:
        self.prompt, self.gen = prompt, gen
        self.binaries: dict[tuple[str, str], Any] = {}
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.sim_wall = self.sim_cpu = 0.0

    def binary(self, spec: str, variant: str = "") -> Any:
        key = (spec, variant)
        if key not in self.binaries:
            from dfx.compiler.driver import compile_model
            from dfx.compiler.quant import QuantSpec
            from dfx.isa.config import load_core

            core = load_core("dfx-u280")
            if variant:  # a hypothetical core: the compiler packs the streams for it
                core = variant_core(core, variant)
            quant = None if spec == FP16 else QuantSpec.parse(spec)
            self.binaries[key] = compile_model(MODEL, cards=CARDS, core=core, weights=False,
                                               quant=quant).binary
        return self.binaries[key]

    def run(self, spec: str, variant: str = "") -> dict[str, Any]:
        key = (spec, variant)
        if key not in self.runs:
            from dfx.sim.timing import perf

            b = self.binary(spec, variant)
            w0, c0 = time.perf_counter(), time.process_time()
            rep = perf(b, self.prompt, self.gen).to_dict()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            self.sim_wall += wall
            self.sim_cpu += cpu
            rep["bench"] = {"wall_s": wall, "cpu_s": cpu, "load": loadavg()}
            self.runs[key] = rep
            print(f"  [{spec}{' ' + variant if variant else ''}: {rep['gen_ms_per_token']:.3f} "
                  f"ms/token; simulated in {wall:.1f} s wall]", file=sys.stderr, flush=True)
        return self.runs[key]


def _lut_variant(**changes: int) -> Any:
    def make(core: Any) -> Any:
        return dataclasses.replace(core, lutgemm=dataclasses.replace(core.lutgemm, **changes))
    return make


# Hypothetical cores (what-if): only the LUT unit changes.
VARIANTS: dict[str, tuple[str, Any]] = {
    "keys16": ("keys 16 (lane word of 64 inputs: the lanes take twice the bytes per cycle)",
               _lut_variant(keys=16)),
}


def size_variant(lanes: int, scalers: int) -> str:
    """The variant name of a unit with ``lanes`` lanes and ``scalers`` scalers."""
    return f"lanes={lanes},scalers={scalers}"


def size_core(core: Any, lanes: int, scalers: int) -> Any:
    """``core`` with only ``lutgemm.lanes`` and ``lutgemm.scalers`` changed."""
    return _lut_variant(lanes=lanes, scalers=scalers)(core)


def variant_core(core: Any, variant: str) -> Any:
    """The hypothetical core of a what-if variant or of a unit size (:func:`size_variant`)."""
    if variant in VARIANTS:
        return VARIANTS[variant][1](core)
    m = re.fullmatch(r"lanes=(\d+),scalers=(\d+)", variant)
    if m is None:
        raise ValueError(f"unknown core variant {variant!r}")
    return size_core(core, int(m[1]), int(m[2]))


def passes(rep: dict[str, Any]) -> int:
    return rep["prompt_len"] + rep["gen_len"] - 1


def weights_mb(rep: dict[str, Any]) -> float:
    """Busiest card's weight bytes (FP16 tiles + lutmv streams, no K/V) per token pass, MB."""
    return rep["roofline"]["weight_bytes_per_card_without_kv"] / passes(rep) / 1e6


def floor_ms(rep: dict[str, Any]) -> float:
    """Those bytes at the DMA's 409.6 GB/s (one FP16 tile per cycle)."""
    return rep["roofline"]["weight_bytes_per_card_without_kv"] / passes(rep) / (
        rep["roofline"]["dma_peak_gbs"] * 1e9) * 1e3


def bits_per_weight(spec: str) -> str:
    if spec == FP16:
        return "16"
    q = int(spec.split("q=")[1].split(",")[0])
    g = spec.split("g=")[1].split(",")[0]
    if g == "row":
        return f"≈{q}"
    return f"{q + 16 * (q + 1) / int(g):.3g}"


def bound_text(rep: dict[str, Any]) -> str:
    """Card 0's lutmv spans by the largest of HBM / lanes / scalers, as shares."""
    lu = rep["units"][0]["lut"]
    tot = lu["hbm_bound_ms"] + lu["lane_bound_ms"] + lu["scaler_bound_ms"]
    if not tot:
        return "—"
    return " / ".join(f"{100 * lu[k] / tot:.0f}" for k in ("hbm_bound_ms", "lane_bound_ms",
                                                            "scaler_bound_ms"))


# --------------------------------------------------------------------------- sections


def section_grid(b: Bench, specs: list[str]) -> tuple[str, list[dict[str, Any]]]:
    fp = b.run(FP16)
    rows, data = [], []
    for spec in specs:
        r = b.run(spec)
        lu = r["units"][0]["lut"]
        gen, prompt = r["gen_ms_per_token"], r["prompt_ms_per_token"]
        stored = max(b.binary(spec).model.get("weight_bytes") or [0])
        q_lm = "quantized" if "exclude=none" in spec else "FP16"
        rows.append([
            f"`{spec}`" if spec != FP16 else "FP16", q_lm if spec != FP16 else "FP16",
            bits_per_weight(spec), f"{stored / 1e6:,.1f}", f"{floor_ms(r):.3f}",
            f"**{gen:.3f}**", f"{prompt:.3f}", f"{1000 / gen:,.0f}",
            f"{fp['gen_ms_per_token'] / gen:.2f}×",
            f"{100 * lu['lane_utilisation']:.0f}%" if lu["instructions"] else "—",
            bound_text(r)])
        data.append({"spec": spec, "gen_ms_per_token": gen, "prompt_ms_per_token": prompt,
                     "weight_mb_per_card_per_token": weights_mb(r), "floor_ms": floor_ms(r),
                     "weight_bytes_per_card": stored, "lut": lu})
    head = ["config", "LM head", "bits / weight", "weight MB / card",
            "floor ms (weights @ 409.6 GB/s)", "ms / gen. token", "ms / prompt token",
            "tokens/s", "vs FP16", "LUT lanes busy", "lutmv bound HBM / lanes / scalers %"]
    rep = b.run(REF)
    lu = rep["units"][0]["lut"]
    met = rep["gen_ms_per_token"] <= GOAL_MS
    text = [f"### 1. GPT-2 1.5B ({MODEL}, 48 layers) on {CARDS} cards, {b.prompt}:{b.gen}", "",
            "bits / weight = q + 16·(q+1)/g (FP16 alpha and offset per group; row: one group "
            "per row). Weight MB / card: the compiler's weight bytes of the busiest card (FP16 "
            "tiles, lutmv streams, LM head), all read once per token pass; floor: the bytes "
            "the card streams per pass at 409.6 GB/s. \"lutmv bound\": card 0's lutmv spans "
            "(first table build to last result) by the largest of their three stream times: "
            "HBM (stream_bytes through the pseudo-channels), lanes (ng·gs·q·⌈n/lanes⌉), "
            "scalers (ng·(q+1)·⌈n/scalers⌉).", "",
            table(head, rows), "",
            f"**Goal ≤ {GOAL_MS:.1f} ms per generated token at q=3, g=128: "
            f"{'met' if met else 'not met'}** ({rep['gen_ms_per_token']:.3f} ms). Card 0 "
            f"per generated token: lutmv spans {lu['scaler_bound_ms'] / passes(rep):.3f} ms "
            f"scaler-bound, {lu['hbm_bound_ms'] / passes(rep):.3f} ms HBM-bound, "
            f"{lu['lane_bound_ms'] / passes(rep):.3f} ms lane-bound; summed stream times HBM "
            f"{lu['hbm_ms'] / passes(rep):.3f}, lanes {lu['lane_ms'] / passes(rep):.3f}, "
            f"scalers {lu['scaler_ms'] / passes(rep):.3f} ms."]
    return "\n".join(text), data


def section_breakdown(b: Bench, specs: list[str]) -> tuple[str, dict[str, Any]]:
    rows, data = [], {}
    for spec in specs:
        r = b.run(spec)
        row = r["breakdown"]["generation_per_token"]
        tot = sum(row[c] for c in CATS)
        rows.append([spec if spec != FP16 else "FP16"]
                    + [f"{row[c]:.3f} ({100 * row[c] / tot:.0f}%)" for c in CATS]
                    + [f"{tot:.3f}"])
        data[spec] = row
    text = ["### 2. Where card 0's time goes, ms per generated token", "",
            "Each cycle counted once, for the first class active in it: matrix (MPU or LUT "
            "unit streaming or draining) > attention > vector > ring sync > DMA stall > idle.",
            "", table(["config", *CATS, "sum"], rows)]
    return "\n".join(text), data


def anatomy(b: Bench, spec: str, pos: int) -> dict[str, Any]:
    """Mean cycles per segment of one decoder layer of card 0's pass at position pos - 1
    (unit trace; memo off for the traced tokens), and the lutmv stream times per segment."""
    from dfx.isa.encoding import decode_program
    from dfx.isa.golden.lutgemm import stream_bytes
    from dfx.sim.timing import derive, simulate

    binary = b.binary(spec)
    nl = int(binary.model["n_layer"])
    w0, c0 = time.perf_counter(), time.process_time()
    res = simulate(binary, pos, 1, trace_tokens=pos)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    b.sim_wall += wall
    b.sim_cpu += cpu
    print(f"  [traced {spec} pass {pos}: {wall:.1f} s wall]", file=sys.stderr, flush=True)
    p = derive(binary.core)
    prog = decode_program(bytes(binary.cards[0].program))
    tt = res.token_times[0]
    t_start, t_end = (tt[-2] if len(tt) > 1 else 0), tt[-1]
    ann = res.annotations[0]
    ev = [(u, op, s, en, ann(pc) or "", pc) for u, op, s, en, pc in res.trace[0] if s >= t_start]
    res = None

    def mat(tag: str) -> list[tuple[int, int, int]]:
        return [(s, en, pc) for u, op, s, en, a, pc in ev if u in (0, 5) and a.endswith(tag)]

    a_v, a_k = mat("attn.c_attn v"), mat("attn.c_attn k")
    cproj, fc1, fc2 = mat("attn.c_proj"), mat("mlp.c_fc + gelu"), mat("mlp.c_proj")
    att = [(s, en) for u, op, s, en, a, pc in ev if u == 0 and "attention head" in a]
    lm = mat("lm_head")
    recv_c = [(s, en) for u, op, s, en, a, pc in ev
              if u == 4 and a.endswith("allgather attn.c_proj")]
    recv_f = [(s, en) for u, op, s, en, a, pc in ev
              if u == 4 and a.endswith("allgather mlp.c_proj")]
    if not (len(a_v) == len(a_k) == len(cproj) == len(fc1) == len(fc2) == nl):
        raise RuntimeError(f"anatomy {spec}: unexpected trace ({len(a_v)} layers, {nl} "
                           "expected)")
    starts = sorted(x[0] for x in a_v + a_k + mat("attn.c_attn q"))
    segs: list[list[int]] = []
    prev_h = prev_g = t_start
    for i in range(nl):
        a = min(starts[3 * i: 3 * i + 3])
        (c, d, _), (ef, ff, _), (g, h, _) = cproj[i], fc1[i], fc2[i]
        att_i = [x for x in att if a <= x[0] < c]
        bq, cm = min(x[0] for x in att_i), max(x[1] for x in att_i)
        p1 = max([en for s, en in recv_f if prev_g <= s < a] or [prev_h])
        dr = max([en for s, en in recv_c if c <= s < ef] or [d])
        pts = [prev_h, p1, a, bq, cm, c, d, dr, ef, ff, g, h]
        for j in range(1, len(pts)):
            pts[j] = max(pts[j], pts[j - 1])
        for j in (1, 7):
            pts[j] = min(pts[j], pts[j + 1])
        segs.append([pts[j + 1] - pts[j] for j in range(len(pts) - 1)])
        prev_h, prev_g = h, g
    mid = segs[1:-1] if nl > 2 else segs
    mean = [sum(s[j] for s in mid) / len(mid) for j in range(len(SEGMENTS))]
    # per matrix segment of one layer (layer 1): weight bytes and, for lutmv, stream times
    lay = {2: [x[2] for x in (a_v[1], a_k[1], mat("attn.c_attn q")[1])], 5: [cproj[1][2]],
           8: [fc1[1][2]], 10: [fc2[1][2]]}
    mats: dict[int, dict[str, int]] = {}
    for j, pcs in lay.items():
        acc = {"bytes": 0, "hbm": 0, "lanes": 0, "scalers": 0, "instructions": len(pcs),
               "groups": 0, "rows": 0}
        for pc in pcs:
            ins = prog[pc]
            if ins.op == "lutmv":
                lp = p.lut
                n, ng, gs, q = ins.n.imm, ins.ng.imm, ins.gs, ins.q
                sb = stream_bytes(n, ng, gs, q, lp.slice)
                acc["bytes"] += sb
                acc["hbm"] += -(-sb // (p.hbm.n * int(p.hbm.bytes_per_cycle)))
                acc["lanes"] += ng * lp.lane_cycles(n, gs, q)
                acc["scalers"] += ng * lp.scaler_cycles(n, q)
                acc["groups"] += ng
                acc["rows"] = max(acc["rows"], n)
            else:
                kt, nt = ins.kt.imm, ins.nt.imm
                acc["bytes"] += kt * nt * p.tile_bytes
                acc["hbm"] += kt * nt
        mats[j] = acc
    lm_span = (lm[-1][1] - lm[0][0]) if lm else 0
    return {"spec": spec, "position": pos - 1, "mean": mean, "matrices": mats,
            "mean_layers": list(range(len(mid))), "n_layer": nl,
            "layer": sum(mean), "pass": t_end - t_start, "lm_head": lm_span,
            "head": a_v[0][0] - t_start, "tail": t_end - prev_h, "clock_mhz": p.clock_mhz,
            "sim_wall_s": wall}


def section_anatomy(b: Bench, pos: int) -> tuple[str, list[dict[str, Any]]]:
    fp, qq = anatomy(b, FP16, pos), anatomy(b, REF, pos)

    def mcell(a: dict[str, Any], j: int) -> str:
        m = a["matrices"].get(j)
        if not m:
            return ""
        if not m["lanes"]:
            return f"{m['hbm']:,} tiles"
        return f"HBM {m['hbm']:,} / lanes {m['lanes']:,} / scalers {m['scalers']:,}"

    rows = []
    for j, name in enumerate(SEGMENTS):
        rows.append([name, f"{fp['mean'][j]:,.0f}", mcell(fp, j), f"{qq['mean'][j]:,.0f}",
                     mcell(qq, j), f"{qq['mean'][j] - fp['mean'][j]:+,.0f}"])
    rows.append(["**layer**", f"**{fp['layer']:,.0f}**", "", f"**{qq['layer']:,.0f}**", "",
                 f"**{qq['layer'] - fp['layer']:+,.0f}**"])
    clk = fp["clock_mhz"]
    mat_q = sum(qq["mean"][j] for j in MATRIX_SEGMENTS)
    other_q = qq["layer"] - mat_q
    text = [f"### 3. Anatomy of one decoder layer, card 0, pass of position {pos - 1} (cycles "
            f"at {clk:g} MHz)", "",
            f"Mean over layers 2–{len(qq['mean_layers']) + 1} (segments between unit events of "
            "the trace, as in "
            "docs/BENCHMARKS.md). Matrix cells: the segment's instructions on this card — FP16: "
            "weight tiles (1 per cycle = 409.6 GB/s); lutmv: summed stream times in cycles "
            "(the model charges the largest per instruction, plus fill and drain).", "",
            table(["segment", "FP16", "FP16 weights", REF, f"{REF} lutmv", "Δ"], rows), "",
            f"Whole pass: FP16 {fp['pass']:,} cycles = {fp['pass'] / clk / 1000:.3f} ms (LM "
            f"head {fp['lm_head']:,}); {REF} {qq['pass']:,} cycles = "
            f"{qq['pass'] / clk / 1000:.3f} ms (LM head {qq['lm_head']:,}). In the quantized "
            f"layer the four matrix segments take {mat_q:,.0f} cycles and everything else "
            f"(LayerNorms, residuals, attention, all-gathers) {other_q:,.0f}: "
            f"{qq['n_layer'] * other_q / clk / 1000:.3f} ms per token over {qq['n_layer']} "
            "layers."]
    return "\n".join(text), [fp, qq]


def non_matrix_ms(a: dict[str, Any]) -> float:
    """ms per pass of card 0 outside the weight matrices: the non-matrix segments of every
    layer (layer mean), the embedding before the first layer and the tail without the LM
    head."""
    other = a["layer"] - sum(a["mean"][j] for j in MATRIX_SEGMENTS)
    cyc = a["n_layer"] * other + a["head"] + a["tail"] - a["lm_head"]
    return cyc / a["clock_mhz"] / 1000


def section_whatif(b: Bench) -> tuple[str, list[dict[str, Any]]]:
    rows, data = [], []
    base = b.run(REF)
    rows.append([f"`{REF}` on dfx-u280 (as configured)", f"{base['gen_ms_per_token']:.3f}",
                 bound_text(base)])
    for spec in (REF, LM_Q):
        for v, (desc, _) in VARIANTS.items():
            r = b.run(spec, v)
            rows.append([f"`{spec}`, {desc}", f"{r['gen_ms_per_token']:.3f}", bound_text(r)])
            data.append({"spec": spec, "variant": v, "description": desc,
                         "gen_ms_per_token": r["gen_ms_per_token"],
                         "prompt_ms_per_token": r["prompt_ms_per_token"]})
    text = ["### 4. What-if: hypothetical LUT units", "",
            "Not the configured unit: the same specs compiled for (streams packed for) and "
            "timed on dfx-u280 with one core.lutgemm parameter changed, to show what bounds "
            "the result.", "",
            table(["binary and core", "ms / gen. token", "lutmv bound HBM / lanes / scalers %"],
                  rows)]
    return "\n".join(text), data


def section_verdict(b: Bench, anat: list[dict[str, Any]] | None) -> str:
    r = b.run(REF)
    gen = r["gen_ms_per_token"]
    lu = r["units"][0]["lut"]
    n = passes(r)
    from dfx.sim.timing import derive

    lp = derive(b.binary(REF).core).lut
    assert lp is not None
    lines = [f"### 5. Verdict: ≤ {GOAL_MS:.1f} ms per generated token at q=3, g=128", "",
             f"* **{'Met' if gen <= GOAL_MS else 'Not met'}: {gen:.3f} ms** modelled "
             f"(FP16 {b.run(FP16)['gen_ms_per_token']:.3f} ms).",
             f"* Card 0's lutmv time per pass: {lu['lane_bound_ms'] / n:.3f} ms of spans "
             f"bound by the lanes, {lu['hbm_bound_ms'] / n:.3f} by HBM, "
             f"{lu['scaler_bound_ms'] / n:.3f} by the scale stage. The lanes are "
             f"{100 * lu.get('lane_fill', 0):.0f} % filled: {lp.lanes} lanes take one "
             f"{lp.slice}-bit lane word of one row each per cycle, so a matrix with fewer rows "
             "per card than lanes (or not a multiple of them) pays a whole lane cycle per "
             "(slice, plane) for fewer bytes than the HBM delivers in it."]
    if anat:
        qq = anat[1]
        fc2 = qq["matrices"][10]
        if fc2["groups"]:
            lines.append(
                f"* fc2 on this card: {fc2['rows']} rows, {fc2['groups']} groups: HBM "
                f"{fc2['hbm']:,}, lanes {fc2['lanes']:,}, scalers {fc2['scalers']:,} cycles "
                f"({fc2['hbm'] / fc2['groups']:.1f} cycles of HBM per group).")
        nm = non_matrix_ms(qq)
        mean, clk, nl = qq["mean"], qq["clock_mhz"], qq["n_layer"]
        parts = {"LayerNorms + residuals": mean[1] + mean[7], "attention": mean[3],
                 "all-gathers": mean[0] + mean[4] + mean[6] + mean[9]}
        gap_c = (gen - GOAL_MS) * clk * 1000 / nl
        need = (f"The goal needs {gen - GOAL_MS:.3f} ms less per token, {gap_c:,.0f} cycles "
                "per layer." if gen > GOAL_MS else
                f"Margin to the goal: {GOAL_MS - gen:.3f} ms per token, {-gap_c:,.0f} cycles per "
                "layer.")
        lines.append(
            f"* {need} The quantized layer's non-matrix segments: "
            + ", ".join(f"{k} {v:,.0f}" for k, v in parts.items())
            + f" cycles (of {qq['layer']:,.0f}); its four matrix segments "
            f"{sum(mean[j] for j in MATRIX_SEGMENTS):,.0f}.")
        lines.append(
            f"* Outside the weight matrices card 0 spends {nm:.3f} ms per pass (LayerNorms, "
            "residuals, attention, all-gathers, embedding, ln_f, arg-max); with the weights at "
            f"the 409.6 GB/s floor ({floor_ms(r):.3f} ms incl. the FP16 LM head) that is "
            f"{nm + floor_ms(r):.3f} ms even if every lutmv ran at its stream floor and nothing "
            "else changed.")
    for v, (desc, _) in VARIANTS.items():
        if (REF, v) in b.runs:
            x = b.runs[(REF, v)]
            lines.append(f"* What-if {desc}: {x['gen_ms_per_token']:.3f} ms (lutmv bound HBM / "
                         f"lanes / scalers {bound_text(x)} %).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- unit size

#: (lanes, scalers) of the unit-size section (``--sizes``); sizes the configuration loader or
#: the RTL refuse are listed as skipped.
SIZES = [(512, 256), (512, 128), (256, 128), (256, 64), (128, 64), (128, 32)]
#: Per-leaf LUT of the dfx-u280 unit when no ``--budget-json`` is given: the figures of
#: docs/BENCHMARKS.md, printed with the results together with this source.
DOC_LUT: dict[str, Any] = {
    "source": ("docs/BENCHMARKS.md, \"Whole-core resource budget\", re-run of 2026-12-07 "
               "21:44–21:54 UTC: LUT-GEMM row 1,077,700 LUT (leaf_lutconvertpair_l4 x 128, "
               "leaf_lutlane_l1 x 512, leaf_lutscaler_l7 x 256); per lane 1,391 LUT, per "
               "scaler with half a converter 1,143 (the list above that table)"),
    "lanes": 512, "scalers": 256, "total": 1_077_700, "lane": 1_391, "scaler": 1_143,
}
LEAF_KINDS = ("lutlane", "lutscaler", "lutconvertpair")


def unit_lut_source(budget_json: Path | None) -> dict[str, Any]:
    """LUT per lane, per scaler (with half the FP32 converter a pair of scalers shares) and of
    the unit's remaining logic (its total minus lanes and scalers): from the ``lutgemm`` row of
    a ``bench/resources.py --budget --json`` file (its leaf parts ``leaf_lutlane_*``,
    ``leaf_lutscaler_*``, ``leaf_lutconvertpair_*``), or the documented figures
    (:data:`DOC_LUT`)."""
    if budget_json is None:
        d = DOC_LUT
        top = d["total"] - d["lanes"] * d["lane"] - d["scalers"] * d["scaler"]
        return {"source": d["source"], "lanes": d["lanes"], "scalers": d["scalers"],
                "total": d["total"], "lane": d["lane"], "scaler": d["scaler"], "top": top}
    data = json.loads(budget_json.read_text())
    row = next((r for r in data.get("rows", []) if r.get("name") == "lutgemm"), None)
    if row is None or "lut" not in row or row.get("status") != "ok":
        raise SystemExit(f"{budget_json}: no complete lutgemm row "
                         f"({row.get('status') if row else 'none'})")
    acc = {k: [0.0, 0.0] for k in LEAF_KINDS}  # kind -> [count, LUT of all of them]
    for p in row.get("parts", []):
        m = re.fullmatch(r"leaf_(lut[a-z]+)_l\d+", str(p.get("label")))
        if p.get("leaf") and "failed" not in p and m and m[1] in acc:
            acc[m[1]][0] += p["count"]
            acc[m[1]][1] += p["count"] * p["lut"]
    n_l, n_s, n_c = (acc[k][0] for k in LEAF_KINDS)
    if not n_l or not n_s or 2 * n_c != n_s:
        raise SystemExit(f"{budget_json}: the lutgemm row's leaves are not lanes, scalers and "
                         f"one converter per two scalers: {acc}")
    lane = acc["lutlane"][1] / n_l
    scaler = (acc["lutscaler"][1] + acc["lutconvertpair"][1]) / n_s
    top = row["lut"] - sum(v[1] for v in acc.values())
    return {"source": (f"{budget_json}, lutgemm row of core {data.get('core')} "
                       f"({row['lut']:,.0f} LUT; {row.get('method', '')})"),
            "lanes": int(n_l), "scalers": int(n_s), "total": row["lut"], "lane": lane,
            "scaler": scaler, "top": top}


def unit_lut(src: dict[str, Any], lanes: int, scalers: int) -> float:
    """LUT of a unit of ``lanes`` lanes and ``scalers`` scalers: lanes x per-lane LUT +
    scalers x per-scaler LUT (half a converter included) + the remaining logic as measured
    (held fixed)."""
    return lanes * src["lane"] + scalers * src["scaler"] + src["top"]


def size_refused(core: Any, lanes: int, scalers: int) -> str | None:
    """Why the configuration loader or the RTL refuses ``core`` with ``lanes``/``scalers``
    (None: both accept it). The loader's checks run on the changed core's plain data
    (:func:`dfx.isa.config.core_from_dict`, what a binary's embedded core goes through); the
    RTL's in :meth:`dfx.rtl.lutgemm.LutGemm.from_core` (powers of two, scalers <= lanes,
    max_rows a multiple of lanes)."""
    from dfx.isa.config import ConfigError, core_from_dict, to_dict
    from dfx.rtl.lutgemm import LutGemm

    c = size_core(core, lanes, scalers)
    try:
        core_from_dict(to_dict(c), to_dict(c.board_config), "unit size")
    except ConfigError as e:
        return f"configuration loader: {e}"
    try:
        LutGemm.from_core(c)
    except ValueError as e:
        return f"RTL: {e}"
    return None


def program_differences(a: Any, b: Any) -> list[str]:
    """What differs between two binaries apart from their embedded core: programs, segment
    layout (space, address, length), model description."""
    out = []
    if a.model != b.model:
        out.append("model description")
    for i, (x, y) in enumerate(zip(a.cards, b.cards, strict=True)):
        if x.program != y.program:
            out.append(f"card {i} program")
        if ([(s.space, s.addr, s.length) for s in x.segments]
                != [(s.space, s.addr, s.length) for s in y.segments]):
            out.append(f"card {i} segments")
    return out


def section_sizes(b: Bench, sizes: list[tuple[int, int]], src: dict[str, Any]
                  ) -> tuple[str, dict[str, Any]]:
    from dfx.isa.config import load_core
    from dfx.sim.timing import derive

    core = load_core("dfx-u280")
    conf = (core.lutgemm.lanes, core.lutgemm.scalers)
    dev = core.board_config.resources.lut
    d = core.d
    fp, base = b.run(FP16), b.run(REF)
    base_lut = unit_lut(src, *conf)
    rows, data, skipped, diffs = [], [], [], {}
    for lanes, scalers in sizes:
        why = size_refused(core, lanes, scalers)
        if why:
            skipped.append(f"{lanes} lanes, {scalers} scalers: {why}")
            continue
        v = "" if (lanes, scalers) == conf else size_variant(lanes, scalers)
        r = b.run(REF, v)
        par = r["parameters"]
        if (par["lut_lanes"], par["lut_scalers"]) != (lanes, scalers):
            raise RuntimeError(f"{v}: the timing model ran with {par['lut_lanes']} lanes, "
                               f"{par['lut_scalers']} scalers")
        if v:
            diffs[v] = program_differences(b.binary(REF), b.binary(REF, v))
        epi = derive(b.binary(REF, v).core).lut_epilogue_lanes  # LutPort.epilogue_lanes
        gen, prompt = r["gen_ms_per_token"], r["prompt_ms_per_token"]
        lut = unit_lut(src, lanes, scalers)
        slower = gen - base["gen_ms_per_token"]
        per = (f"{(base_lut - lut) / (slower / 0.1):,.0f}" if v and slower > 0 else "—")
        rows.append([f"{lanes}", f"{scalers}" + (" (configured)" if not v else ""),
                     f"**{gen:.4f}**", f"{prompt:.4f}", f"{slower:+.4f}", bound_text(r),
                     f"{epi}", f"{lut:,.0f}", f"{100 * lut / dev:.1f} %", per])
        data.append({"lanes": lanes, "scalers": scalers, "gen_ms_per_token": gen,
                     "prompt_ms_per_token": prompt, "unit_lut": lut,
                     "unit_lut_percent": 100 * lut / dev, "epilogue_lanes": epi,
                     "lut": r["units"][0]["lut"]})
    head = ["lanes", "scalers", "ms / gen. token", "ms / prompt token", "Δ gen. vs configured",
            "lutmv bound HBM / lanes / scalers %", "LUT port epilogue lanes",
            "LUT of the unit (estimate)", f"% of the U280's {dev:,} LUT",
            "LUT saved per +0.1 ms"]
    ok = [x for x in data if x["gen_ms_per_token"] <= GOAL_MS]
    small = min(ok, key=lambda x: x["unit_lut"]) if ok else None
    changed = sorted({w for ws in diffs.values() for w in ws})
    text = [f"### 6. Unit size: lanes and scalers (`{REF}`, {b.prompt}:{b.gen})", "",
            f"Each row: `{REF}` compiled for and timed on dfx-u280 with only core.lutgemm "
            "`lanes` and `scalers` changed (`dataclasses.replace`; accepted by the "
            "configuration loader's checks and by `LutGemm.from_core`). The timing model takes "
            "both from the RTL unit (`LutParams.from_rtl`), and the LUT port's epilogue "
            "width min(scalers, d) from `LutPort.epilogue_lanes`; the report's "
            "`lut_lanes`/`lut_scalers` are checked. "
            f"FP16 for reference: {fp['gen_ms_per_token']:.4f} ms per generated token, "
            f"{fp['prompt_ms_per_token']:.4f} per prompt token.", "",
            f"LUT of the unit = lanes × {src['lane']:,.1f} + scalers × {src['scaler']:,.1f} "
            f"(a scaler with half of the FP32 converter a pair shares) + {src['top']:,.0f} (the "
            f"rest of the unit: the {src['total']:,.0f} LUT of {src['lanes']} lanes and "
            f"{src['scalers']} scalers minus those, held fixed). Source: {src['source']}. Not "
            "synthesised at these sizes: the rest of the unit holds per-scaler wiring (the "
            "lanes/scalers : 1 read multiplexer, the scale un-shuffle, the scalers × 32-bit "
            "output buffer) that changes with the sizes and is not re-estimated. The LUT "
            "port's SFU_M epilogue (a budget row of its own) is not "
            f"included: it has min(scalers, d = {d}) lanes, so it shrinks only where "
            f"scalers < {d}; no per-lane figure of it is documented, so that saving is not "
            "estimated.", "",
            table(head, rows), ""]
    if skipped:
        text.append("Skipped: " + "; ".join(skipped) + ".")
    text.append(
        "* Binaries: " + ("the programs, segment layout and model description are identical "
                          "for every size (the compiler does not depend on lanes or "
                          "scalers; only the embedded core differs)." if not changed else
                          "differ from dfx-u280's in: " + ", ".join(changed) + "."))
    text.append(
        f"* Goal ≤ {GOAL_MS:.1f} ms per generated token: " + (
            f"the smallest unit that meets it is {small['lanes']} lanes, {small['scalers']} "
            f"scalers ({small['gen_ms_per_token']:.4f} ms, {small['unit_lut']:,.0f} LUT = "
            f"{small['unit_lut_percent']:.1f} % of the device)." if small else
            "no size in this grid meets it."))
    return "\n".join(text), {"lut_source": src, "rows": data, "skipped": skipped,
                             "binary_differences": diffs}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``L:S,L:S,...`` -> [(lanes, scalers), ...]."""
    try:
        out = [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes {text!r}: expected LANES:SCALERS,...") from None
    if not out or any(len(x) != 2 for x in out):
        raise argparse.ArgumentTypeError(f"sizes {text!r}: expected LANES:SCALERS,...")
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt-len", type=int, default=64, metavar="P")
    ap.add_argument("--gen-len", type=int, default=64, metavar="G")
    ap.add_argument("--quick", action="store_true", help="FP16 and q=3,g=128 only, no trace")
    ap.add_argument("--anatomy-pos", type=int, default=None, metavar="N",
                    help="trace the pass with N keys for the layer anatomy (default 64; 0 = "
                         "skip; --quick: 0)")
    ap.add_argument("--json", metavar="FILE", help="also write every result and report here")
    ap.add_argument("--sizes", nargs="?", type=parse_sizes, metavar="L:S,...",
                    const=SIZES, default=None,
                    help="only the unit-size section: q=3,g=128 on dfx-u280 with these LUT "
                         "lanes:scalers (default "
                         + ",".join(f"{lanes}:{sc}" for lanes, sc in SIZES) + ")")
    ap.add_argument("--budget-json", type=Path, metavar="F",
                    help="per-leaf LUT of the unit-size section from this `bench/resources.py "
                         "--budget --json` output (default: the figures in docs/BENCHMARKS.md)")
    args = ap.parse_args(argv)
    lut_src = unit_lut_source(args.budget_json)
    anat = args.anatomy_pos if args.anatomy_pos is not None else (0 if args.quick else 64)
    specs = [FP16, REF] if args.quick else [FP16, *GRID, LM_Q]
    now = datetime.datetime.now(datetime.UTC)
    t0, c0 = time.perf_counter(), time.process_time()
    load0 = loadavg()
    cmd = " ".join(["bench/lutgemm_latency.py", *(argv if argv is not None else sys.argv[1:])])
    print("\n".join([
        f"## LUT-GEMM: modelled latency of GPT-2 1.5B on 4 cards (`bench/lutgemm_latency.py`, "
        f"{now:%Y-%m-%d})", "",
        f"* Date: {now:%Y-%m-%d %H:%M} UTC. Machine: {machine()}; load average {load0} at "
        f"start. Source: git {git_rev()}.",
        f"* Command: `.venv/bin/python {cmd.strip()}`.",
        f"* Each row: `compile_model(\"{MODEL}\", cards={CARDS}, weights=False, "
        "quant=QuantSpec.parse(SPEC))` (= `dfx compile --no-weights --quant SPEC`), then "
        f"`dfx.sim.timing.perf(binary, {args.prompt_len}, {args.gen_len})` (= `dfx perf`): core "
        "dfx-u280 (200 MHz; LUT unit mu 4, keys 8, 512 lanes, 256 scalers; HBM 32 × 64 B per "
        "cycle). ms per generated token = (last − first generated arg-max) / (G − 1); per "
        "prompt token = TTFT / P. Modelled, not measured; docs/timing.md \"LUT-GEMM unit\".",
    ]) + "\n", flush=True)
    result: dict[str, Any] = {"date": now.isoformat(), "machine": machine(), "git": git_rev(),
                              "prompt_len": args.prompt_len, "gen_len": args.gen_len}
    b = Bench(args.prompt_len, args.gen_len)
    if args.sizes is not None:
        text, result["sizes"] = section_sizes(b, args.sizes, lut_src)
        print(text + "\n", flush=True)
        return finish(args, b, result, t0, c0)
    text, result["grid"] = section_grid(b, specs)
    print(text + "\n", flush=True)
    text, result["breakdown"] = section_breakdown(b, [FP16, REF] + ([] if args.quick
                                                                   else [LM_Q]))
    print(text + "\n", flush=True)
    if anat > 0:
        text, result["anatomy"] = section_anatomy(b, anat)
        print(text + "\n", flush=True)
    if not args.quick:
        text, result["whatif"] = section_whatif(b)
        print(text + "\n", flush=True)
    print(section_verdict(b, result.get("anatomy")) + "\n", flush=True)
    if not args.quick:
        text, result["sizes"] = section_sizes(b, SIZES, lut_src)
        print(text + "\n", flush=True)
    return finish(args, b, result, t0, c0)


def finish(args: argparse.Namespace, b: Bench, result: dict[str, Any], t0: float, c0: float
           ) -> int:
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"Bench: {len(b.runs)} timed runs; simulator {b.sim_wall:.0f} s wall / "
          f"{b.sim_cpu:.0f} s CPU; whole script {wall:.0f} s wall / {cpu:.0f} s CPU; load "
          f"average {loadavg()} at the end.")
    if args.json:
        result["reports"] = {f"{s}|{v}": r for (s, v), r in b.runs.items()}
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
