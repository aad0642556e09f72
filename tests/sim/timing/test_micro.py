"""Micro-programs whose cycle counts are derived by hand from the configuration values and the
RTL components' properties, with the rules of docs/timing.md (the same rules are checked
against the core RTL cycle for cycle in test_core_timing.py).

Conventions: cycle 0 is the first fetch; instruction 0 fires at ``first_fire``; a unit port
takes a command the cycle after its push and reads its first vector the cycle after that; a
vector read in r enters a unit in r + 1; a result written into the VRF / SRF in w is
available in w + 1; the core is done the cycle after its last event (and after halt), and
the model's end is the core's ``cycles`` register: done + 1."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest
from timing_helpers import cycles, micro, rtl_units, vpu_op

from dfx.isa.config import load_core
from dfx.sim.timing import TimingError, derive, simulate


def end_of(last_event: int) -> int:
    """The model's end (the core's cycle count) when the last event is in cycle t: done in
    t + 1, counted from cycle 0."""
    return last_event + 2


def vlat(core, op):
    """An element-wise VPU op: vector in -> its result out (``Vpu.latencies``)."""
    return rtl_units(core).vpu.latencies[vpu_op(op)]


def rlat(core, op):
    """A reduction (from its last vector in) or scalar op: -> result (``Vpu.result_latency``)."""
    return rtl_units(core).vpu.result_latency(vpu_op(op))


def test_straight_line_fires_one_per_cycle(u280):
    """Instruction 0 fires ``branch_penalty`` cycles after the first fetch, then one per
    ``issue_cycles``; done the cycle after halt."""
    p = derive(u280)
    assert p.first_fire == u280.timing.branch_penalty
    b = micro("nop\nli rd=r1, imm=3\naddi rd=r2, rs1=r1, imm=1\nhalt\n")
    halt = p.first_fire + 3 * u280.timing.issue_cycles
    assert simulate(b).end == [end_of(halt)]


def test_loop_and_branch_costs(u280):
    """A hardware loop of 3 x (one addi): each redirect (the back-edges, a taken branch) adds
    ``branch_penalty`` cycles: the target fires 1 + penalty cycles after the redirect."""
    p = derive(u280)
    pen = u280.timing.branch_penalty
    b = micro("li rd=r1, imm=0\nloop count=3, body=2\naddi rd=r1, rs1=r1, imm=1\nendloop\n"
              "jmp target=@+1\nhalt\n")
    # li, loop, 3 x (addi, endloop) with 2 back-edges, jmp (taken), halt
    fires = 2 + 3 * 2 + 1 + 1
    halt = p.first_fire + fires - 1 + 3 * pen
    assert simulate(b).end == [end_of(halt)]


def test_lw_round_trip_on_hbm(u280):
    """lw: its op leaves the word port the cycle after it fires (``cmd_to_op``), the space
    takes it, the AXI port dequeues it the cycle after and raises AR the cycle after that;
    the beat comes the memory latency later, the row reaches the word port ``r_to_row`` after
    it, the response is that cycle and the register is available ``lw_delay`` later."""
    p = derive(u280)
    m = p.mem
    b = micro("lw rd=r1, mem=hbm[r0+64]\naddi rd=r2, rs1=r1, imm=1\nhalt\n")
    lw = p.first_fire
    ar = lw + m.cmd_to_op["word"] + 2
    resp = ar + cycles(u280.b.hbm.read_latency_ns, u280) + m.r_to_row
    addi = resp + p.lw_delay
    assert simulate(b).end == [end_of(addi + 1)]


def test_vpu_port_and_chaining(u280):
    """vadd then a dependent vmul (4 vectors each). vadd: taken F + 1, read F + 2.., into the
    VPU F + 3.., written latency later. vmul fires when the unit queue has room (the port took
    vadd), is taken at vadd's last read, reads vector i once vadd has written it."""
    p = derive(u280)
    n = 4
    f = p.first_fire
    b = micro(f"vadd y=v[r0+10], a=v[r0+0], b=v[r0+4], n={n}\n"
              f"vmul y=v[r0+20], a=v[r0+10], b=v[r0+10], n={n}\nhalt\n")
    add_in = [f + 3 + i for i in range(n)]
    add_avail = [x + vlat(u280, "vadd") + 1 for x in add_in]
    take = max(f + 2 + 1, f + 2 + n - 1)  # vmul fires at f + 2; vadd's last read
    reads = []
    r = take
    for i in range(n):
        r = max(r + 1, add_avail[i])
        reads.append(r)
    mul_in = [x + 1 for x in reads]
    assert mul_in[0] + vlat(u280, "vmul") > add_in[-1] + vlat(u280, "vadd")  # in order
    assert simulate(b).end == [end_of(mul_in[-1] + vlat(u280, "vmul"))]


@pytest.mark.parametrize("core_name", ["dfx-u280", "tiny"])
@pytest.mark.parametrize("op", ["vacc", "vaccsq"])
def test_vacc_streams_one_vector_per_cycle_into_an_exact_accumulator(core_name, op):
    """A LayerNorm reduction (n = 24 vectors): into the VPU one per cycle from F + 3, through
    the multiplier bank (a*1 or a*a) into the exact accumulator; the FP32 result comes the
    multiplier stage + tree + accumulate + convert after the last one, the same for vacc and
    vaccsq, written into the SRF in that cycle."""
    core = load_core(core_name)
    p = derive(core)
    n = 24
    b = micro(f"{op} sd=s3, a=v[r0+0], n={n}\nhalt\n", core)
    v = core.vpu
    assert rlat(core, op) == (v.mul_latency - rtl_units(core).vpu.cvt_latency
                              + v.acc_tree_latency + v.acc_add_latency + v.acc_convert_latency)
    last_in = p.first_fire + 3 + n - 1
    assert simulate(b).end == [end_of(last_in + rlat(core, op))]


def test_reductions_share_one_result_register(u280):
    """Two independent reductions: the second one's first vector goes in the cycle after the
    first one's result (SFU_V's result register); its reads run ahead by the operand slots."""
    p = derive(u280)
    n = 3
    b = micro(f"vacc sd=s3, a=v[r0+0], n={n}\nvmax sd=s4, a=v[r0+0], n={n}\nhalt\n")
    res1 = p.first_fire + 3 + n - 1 + rlat(u280, "vacc")
    res2 = res1 + 1 + n - 1 + rlat(u280, "vmax")
    assert simulate(b).end == [end_of(res2)]


def test_vector_results_leave_in_order(u280):
    """vadd then an independent vmov: vmov's short path would overtake vadd's results, so its
    first vector goes in only when its result lands right after vadd's last."""
    p = derive(u280)
    n = 4
    b = micro(f"vadd y=v[r0+10], a=v[r0+0], b=v[r0+4], n={n}\n"
              f"vmov y=v[r0+20], a=v[r0+0], n={n}\nhalt\n")
    vadd_last = p.first_fire + 3 + n - 1 + vlat(u280, "vadd")
    assert vlat(u280, "vmov") < vlat(u280, "vadd")
    assert simulate(b).end == [end_of(vadd_last + n)]  # vmov's n results right behind


def test_conv1d_tiles_wait_for_their_block_bias(u280):
    """conv1d kt=2, nt=12 (one zig-zag block of the RTL's interleave) with weights in HBM and
    the bias in DDR: the streamer asks for the block's bias (one DDR op) and then its tiles
    (one op each, one per cycle); the MPU's rows come back in its op order, so the first tile
    waits for the bias row; then one tile per cycle; an output vector is valid ``fill`` after
    its last tile (the block's last reduction step), written that cycle."""
    p = derive(u280)
    m = p.mem
    kt, nt = 2, 12
    assert rtl_units(u280).mpu.interleave == nt
    b = micro(f"conv1d y=v[r0+100], x=v[r0+0], w=hbm[r0+0], b=ddr[r0+0], kt={kt}, nt={nt}\n"
              "halt\n")
    f = p.first_fire
    bias_op = f + m.cmd_to_op["mpu"]
    bias_beats = nt * 2 * u280.l // m.beat_bytes  # one burst on the DDR port
    ddr_rate = p.ddr.bytes_per_cycle
    last_beat = bias_op + 2 + p.ddr.latency + math.ceil((bias_beats - 1) * m.beat_bytes
                                                        / ddr_rate)
    bias_row = last_beat + m.r_to_row
    tile_row0 = bias_op + 1 + 2 + p.hbm.latency + m.r_to_row
    first_tile = max(bias_row + 1, tile_row0)
    last_tile = first_tile + kt * nt - 1
    assert simulate(b).end == [end_of(last_tile + p.fill)]


def test_accumulator_latency_throttles_narrow_matrices(u280):
    """Score x Value: nt = 4 output tiles, kt = 3 reduction steps. Each column accumulates
    over k in order, so after a round of a short block the MPU waits add_latency - 4 cycles
    (the RTL's bubbles) before the next; the tiles wait in the memory's buffers."""
    p = derive(u280)
    m = p.mem
    kt, nt = 3, 4
    b = micro(f"mm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt={kt}, nt={nt}\nhalt\n")
    first_op = p.first_fire + m.cmd_to_op["mpu"]
    t0 = first_op + 2 + p.hbm.latency + m.r_to_row
    step = max(nt, rtl_units(u280).mpu.add_latency)
    last_tile = t0 + (kt - 1) * step + nt - 1
    assert simulate(b).end == [end_of(last_tile + p.fill)]


def test_read_after_write_on_one_axi_port(u280):
    """A store then a load of the same vector (HBM): the load's read on that port waits for
    the store's B response (AXI does not order a read after a write)."""
    p = derive(u280)
    m = p.mem
    f = p.first_fire
    b = micro("store dst=hbm[r0+0], src=vrf[r0+0], n=64\n"
              "load dst=vrf[r0+10], src=hbm[r0+0], n=64\nhalt\n")
    # store: op at F + cmd_to_op; the mover takes it at F + 1 and reads at F + 2; the Placer
    # takes the vector at F + 3 (after its op) and gives the row place_latency later; the space
    # distributes it, the port's W queue has it a cycle later: one beat per port
    op = f + m.cmd_to_op["dma"]
    placer = max(f + 3, op + 1)
    wfire = max(placer + m.place_latency, op + 1)
    w0 = max(wfire + 1, op + 1 + 2)
    b_resp = w0 + 1  # one beat at one beat per cycle
    # load: its op follows the store's (the address side: idle, start, op)
    load_op = op + 3
    ar = max(load_op + 1, b_resp + 1) + 1
    row = ar + p.hbm.latency + m.r_to_row
    vec = row + m.row_to_vector
    done = vec + m.load_done
    assert simulate(b).end == [end_of(max(vec, done))]


def link(core):
    """(cycles per vector as a fraction, cycles per link beat, wire cycles, router latency)
    from the configuration: a vector is ceil(16·d / link_bits) beats of link_bits, the
    smallest multiple of qsfp.user_bits that carries a core cycle's payload."""
    q = core.b.qsfp
    payload = (Fraction(str(q.line_rate_gbps)) * 1000 * q.encoding_payload_bits
               / (Fraction(str(core.clock_mhz)) * q.encoding_line_bits))  # bits per cycle
    link_bits = q.user_bits * math.ceil(payload / q.user_bits)
    per_beat = Fraction(link_bits) / payload
    beats = math.ceil(16 * core.d / link_bits)
    rl = core.timing.router_latency
    wire = cycles(q.link_latency_ns + q.cable_delay_ns, core)
    return beats * per_beat, per_beat, wire, rl


def test_all_gather_step_between_two_cards(u280):
    """Each card sends 6 vectors to the next and receives 6 from the previous (send fires at F,
    its mover takes it at F + 1 and reads from F + 2; the router's tx_in takes each vector the
    cycle after its read, its first beat ``router_latency`` later). The vectors leave back to
    back (the link is slower than the VRF); vector i is valid on the receiver's rx_out
    ``wire − 1 + router_latency`` after its serialisation ends (rtl/router/timing.py) and is
    written into the VRF the cycle it is popped."""
    p = derive(u280)
    v = 6
    prog = f"send v=v[r0+0], n={v}\nrecv v=v[r0+{v}], n={v}\nhalt\n"
    b = micro([prog, prog])
    per_vector, _, wire, rl = link(u280)
    first_hs = p.first_fire + 3
    last_arrival = math.ceil(first_hs + rl + v * per_vector) + wire - 1 + rl
    assert simulate(b).end == [end_of(last_arrival)] * 2


def test_credit_back_pressure_with_a_small_fifo(u280):
    """With a 4-vector receive FIFO the fifth vector waits for the credit of the first: the
    receiver pops vector 0, offers a credit beat the cycle after (one link beat), it reaches
    the sender ``wire − 1`` after its serialisation and tx_in may take vector 4 the cycle
    after that (rtl/router rx.py, tx.py)."""
    core = dataclasses.replace(u280, buffers=dataclasses.replace(u280.buffers,
                                                                 router_fifo_vectors=4))
    p = derive(core)
    b = micro(["send v=v[r0+0], n=5\nhalt\n", "recv v=v[r0+0], n=5\nhalt\n"], core=core)
    per_vector, per_beat, wire, rl = link(core)
    first_hs = p.first_fire + 3
    pop0 = math.ceil(first_hs + rl + per_vector) + wire - 1 + rl
    credit0 = math.ceil(pop0 + 1 + per_beat) + wire - 1 + 1
    arrival4 = math.ceil(credit0 + rl + per_vector) + wire - 1 + rl
    res = simulate(b)
    assert res.end[1] == end_of(arrival4)
    assert arrival4 > math.ceil(first_hs + rl + 5 * per_vector) + wire - 1 + rl


def test_ring_deadlock_is_one_line_error(u280):
    core = dataclasses.replace(u280, buffers=dataclasses.replace(u280.buffers,
                                                                 router_fifo_vectors=4))
    prog = "send v=v[r0+0], n=9\nrecv v=v[r0+16], n=9\nhalt\n"
    with pytest.raises(TimingError, match="deadlock") as e:
        simulate(micro([prog, prog], core=core))
    assert "\n" not in str(e.value)


def test_negative_count_and_missing_ring_are_errors(u280):
    with pytest.raises(TimingError, match="negative"):
        simulate(micro("li rd=r1, imm=-5\nvadd y=v[r0+0], a=v[r0+1], b=v[r0+2], n=r1\nhalt\n"))
    with pytest.raises(TimingError, match="needs the ring"):
        simulate(micro("send v=v[r0+0], n=1\nhalt\n"))


def test_single_beats_cost_whole_cycles_on_the_tiny_board():
    """On the tiny board a pseudo-channel sustains 14.4 B/cycle < the 16-byte beat, and every
    transfer starts on a cycle boundary: a one-beat read holds its channel ceil(16 / 14.4) = 2
    cycles, so a weight stream (one single-beat read per port per tile) moves a tile every 2
    cycles."""
    core = load_core("tiny")
    p = derive(core)
    m = p.mem
    assert p.hbm.bytes_per_cycle < m.beat_bytes
    s = math.ceil(Fraction(m.beat_bytes) / p.hbm.bytes_per_cycle)
    assert s == 2
    kt, nt = 4, 2  # one block of 2 groups: 8 tiles
    b = micro(f"mm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt={kt}, nt={nt}\nhalt\n", core=core)
    first_op = p.first_fire + m.cmd_to_op["mpu"]
    t0 = first_op + 2 + p.hbm.latency + m.r_to_row
    last_tile = t0 + s * (kt * nt - 1)
    assert simulate(b).end == [end_of(last_tile + p.fill)]
