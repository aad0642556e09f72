"""Micro-programs whose cycle counts are derived by hand from the configuration values and the
RTL units' latency properties (docs/timing.md gives each rule used below)."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest
from timing_helpers import bytes_per_cycle, cycles, micro, rtl_units, vpu_op

from dfx.isa.config import load_core
from dfx.sim.timing import TimingError, simulate


def hbm_rate(core):
    h = core.b.hbm
    return bytes_per_cycle(h.pc_bandwidth_gbs, h.efficiency, core)


def ddr_rate(core):
    d = core.b.ddr
    return bytes_per_cycle(d.channel_bandwidth_gbs, d.efficiency, core)


def mpu_fill(core):
    """Tile in -> the vector it completes valid on the MPU's output: MFU (multipliers, adder
    tree, accumulator) + SFU_M (bias, scale, round, GELU, vectorizer) + output buffer."""
    mpu = rtl_units(core).mpu
    assert mpu.latency == mpu.mfu_latency + mpu.sfu_latency + 1
    return mpu.latency


def vlat(core, op):
    """An element-wise VPU op: vector in -> its result out (``Vpu.latencies``)."""
    return rtl_units(core).vpu.latencies[vpu_op(op)]


def rlat(core, op):
    """A reduction (from its last vector in) or scalar op: -> result (``Vpu.result_latency``)."""
    return rtl_units(core).vpu.result_latency(vpu_op(op))


def test_copy_hbm_to_wbuf_streams_at_the_pseudo_channel_rate(u280):
    """One DMA stream: 1 MiB from HBM (interleaved over all pseudo-channels) into the weight
    buffer. Reads start after the HBM latency; each channel moves its share at
    min(512-bit port, 14.375 GB/s x efficiency); the weight buffer takes one tile per cycle."""
    nbytes = 1 << 20
    b = micro(f"copy dst=wbuf[r0+0], src=hbm[r0+0], n={nbytes // 2}\nhalt\n")
    h = u280.b.hbm
    per_channel = nbytes // h.pseudo_channels  # contiguous: every channel gets the same share
    read = math.ceil(Fraction(per_channel) / hbm_rate(u280))
    write = math.ceil(Fraction(nbytes) / u280.tile_bytes)  # one tile per cycle
    first = cycles(h.read_latency_ns, u280)
    expected = max(first + 1 + write, first + read + 1)
    assert simulate(b).end == [expected]


def test_load_from_ddr_is_channel_bound_then_one_vector_per_cycle(u280):
    """A LayerNorm parameter load: 1536 FP16 from DDR. Vector i is in the VRF one cycle after
    its last burst arrives: latency + ceil((i+1) x bursts / vectors) + 1."""
    n = 1536
    b = micro(f"load dst=vrf[r0+0], src=ddr[r0+0], n={n}\nhalt\n")
    d = u280.b.ddr
    bursts = 2 * n // d.burst_bytes
    dur = math.ceil(bursts * d.burst_bytes / ddr_rate(u280))
    nv = n // u280.d
    first = cycles(d.read_latency_ns, u280)
    last = max(first + math.ceil(Fraction((i + 1) * dur, nv)) + 1 for i in range(nv))
    assert simulate(b).end == [last]


def test_conv1d_streams_one_tile_per_cycle_after_latency_and_fill(u280):
    """conv1d kt=24, nt=24 from HBM: tiles arrive after the HBM latency, one per cycle (a tile
    is one 64-byte beat on each of the 32 pseudo-channels); output vector j (tiles of l = 16
    columns, d/l = 4 per vector) is ready a fill latency after its last tile."""
    kt = nt = 24
    b = micro(f"conv1d y=v[r0+1000], x=v[r0+0], w=hbm[r0+0], b=ddr[r0+0], kt={kt}, nt={nt}\n"
              "halt\n")
    h = u280.b.hbm
    assert u280.tile_bytes == h.pseudo_channels * h.interleave_bytes
    assert hbm_rate(u280) == h.interleave_bytes  # the 512-bit port binds: 1 beat per cycle
    t0 = cycles(h.read_latency_ns, u280) + 1  # first tile in the MPU
    group = u280.d // u280.l
    last_step = nt * kt - 1
    assert nt % group == 0
    expected = t0 + last_step + mpu_fill(u280)
    res = simulate(b, trace_tokens=0)
    assert res.end == [expected]
    from dfx.sim.timing.card import S_BUSY, S_TILES, U_MPU
    assert res.stats[0][S_TILES] == kt * nt
    assert res.stats[0][S_BUSY + U_MPU] == kt * nt


def test_maskedmm_row_max_then_dependent_vector_op(u280):
    """maskedmm kt=1, nt=8 (two output vectors), its row maximum one register after the last
    vector (the RTL's rowmax_latency - latency), then vsubs that needs that scalar and chains
    on the score vectors."""
    b = micro("maskedmm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt=1, nt=8, limit=r0, scale=s2, "
              "max=s8\n"
              "vsubs y=v[r0+100], a=v[r0+100], s=s8, n=2\n"
              "halt\n")
    t0 = cycles(u280.b.hbm.read_latency_ns, u280) + 1
    fill = mpu_fill(u280)
    out = [t0 + 3 + fill, t0 + 7 + fill]  # last tile steps of the two vectors: 3 and 7
    mpu = rtl_units(u280).mpu
    row_max = out[-1] + mpu.rowmax_latency - mpu.latency
    # vsubs issues when s8 is valid; it reads one vector per cycle, each available
    reads = [row_max, row_max + 1]
    expected = reads[-1] + vlat(u280, "vsubs")
    assert simulate(b).end == [expected]


def test_dependent_vector_chain_overlaps_by_chaining(u280):
    """vadd -> vmul -> vexp on 4 vectors: each starts when its producer's first vector is
    available and streams one vector per cycle, so the chain costs the sum of the latencies
    plus n - 1 (the results also leave the VPU in order: each op's first result comes after
    its producer's last)."""
    n = 4
    b = micro(f"vadd y=v[r0+10], a=v[r0+0], b=v[r0+4], n={n}\n"
              f"vmul y=v[r0+20], a=v[r0+10], b=v[r0+10], n={n}\n"
              f"vexp y=v[r0+30], a=v[r0+20], n={n}\n"
              "halt\n")
    lats = [vlat(u280, op) for op in ("vadd", "vmul", "vexp")]
    assert simulate(b).end == [sum(lats) + n - 1]


@pytest.mark.parametrize("core_name", ["dfx-u280", "tiny"])
@pytest.mark.parametrize("op", ["vacc", "vaccsq"])
def test_vacc_streams_one_vector_per_cycle_into_an_exact_accumulator(core_name, op):
    """A LayerNorm reduction (n = 24 vectors, 1536 elements at d = 64): the vectors are read in
    cycles 0..n-1, one per cycle, through the multiplier bank (a*1 or a*a) into the exact
    accumulator; the FP32 result comes the multiplier stage + tree + accumulate + convert after
    the last one, the same for vacc and vaccsq (5 + 4 + 2 + 3 at dfx-u280, instead of
    66 + 24 x 11 with the old sequential FP32 chain)."""
    core = load_core(core_name)
    n = 24
    b = micro(f"{op} sd=s3, a=v[r0+0], n={n}\nhalt\n", core)
    v = core.vpu
    assert rlat(core, op) == (v.mul_latency - rtl_units(core).vpu.cvt_latency
                              + v.acc_tree_latency + v.acc_add_latency + v.acc_convert_latency)
    assert simulate(b).end == [n - 1 + rlat(core, op)]


def test_vacc_chains_on_its_producer_and_feeds_a_scalar_op(u280):
    """vexp -> vacc -> smul (the softmax row sum, then a scalar op on it): the VPU takes vacc
    after vexp's last input (cycle n) and vacc reads vector i no earlier than vexp has written
    it (its latency + i), one per cycle; the sum is ready its result latency after the last
    one; smul needs the sum and SFU_V's result register: it starts the cycle after the sum
    appears."""
    for n in (2, 5):  # producer-bound (n < vexp's latency) and VPU-bound
        b = micro(f"vexp y=v[r0+10], a=v[r0+0], n={n}\n"
                  f"vacc sd=s3, a=v[r0+10], n={n}\n"
                  "smul sd=s4, sa=s3, sb=s5\n"
                  "halt\n")
        last = max(n, vlat(u280, "vexp")) + n - 1
        total = last + rlat(u280, "vacc")
        assert simulate(b).end == [total + 1 + rlat(u280, "smul")]


@pytest.mark.parametrize("first, second", [("vaccsq", "vacc"), ("vacc", "vmax"),
                                           ("vmax", "vaccsq")])
def test_reductions_share_one_result_register(u280, first, second):
    """Back-to-back independent reductions: SFU_V has one result register, so the second
    reduction's first vector goes in only in the cycle after the first one's result (the VPU
    in between is free for vector ops)."""
    n = 3
    b = micro(f"{first} sd=s3, a=v[r0+0], n={n}\n"
              f"{second} sd=s4, a=v[r0+0], n={n}\n"
              "halt\n")
    res1 = n - 1 + rlat(u280, first)
    assert simulate(b).end == [res1 + 1 + n - 1 + rlat(u280, second)]


def test_vector_results_leave_in_order(u280):
    """vadd then an independent vmov: vmov's short path would overtake vadd's results, so it
    starts only when its first result comes right after vadd's last (the output-slot rule)."""
    n = 4
    b = micro(f"vadd y=v[r0+10], a=v[r0+0], b=v[r0+4], n={n}\n"
              f"vmov y=v[r0+20], a=v[r0+0], n={n}\n"
              "halt\n")
    vadd_last = n - 1 + vlat(u280, "vadd")
    assert vlat(u280, "vmov") < vlat(u280, "vadd")
    assert simulate(b).end == [vadd_last + n]  # vmov's n results right behind vadd's


def test_vacc_of_nothing_then_a_scalar_op(u280):
    """vacc n = 0 takes the VPU for one cycle and writes +0 through the result register; smul
    on it starts the cycle after (the result register), then takes its own latency."""
    empty = rtl_units(u280).vpu.empty_result_latency
    b = micro("vacc sd=s3, a=v[r0+0], n=0\nsmul sd=s4, sa=s3, sb=s3\nhalt\n")
    assert simulate(b).end == [empty + 1 + rlat(u280, "smul")]


def test_write_after_read_waits_for_the_matrix_stream(u280):
    """A vector op overwriting the MPU's x operand waits until the matrix stream has ended."""
    kt, nt = 4, 12  # one zig-zag group of 12 tiles: no accumulator bubbles (12 >= add latency)
    assert nt >= u280.mpu.add_latency
    b = micro(f"mm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt={kt}, nt={nt}\n"
              "vmov y=v[r0+0], a=v[r0+50], n=1\n"
              "halt\n")
    t0 = cycles(u280.b.hbm.read_latency_ns, u280) + 1
    stream_end = t0 + kt * nt  # one tile per cycle
    mm_done = t0 + kt * nt - 1 + mpu_fill(u280)
    vmov_done = stream_end + vlat(u280, "vmov")  # issues the cycle after the last read
    assert simulate(b).end == [max(mm_done, vmov_done)]


def test_accumulator_latency_throttles_narrow_matrices(u280):
    """Score x Value: nt = 4 output tiles, kt = 3 reduction steps. Each column accumulates
    over k in order (docs/numerics.md), so step k + 1 starts no earlier than add_latency
    after step k (the RTL's bubbles): 3 steps of max(4, 11) cycles, the last one only its 4
    tiles."""
    kt, nt = 3, 4
    b = micro(f"mm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt={kt}, nt={nt}\nhalt\n")
    t0 = cycles(u280.b.hbm.read_latency_ns, u280) + 1
    step = max(nt, rtl_units(u280).mpu.add_latency)
    last_tile = t0 + (kt - 1) * step + nt - 1
    assert simulate(b).end == [last_tile + mpu_fill(u280)]


def test_conv1d_outputs_complete_per_zigzag_group(u280):
    """conv1d kt=2, nt=24: zig-zag blocks of the RTL's interleave, 12 tiles (3 output vectors,
    the fewest whole vectors covering the 11-cycle accumulator); a vector is ready after its
    block's last reduction step reaches its last tile. A dependent vmov chains on the first
    vector."""
    kt, nt = 2, 24
    b = micro(f"conv1d y=v[r0+100], x=v[r0+0], w=hbm[r0+0], b=ddr[r0+0], kt={kt}, nt={nt}\n"
              "vmov y=v[r0+200], a=v[r0+100], n=1\n"
              "halt\n")
    per_vec = u280.d // u280.l
    mpu = rtl_units(u280).mpu
    zig = mpu.interleave
    assert zig == per_vec * math.ceil(mpu.add_latency / per_vec)
    t0 = cycles(u280.b.hbm.read_latency_ns, u280) + 1
    step = max(zig, mpu.add_latency)
    first_vector = t0 + (kt - 1) * step + per_vec - 1 + mpu_fill(u280)
    group_end = (kt - 1) * step + zig  # group 1 starts after group 0's last step
    last_vector = t0 + group_end + (kt - 1) * step + zig - 1 + mpu_fill(u280)
    vmov = first_vector + vlat(u280, "vmov")
    assert simulate(b).end == [max(last_vector, vmov)]


def link(core):
    """(cycles per vector as a fraction, hop cycles, router latency) from the configuration."""
    q = core.b.qsfp
    payload = Fraction(str(q.line_rate_gbps)) * q.encoding_payload_bits / q.encoding_line_bits
    per_vector = Fraction(16 * core.d) * Fraction(str(core.clock_mhz)) / (payload * 1000)
    rl = core.timing.router_latency
    wire = cycles(q.link_latency_ns + q.cable_delay_ns, core)
    return per_vector, wire + rl, rl


def test_all_gather_step_between_two_cards(u280):
    """Each card sends 6 vectors to the next and receives 6 from the previous. The vectors
    leave back to back (the link is slower than the VRF), vector i arrives after its
    serialisation plus the hop, and is popped into the VRF the cycle it arrives."""
    v = 6
    prog = f"send v=v[r0+0], n={v}\nrecv v=v[r0+{v}], n={v}\nhalt\n"
    b = micro([prog, prog])
    per_vector, hop, rl = link(u280)
    last_arrival = math.ceil(rl + v * per_vector) + hop  # first vector enters at cycle rl
    assert simulate(b).end == [last_arrival + 1, last_arrival + 1]


def test_credit_back_pressure_with_a_small_fifo(u280):
    """With a 4-vector receive FIFO the fifth vector waits for the credit of the first: it can
    start once vector 0 has been popped and the news has crossed the link back."""
    core = dataclasses.replace(u280, buffers=dataclasses.replace(u280.buffers,
                                                                 router_fifo_vectors=4))
    b = micro(["send v=v[r0+0], n=5\nhalt\n", "recv v=v[r0+0], n=5\nhalt\n"], core=core)
    per_vector, hop, rl = link(core)
    credit = hop  # link layer + cable + the receiver's router
    pop0 = math.ceil(rl + per_vector) + hop
    start4 = pop0 + credit
    arrival4 = math.ceil(start4 + per_vector) + hop
    res = simulate(b)
    assert res.end[1] == arrival4 + 1
    assert arrival4 > math.ceil(rl + 5 * per_vector) + hop  # the FIFO really throttled it


def test_ring_deadlock_is_one_line_error(u280):
    core = dataclasses.replace(u280, buffers=dataclasses.replace(u280.buffers,
                                                                 router_fifo_vectors=4))
    prog = "send v=v[r0+0], n=9\nrecv v=v[r0+16], n=9\nhalt\n"
    with pytest.raises(TimingError, match="deadlock") as e:
        simulate(micro([prog, prog], core=core))
    assert "\n" not in str(e.value)


def test_integer_loop_and_branch_costs(u280):
    """A hardware loop of 3 x (one addi): issue one per cycle, each back-edge pays the branch
    penalty; halt comes after the last iteration."""
    b = micro("li rd=r1, imm=0\nloop count=3\naddi rd=r1, rs1=r1, imm=1\nendloop\nhalt\n")
    t = u280.timing
    # li, loop, then 3 x (addi, endloop) with 2 taken back-edges, then halt
    issued = 2 + 3 * 2
    expected = (issued + 1) * t.issue_cycles + 2 * t.branch_penalty
    assert simulate(b).end == [expected]


def test_negative_count_and_missing_ring_are_errors(u280):
    with pytest.raises(TimingError, match="negative"):
        simulate(micro("li rd=r1, imm=-5\nvadd y=v[r0+0], a=v[r0+1], b=v[r0+2], n=r1\nhalt\n"))
    with pytest.raises(TimingError, match="needs the ring"):
        simulate(micro("send v=v[r0+0], n=1\nhalt\n"))


def test_efficiency_binds_on_a_board_whose_port_is_wider_than_the_memory():
    """On the tiny board the 128-bit DMA port moves more than a pseudo-channel sustains
    (1.6 GB/s x 0.9 at 100 MHz = 14.4 B/cycle < 16 B/cycle): the efficiency sets the rate."""
    from dfx.isa.config import load_core

    core = load_core("tiny")
    h = core.b.hbm
    rate = hbm_rate(core)
    assert rate < Fraction(core.timing.dma_port_bits, 8)
    nbytes = 4096
    b = micro(f"copy dst=wbuf[r0+0], src=hbm[r0+0], n={nbytes // 2}\nhalt\n", core=core)
    read = math.ceil(Fraction(nbytes // h.pseudo_channels) / rate)
    write = math.ceil(Fraction(nbytes) / core.tile_bytes)
    first = cycles(h.read_latency_ns, core)
    assert simulate(b).end == [max(first + 1 + write, first + read + 1)]
