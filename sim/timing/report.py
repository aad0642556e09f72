"""The performance report of one timed request (``dfx perf``, :func:`dfx.sim.timing.perf`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dfx.isa.outputs import write_output

from .appliance import SimResult
from .card import (
    BYTE_NAMES,
    CATEGORIES,
    CLASSES,
    LUT_NAMES,
    OCCUPANCY,
    S_BUSY,
    S_BYTES,
    S_CRIT,
    S_INSTR,
    S_LUT,
    S_MACS,
    S_OCC,
    S_RECV,
    S_SENT,
    S_TILES,
    S_WSTALL,
    UNITS,
)

UNIT_NAMES = ("controller",) + UNITS
"""Trace thread names (tid 0 = controller, then the units in stats.py order)."""


def _ms(cycles: float, clock_mhz: float) -> float:
    return cycles / clock_mhz / 1000.0


@dataclass
class PerfReport:
    """What one request costs on the modelled appliance. Times in ms unless named ``_s``;
    ``to_dict()`` gives the JSON form of ``dfx perf --json`` (docs/timing.md, "Report")."""

    model: str
    cards: int
    core: str
    board: str
    clock_mhz: float
    prompt_len: int
    gen_len: int
    total_ms: float
    ttft_ms: float | None
    prompt_ms_per_token: float | None
    gen_ms_per_token: float | None
    tokens_per_s: float | None
    end_to_end_tokens_per_s: float
    token_times_ms: list[float]
    breakdown: dict[str, dict[str, float]]
    issue_waits: dict[str, dict[str, float]]
    units: list[dict[str, Any]]
    hbm: list[dict[str, Any]]
    roofline: dict[str, float | None]
    simulation: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render(self) -> str:
        """The human-readable form of ``dfx perf``."""
        lines = [
            f"dfx perf: {self.model} on {self.cards} x {self.core} ({self.board}, "
            f"{self.clock_mhz:g} MHz), prompt {self.prompt_len} + {self.gen_len} generated",
            "",
            f"  total latency        {self.total_ms:10.3f} ms",
        ]
        if self.ttft_ms is not None:
            lines.append(f"  time to first token  {self.ttft_ms:10.3f} ms"
                         f"   ({self.prompt_ms_per_token:.3f} ms per prompt token)")
        if self.gen_ms_per_token is not None:
            lines.append(f"  generation           {self.gen_ms_per_token:10.3f} ms per token"
                         f"   ({self.tokens_per_s:.1f} tokens/s)")
        lines.append(f"  end to end           {self.end_to_end_tokens_per_s:10.1f} generated "
                     "tokens/s")
        rf = self.roofline
        lines += [
            "",
            f"  roofline (weights at the board's peak HBM {rf['board_peak_gbs']:.1f} GB/s): "
            f"{rf['per_token_ms']:.3f} ms per token, {rf['total_ms']:.3f} ms total "
            f"({100 * rf['fraction_of_total']:.1f}% of the modelled latency)",
            "",
            "  where card 0's time goes (ms; each cycle counted for the busiest unit, in the",
            "  order matrix > attention > vector > ring sync > DMA stall > idle):",
        ]
        lines += _table(self.breakdown)
        lines += ["", "  what in-order issue waited for (ms; the unit whose result or queue",
                  "  the next instruction needed):"]
        lines += _table(self.issue_waits)
        lines += ["", "  units (busy %; MPU weight stall = cycles the MPU waited for weights):"]
        for u in self.units:
            busy = "  ".join(f"{k} {100 * v:5.1f}%" for k, v in u["busy"].items()
                             if k != "lut" or u["lut"]["instructions"])
            lines.append(f"    card {u['card']}: {busy}  weight stall "
                         f"{u['mpu_weight_stall_ms']:.3f} ms")
        if any(u["lut"]["instructions"] for u in self.units):
            lines += ["", "  LUT-GEMM unit (lutmv; ms summed over instructions: HBM stream, lane",
                      "  and scaler times; each instruction's span by the largest of the three):"]
            for u in self.units:
                lu = u["lut"]
                lines.append(
                    f"    card {u['card']}: {lu['instructions']:,} lutmv, lanes busy "
                    f"{100 * lu['lane_utilisation']:5.1f}% ({100 * lu['lane_fill']:.0f}% of "
                    f"lane slots), {lu['stream_bytes'] / 1e9:.3f} GB; "
                    f"HBM {lu['hbm_ms']:.3f}, lanes {lu['lane_ms']:.3f}, scalers "
                    f"{lu['scaler_ms']:.3f}; bound by HBM {lu['hbm_bound_ms']:.3f}, lanes "
                    f"{lu['lane_bound_ms']:.3f}, scalers {lu['scaler_bound_ms']:.3f}")
        lines += ["", "  HBM per card:"]
        for h in self.hbm:
            lines.append(
                f"    card {h['card']}: read {h['read_bytes'] / 1e9:.3f} GB, written "
                f"{h['written_bytes'] / 1e6:.3f} MB, {h['gbs']:.1f} GB/s = "
                f"{100 * h['utilisation']:.1f}% of peak ({100 * h['utilisation_dma']:.1f}% of "
                f"the DMA's {h['dma_peak_gbs']:.1f} GB/s)")
        sim = self.simulation
        lines += ["", f"  simulated in {sim['wall_s']:.2f} s: {sim['instructions']:,} "
                      f"instructions modelled, {sim['steps']:,} handled one by one, "
                      f"{sim['memo_iterations']:,} loop iterations replayed"]
        return "\n".join(lines) + "\n"


def _table(rows: dict[str, dict[str, float]]) -> list[str]:
    cats = list(rows["total"])
    out = ["    " + f"{'':22}" + "".join(f"{c:>11}" for c in cats)]
    for name in ("total", "prompt", "generation_per_token"):
        row = rows.get(name)
        if row:
            out.append("    " + f"{name:22}" + "".join(f"{row[c]:11.3f}" for c in cats))
    return out


def build(result: SimResult, binary: Any, prompt_len: int | None, gen_len: int | None
          ) -> PerfReport:
    """Turn raw simulation results into a :class:`PerfReport`."""
    p = result.params
    clk = p.clock_mhz
    core, board = binary.core, binary.core.b
    total = result.cycles
    tt = result.token_times[0]
    ttft = prompt_ms = gen_ms = tps = None
    if prompt_len and len(tt) >= prompt_len:
        ttft = _ms(tt[prompt_len - 1], clk)
        prompt_ms = ttft / prompt_len
        last = prompt_len + (gen_len or 1) - 2
        if gen_len and gen_len > 1 and len(tt) > last:
            gen_ms = _ms(tt[last] - tt[prompt_len - 1], clk) / (gen_len - 1)
            tps = 1000.0 / gen_ms
    passes = max(len(tt), 1)

    def crit(stats: list[int], scale: float = 1.0) -> dict[str, float]:
        return {c: _ms(stats[S_CRIT + i], clk) * scale for i, c in enumerate(CATEGORIES)}

    def occ(stats: list[int], scale: float = 1.0) -> dict[str, float]:
        return {c: _ms(stats[S_OCC + i], clk) * scale for i, c in enumerate(OCCUPANCY)}

    def phases(fn: Any) -> dict[str, dict[str, float]]:
        s0, snap = result.stats[0], result.snap[0]
        out = {"total": fn(s0)}
        if snap is not None:
            out["prompt"] = fn(snap)
            if gen_len and gen_len > 1:
                diff = [a - b for a, b in zip(s0, snap, strict=True)]
                out["generation_per_token"] = fn(diff, 1.0 / (gen_len - 1))
        return out

    breakdown, issue_waits = phases(occ), phases(crit)

    hbm_peak = board.hbm.bandwidth_gbs
    dma_peak = float(p.hbm.bytes_per_cycle) * p.hbm.n * clk / 1000.0
    seconds = total / clk / 1e6
    units, hbm = [], []
    for c, st in enumerate(result.stats):
        units.append({
            "card": c,
            "end_ms": _ms(result.end[c], clk),
            "busy": {u: st[S_BUSY + i] / total if total else 0.0 for i, u in enumerate(UNITS)},
            "busy_ms": {u: _ms(st[S_BUSY + i], clk) for i, u in enumerate(UNITS)},
            "idle": {u: 1.0 - (st[S_BUSY + i] / total if total else 0.0)
                     for i, u in enumerate(UNITS)},
            "mpu_weight_stall_ms": _ms(st[S_WSTALL], clk),
            "breakdown_ms": occ(st),
            "issue_waits_ms": crit(st),
            "tiles": st[S_TILES],
            "macs": st[S_MACS],
            "vectors_sent": st[S_SENT],
            "vectors_received": st[S_RECV],
            "instructions": {k: st[S_INSTR + i] for i, k in enumerate(CLASSES)},
            "bytes": {k: st[S_BYTES + i] for i, k in enumerate(BYTE_NAMES)},
            "lut": _lut_unit(st, total, p),
        })
        pcs = result.channels[c]["hbm"]
        rd, wr = st[S_BYTES], st[S_BYTES + 1]
        gbs = (rd + wr) / seconds / 1e9 if seconds else 0.0
        per_pc = [r + w for r, w in pcs]
        hbm.append({
            "card": c, "read_bytes": rd, "written_bytes": wr, "gbs": gbs,
            "peak_gbs": hbm_peak, "dma_peak_gbs": dma_peak,
            "utilisation": gbs / hbm_peak, "utilisation_dma": gbs / dma_peak,
            "pseudo_channel_bytes_min": min(per_pc), "pseudo_channel_bytes_max": max(per_pc),
        })
    weights = max(st[S_BYTES + 6] + st[S_BYTES + 7] + st[S_BYTES + 8] for st in result.stats)
    weights_only = max(st[S_BYTES + 6] + st[S_BYTES + 8] for st in result.stats)
    roof_s = weights / (hbm_peak * 1e9)
    roofline = {
        "board_peak_gbs": hbm_peak,
        "dma_peak_gbs": dma_peak,
        "weight_bytes_per_card": weights,
        "weight_bytes_per_card_without_kv": weights_only,
        "total_ms": roof_s * 1000.0,
        "per_token_ms": roof_s * 1000.0 / passes,
        "total_ms_at_dma_peak": weights / (dma_peak * 1e9) * 1000.0,
        "fraction_of_total": (roof_s * 1000.0) / _ms(total, clk) if total else None,
    }
    instructions = sum(sum(st[S_INSTR:S_INSTR + len(CLASSES)]) for st in result.stats)
    gl = gen_len or 0
    return PerfReport(
        model=str(binary.model.get("name", "?")),
        cards=binary.n_cards,
        core=core.name,
        board=board.name,
        clock_mhz=clk,
        prompt_len=prompt_len or 0,
        gen_len=gl,
        total_ms=_ms(total, clk),
        ttft_ms=ttft,
        prompt_ms_per_token=prompt_ms,
        gen_ms_per_token=gen_ms,
        tokens_per_s=tps,
        end_to_end_tokens_per_s=gl / seconds if seconds else 0.0,
        token_times_ms=[_ms(t, clk) for t in tt],
        breakdown=breakdown,
        issue_waits=issue_waits,
        units=units,
        hbm=hbm,
        roofline=roofline,
        simulation={
            "wall_s": result.wall_s,
            "steps": result.steps,
            "instructions": instructions,
            "memo_jumps": result.memo_jumps,
            "memo_iterations": result.memo_iterations,
            "total_cycles": total,
        },
        parameters=parameters(p),
    )


def _lut_unit(st: list[int], total: int, p: Any) -> dict[str, Any]:
    """The LUT-GEMM unit of one card: lutmv count, lane utilisation (cycles the lanes stream /
    total) and fill (lane words / (lanes x those cycles)), the summed per-instruction stream
    times (HBM, lanes, scalers) and instruction spans by what bound them."""
    clk = p.clock_mhz
    v = dict(zip(LUT_NAMES, st[S_LUT:S_LUT + len(LUT_NAMES)], strict=True))
    slots = v["lane_cycles"] * p.lut.lanes * p.lut.slice if p.lut is not None else 0
    out: dict[str, Any] = {
        "instructions": st[S_INSTR + CLASSES.index("lutgemm")],
        "lane_utilisation": v["lane_cycles"] / total if total else 0.0,
        "lane_fill": v["sign_bits"] / slots if slots else 0.0,
        "sign_bits": v["sign_bits"],
        "stream_bytes": st[S_BYTES + BYTE_NAMES.index("lut_weights")],
    }
    for k in LUT_NAMES:
        if k.endswith("_cycles"):
            out[k[: -len("_cycles")] + "_ms"] = _ms(v[k], clk)
    return out


def parameters(p: Any) -> dict[str, Any]:
    """The derived cycle-level parameters (echoed in the report for reproducibility)."""
    lut = p.lut
    extra = {} if lut is None else {
        "lut_lanes": lut.lanes, "lut_slice": lut.slice, "lut_scalers": lut.scalers,
        "lut_first_lookup_cycles": lut.first_lookup, "lut_handover_cycles": lut.handover,
        "lut_result_cycles": lut.result_latency,
    }
    return extra | {
        "mpu_fill_cycles": p.fill,
        "mpu_zigzag_tiles": p.zigzag,
        "hbm_bytes_per_cycle_per_channel": float(p.hbm.bytes_per_cycle),
        "hbm_latency_cycles": p.hbm.latency,
        "hbm_turnaround_cycles": p.hbm.turnaround,
        "ddr_bytes_per_cycle_per_channel": float(p.ddr.bytes_per_cycle),
        "ddr_latency_cycles": p.ddr.latency,
        "link_cycles_per_vector": p.ser_num / p.ser_den,
        "link_hop_cycles": p.hop,
        "issue_cycles": p.issue,
        "branch_penalty": p.branch_penalty,
        "unit_queue": p.queue,
    }


def write_trace(result: SimResult, path: str | Path, *,
                inputs: Iterable[str | os.PathLike[str] | None] = ()) -> int:
    """Write the recorded unit events as Chrome/Perfetto trace-event JSON (atomically, through
    :func:`dfx.isa.outputs.write_output`); returns the number of "X" events. ``ts``/``dur``
    are in microseconds; ``args`` carry pc and cycles."""
    if result.trace is None:
        raise ValueError("the run recorded no trace")
    return write_unit_trace(result.trace, path, clock_mhz=result.params.clock_mhz,
                            annotations=result.annotations, token_times=result.token_times,
                            inputs=inputs)


def write_unit_trace(cards: Sequence[Sequence[tuple]], path: str | Path, *, clock_mhz: float,
                     annotations: Sequence[Callable[[int], str | None] | None] = (),
                     token_times: Sequence[Sequence[int]] = (),
                     inputs: Iterable[str | os.PathLike[str] | None] = ()) -> int:
    """The trace file of ``dfx perf --trace`` and ``dfx run --backend rtl --trace``: per card
    (a process) one track per unit of :data:`~.stats.UNITS` (threads), ``cards[c]`` its
    ``(unit, op, start cycle, end cycle, pc)`` busy intervals; ``annotations[c](pc)`` names
    them, ``token_times[c]`` marks when each token was done. Returns the "X" event count."""
    clk = clock_mhz
    events: list[dict[str, Any]] = []
    count = 0
    for c, evs in enumerate(cards):
        events.append({"name": "process_name", "ph": "M", "pid": c, "tid": 0,
                       "args": {"name": f"card {c}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": c, "tid": 0,
                       "args": {"sort_index": c}})
        for tid, name in enumerate(UNIT_NAMES):
            events.append({"name": "thread_name", "ph": "M", "pid": c, "tid": tid,
                           "args": {"name": name}})
        ann = annotations[c] if c < len(annotations) else None
        for unit, op, start, end, pc in evs:
            note = ann(pc) if ann is not None else None
            events.append({
                "name": f"{op} {note}" if note else op,
                "cat": UNITS[unit],
                "ph": "X",
                "pid": c,
                "tid": unit + 1,
                "ts": start / clk,
                "dur": max(end - start, 0) / clk,
                "args": {"pc": pc, "start_cycle": start, "end_cycle": end},
            })
            count += 1
        last = max((e[3] for e in evs), default=-1)
        for k, t in enumerate(token_times[c] if c < len(token_times) else ()):
            if t > last:
                break
            events.append({"name": f"token {k} done", "ph": "i", "s": "p", "pid": c, "tid": 0,
                           "ts": t / clk, "args": {"token": k, "cycle": t}})
    text = json.dumps({"traceEvents": events, "displayTimeUnit": "ns"})
    write_output(path, text, option="--trace", inputs=inputs)
    return count
