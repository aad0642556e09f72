"""The LUT-GEMM unit in the timing model (``lutmv``; docs/timing.md "LUT-GEMM unit"): micro-
programs whose cycle counts are derived by hand from the configuration values (core.lutgemm,
the HBM parameters) and the RTL units' latency properties (LutGemm, the MPU's SFU_M epilogue),
never copied from the model's output."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import pytest
from timing_helpers import bytes_per_cycle, cycles, micro, rtl_units

from dfx.isa.golden.lutgemm import section_bytes, stream_bytes
from dfx.sim.timing import TimingError, simulate, write_trace
from dfx.sim.timing.card import BYTE_NAMES, LUT_NAMES, S_BUSY, S_BYTES, S_LUT, U_LUT


def lutmv(n: int, ng: int, gs: int, q: int, *, y: int = 4000, x: int = 0, w: str = "hbm[r0+0]",
          extra: str = "") -> str:
    return (f"lutmv y=v[r0+{y}], x=v[r0+{x}], w={w}, n={n}, ng={ng}, gs={gs}, q={q}"
            f"{extra}\n")


class Unit:
    """The rules of docs/timing.md for one core, written out from the configuration and the
    RTL units."""

    def __init__(self, core):
        c = core.lutgemm
        h = core.b.hbm
        rtl = rtl_units(core)
        self.c, self.core = c, core
        self.first = cycles(h.read_latency_ns, core)  # HBM first data
        self.rate = bytes_per_cycle(h.pc_bandwidth_gbs, h.efficiency, core)
        self.pcs, self.beat = h.pseudo_channels, h.interleave_bytes
        # a group's scale rounds start look-up + bank hand-over after its last lane word, i.e.
        # lookup after the lanes are done (one past the last word)
        self.lookup = rtl.lut.handover_latency - 1
        assert self.lookup == rtl.lut.lookup_latency
        self.out = rtl.lut.result_latency  # last scale op -> output beat: scalers, buffer
        pair = 1 if rtl.lut.paired_convert else 0  # a converter shared by two scalers
        assert self.out == 1 + c.mul_latency + c.add_latency + c.convert_latency + pair + 1
        self.tables = rtl.lut.first_lookup_latency  # x read -> first look-up
        assert self.tables == c.build_latency + 1  # builder, table register

    def hbm(self, nbytes: int) -> int:
        """Cycles of a contiguous stream from address 0: the busiest pseudo-channel's beats."""
        beats = math.ceil(nbytes / self.beat)
        return math.ceil(math.ceil(beats / self.pcs) * self.beat / self.rate)

    def lane(self, n: int, gs: int, q: int) -> int:
        """Lane cycles per group: one (slice, plane) per cycle for `lanes` rows."""
        return gs * q * math.ceil(n / self.c.lanes)

    def chunks(self, n: int) -> int:
        return math.ceil(n / self.c.scalers)

    def scaler(self, n: int, q: int) -> int:
        """Scale-stage cycles per group: q + 1 terms per row chunk, one per cycle."""
        return (q + 1) * self.chunks(n)



@pytest.fixture(scope="module")
def unit(u280):
    return Unit(u280)


def lut_stats(res, card: int = 0) -> dict[str, int]:
    st = res.stats[card]
    return dict(zip(LUT_NAMES, st[S_LUT:S_LUT + len(LUT_NAMES)], strict=True))


def test_hbm_bound_stream_reads_exactly_stream_bytes(u280, unit):
    """n = 4096 rows (8 lane batches), q = 2, two groups of 24 slices: the lanes consume a
    group in 384 cycles, its section (signs + scales) takes 396 on 32 pseudo-channels, the
    scalers 48: HBM-bound. The stream is read once, evenly over the pseudo-channels; the last
    result comes after the last group's section is in, its scale rounds and the pipeline."""
    n, ng, gs, q = 4096, 2, 24, 2
    c = unit.c
    sec = section_bytes(n, gs, q, c.slice)
    sb = stream_bytes(n, ng, gs, q, c.slice)
    assert sb == ng * sec and sb % (unit.pcs * unit.beat) == 0
    dur = unit.hbm(sb)
    per_group = Fraction(dur, ng)
    assert unit.lane(n, gs, q) < per_group and unit.scaler(n, q) < per_group
    res = simulate(micro(lutmv(n, ng, gs, q) + "halt\n"))
    assert res.end[0] > unit.first + dur + unit.lookup + unit.scaler(n, q) + unit.out
    st = res.stats[0]
    assert st[S_BYTES] == sb  # HBM bytes read
    assert st[S_BYTES + BYTE_NAMES.index("lut_weights")] == sb
    per_pc = [r for r, _ in res.channels[0]["hbm"]]
    assert min(per_pc) == max(per_pc) == sb // unit.pcs
    ls = lut_stats(res)
    assert ls["lane_cycles"] == ng * unit.lane(n, gs, q)
    assert ls["sign_bits"] == n * ng * gs * c.slice * q


def test_lane_bound_small_n_many_planes(u280, unit):
    """n = 64 rows use one lane batch: every (slice, plane) costs a whole lane cycle while the
    stream delivers its bytes 8x faster. q = 4, 4 groups of 64 slices: the lanes run their
    groups back to back but for the gearbox's scale pieces between groups (one cycle per
    piece, then the next group's first sign beat), the scalers finish a group long before."""
    n, ng, gs, q = 64, 4, 64, 4
    c = unit.c
    lane = unit.lane(n, gs, q)
    sb = stream_bytes(n, ng, gs, q, c.slice)
    assert unit.hbm(sb) < ng * lane
    assert unit.scaler(n, q) + unit.lookup <= lane
    res = simulate(micro(lutmv(n, ng, gs, q) + "halt\n"))
    ls = lut_stats(res)
    assert ls["lane_bound_cycles"] > 0
    assert res.stats[0][S_BUSY + U_LUT] == ng * lane
    assert res.stats[0][S_BYTES] == sb
    assert res.end[0] > ng * lane + unit.scaler(n, q) + unit.out


@pytest.mark.parametrize("n, ng, q", [(1024, 64, 3), (4096, 16, 1)], ids=["q3", "q1"])
def test_scaler_bound_small_groups(u280, unit, n, ng, q):
    """g = 32 (one slice per group): each group's q + 1 ops per row chunk (1024 rows: 4 chunks
    per scaler; 4096 rows: 16) cost more than its lanes and its stream: the scale rounds run
    back to back, so the instruction takes at least ng scale rounds; the lanes wait for a
    free bank."""
    gs = 1
    c = unit.c
    sb = stream_bytes(n, ng, gs, q, c.slice)
    dur = unit.hbm(sb)
    sc = unit.scaler(n, q)
    lane = unit.lane(n, gs, q)
    assert lane + unit.lookup <= sc and dur / ng < sc
    res = simulate(micro(lutmv(n, ng, gs, q) + "halt\n"))
    assert res.end[0] > ng * sc + unit.out
    ls = lut_stats(res)
    assert ls["scaler_cycles"] == ng * sc and ls["scaler_bound_cycles"] > 0
    assert ls["stall_cycles"] > 0  # the lanes waited for banks


def test_back_to_back_instructions_keep_the_scalers_busy(u280, unit):
    """Two independent scaler-bound lutmv: the second one's lanes start when the first one's
    lanes are done and its groups queue behind the first one's scale rounds, so the second
    ends exactly ng x scaler cycles after the first (double buffering across instructions)."""
    n, ng, gs, q = 1024, 64, 1, 3
    one = simulate(micro(lutmv(n, ng, gs, q) + "halt\n")).end[0]
    kv = math.ceil(ng * gs * unit.c.slice / u280.d)
    two = simulate(micro(lutmv(n, ng, gs, q) + lutmv(n, ng, gs, q, y=3500, x=kv)
                         + "halt\n")).end[0]
    assert two == one + ng * unit.scaler(n, q)


def test_batch_restreams_the_weights_per_row(u280, unit):
    """batch = 2 on the lane-bound shape: the tables hold one token, so the whole stream comes
    twice (2 x stream_bytes) and the lanes run 2 x ng groups; row 0's output is written before
    row 1's."""
    n, ng, gs, q = 64, 4, 64, 4
    c = unit.c
    lane = unit.lane(n, gs, q)
    sb = stream_bytes(n, ng, gs, q, c.slice)
    kv = ng * gs * c.slice // u280.d
    res = simulate(micro(lutmv(n, ng, gs, q, extra=", batch=2") + "halt\n"))
    one = simulate(micro(lutmv(n, ng, gs, q) + "halt\n"))
    assert res.stats[0][S_BYTES] == 2 * sb
    assert lut_stats(res)["sign_bits"] == 2 * n * kv * u280.d * q
    assert res.stats[0][S_BUSY + U_LUT] == 2 * ng * lane
    assert res.end[0] >= one.end[0] + ng * lane


def test_raw_chaining_from_a_lutmv(u280, unit):
    """A second lutmv reads the first one's output: it is issued right away (sources are not
    checked at issue), its collector reads x once it is written, so it ends after the first's
    result plus its own lanes, scale round and pipeline."""
    n, ng, gs, q = 64, 4, 64, 4
    first_end = simulate(micro(lutmv(n, ng, gs, q) + "halt\n")).end[0]
    c = unit.c
    n2, ng2, gs2, q2 = 64, 1, u280.d // c.slice, 1  # x = one vector = the first's y
    prog = lutmv(n, ng, gs, q) + lutmv(n2, ng2, gs2, q2, y=3500, x=4000) + "halt\n"
    end = simulate(micro(prog)).end[0]
    assert end > first_end + unit.lane(n2, gs2, q2) + unit.scaler(n2, q2) + unit.out


def test_bias_read_and_limits(u280, unit):
    """With a bias the stream reader reads the n FP16 (as ceil(n / d) units) after the stream
    of each batch row; the epilogue adds it."""
    n = 64
    b = micro(lutmv(n, 1, 2, 1, w="hbm[r0+0]", extra=", b=ddr[r0+0], bias") + "halt\n")
    res = simulate(b)
    d = u280.b.ddr
    burst = d.burst_bytes
    assert res.stats[0][S_BYTES + 2] == math.ceil(2 * n / burst) * burst  # DDR bytes read
    nobias = simulate(micro(lutmv(n, 1, 2, 1, w="hbm[r0+0]") + "halt\n"))
    assert res.end[0] >= nobias.end[0]


@pytest.mark.parametrize("prog, match", [
    (lutmv(64, 1, 1, 5), "q = 5"),
    (lutmv(64, 1, 1, 2, w="hbm[r0+16]"), "aligned"),
    (lutmv(64, 1, 257, 2), "gs"),
    (lutmv(0, 1, 1, 2), "n = 0"),
    (lutmv(64, 0, 1, 2), "ng >= 1"),
])
def test_invalid_lutmv_is_an_error(u280, prog, match):
    with pytest.raises(TimingError, match=match):
        simulate(micro(prog + "halt\n"))


def test_core_without_lut_unit(u280):
    core = dataclasses.replace(u280, lutgemm=None)
    with pytest.raises(TimingError, match="no LUT-GEMM unit"):
        simulate(micro(lutmv(64, 1, 1, 2) + "halt\n", core=core))


def test_trace_has_a_lut_thread(u280, tmp_path):
    res = simulate(micro(lutmv(64, 2, 2, 2) + "halt\n"), trace_tokens=1)
    path = tmp_path / "t.json"
    assert write_trace(res, path) == 1
    ev = json.loads(path.read_text())["traceEvents"]
    (x,) = [e for e in ev if e["ph"] == "X"]
    assert x["cat"] == "lut" and x["name"] == "lutmv test"
    names = {e["tid"]: e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    assert names[x["tid"]] == "lut"


@pytest.mark.parametrize("step, replayed", [(2048 * 1024, True), (2048 * 1024 + 32, False)])
def test_memo_replays_lutmv_loops_exactly(u280, step, replayed):
    """A loop of lutmv whose weight address advances by a whole number of interleave periods
    is replayed by the memo, bit-identical to the full run; any other step is not replayed."""
    prog = ("li rd=r1, imm=0\nloop count=12\n"
            + lutmv(1024, 16, 1, 3, w="hbm[r1+0]")
            + f"vmov y=v[r0+100], a=v[r0+4000], n=1\naddi rd=r1, rs1=r1, imm={step}\n"
            "endloop\nhalt\n")
    b = micro(prog)
    fast, full = simulate(b), simulate(b, memo=False)
    assert fast.end == full.end and fast.stats == full.stats
    assert fast.channels == full.channels
    assert (fast.memo_iterations > 0) == replayed


def test_memo_is_exact_on_a_quantized_model():
    """GPT-2 124M with lutmv layers on one card: memo and full simulation agree bit for bit
    (on 4 cards: test_model.py's memo tests)."""
    from dfx.compiler.driver import compile_model

    b = compile_model("gpt2", cards=1, weights=False, quant="bcq:q=3,g=128").binary
    fast, full = simulate(b, 3, 3), simulate(b, 3, 3, memo=False)
    assert fast.memo_iterations > 0
    assert fast.end == full.end and fast.stats == full.stats
    assert fast.token_times == full.token_times and fast.channels == full.channels
