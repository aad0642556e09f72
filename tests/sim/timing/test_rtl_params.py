"""The timing model's figures are the RTL's (docs/timing.md, "Parameters"): every latency,
queue depth and schedule figure the model uses (``derive``) is the RTL component's own
property, read from the components built from the same configuration (``ControlUnit``,
``Issue``, the backend's scoreboard sizes, the unit ports, ``Mpu``, ``Vpu``, ``LutGemm``,
``MemorySystem``): a test fails when they differ. The rules that use them are checked against
the whole core RTL cycle for cycle in test_core_timing.py."""

from __future__ import annotations

import pytest
from timing_helpers import rtl_units

from dfx.isa.config import load_core
from dfx.rtl.vpu import VpuOp
from dfx.sim.timing import derive

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

@pytest.mark.parametrize("name", ["dfx-u280", "tiny"])
def test_model_parameters_are_the_rtl_units_properties(name):
    core = load_core(name)
    p, u = derive(core), rtl_units(core)
    mpu, vpu, lut = u.mpu, u.vpu, u.lut
    # MPU: the zig-zag block is the RTL's interleave (whole output vectors covering the
    # accumulator: the model's old grouping, now the RTL's default too), fill the whole unit
    # (MFU, all of SFU_M, the output buffer; core.mpu.sfu_latency is only its GELU stage)
    assert p.zigzag == mpu.interleave
    per_vector = core.d // core.l
    assert mpu.interleave % per_vector == 0 and mpu.interleave - per_vector < mpu.add_latency
    assert p.accumulate == mpu.add_latency
    assert p.fill == mpu.latency == mpu.mfu_latency + mpu.sfu_latency + 1
    assert mpu.sfu_latency > core.mpu.sfu_latency
    assert p.max_tail == mpu.rowmax_latency - mpu.latency
    assert (p.mpu_bias, p.mpu_epilogue) == (mpu.bias_latency, mpu.epilogue_latency)
    # VPU: every element-wise latency, every reduction's and scalar op's result latency
    assert p.vpu_latency == {op.name.lower(): lat for op, lat in vpu.latencies.items()}
    results = [VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX, VpuOp.VARGMAX, VpuOp.SADD, VpuOp.SSUB,
               VpuOp.SMUL, VpuOp.SRECIP, VpuOp.SRSQRT]
    assert p.vpu_result == {op.name.lower(): vpu.result_latency(op) for op in results}
    assert p.vpu_empty == vpu.empty_result_latency
    # vacc/vaccsq include the multiplier-bank stage (a*1, a*a), the same for both
    assert p.vpu_result["vacc"] == p.vpu_result["vaccsq"] > (
        core.vpu.acc_tree_latency + core.vpu.acc_add_latency + core.vpu.acc_convert_latency)
    # LUT-GEMM: sizes, stage latencies and per-group cycle counts
    lp = p.lut
    assert (lp.lanes, lp.slice, lp.scalers, lp.max_q, lp.max_rows, lp.max_group) == (
        lut.lanes, lut.slice, lut.scalers, lut.max_q, lut.max_rows, lut.max_group)
    assert (lp.first_lookup, lp.handover, lp.result_latency) == (
        lut.first_lookup_latency, lut.handover_latency, lut.result_latency)
    for n in (1, lut.scalers, lut.lanes + 1, 3 * lut.lanes):
        for gs in (1, 3):
            for q in range(1, lut.max_q + 1):
                assert 5 * lp.lane_cycles(n, gs, q) == lut.lane_cycles(n, 5, gs, q)
                assert lp.scaler_cycles(n, q) == lut.scaler_cycles(n, q)


@pytest.mark.parametrize("name", ["dfx-u280", "tiny"])
def test_control_issue_port_and_memory_figures_are_the_rtl_properties(name):
    """The firing rules (ControlUnit), the unit queues (Issue), the scoreboard (Backend),
    the unit ports' buffers and the memory system's geometry, queues and latencies."""
    from dfx.rtl.controller.unit import ControlUnit
    from dfx.rtl.core import backend, lut_port, mover, mpu_port, vpu_port
    from dfx.rtl.dma.geometry import MEM_SPACES, Geometry
    from dfx.rtl.dma.system import MemorySystem
    from dfx.rtl.issue.issue import Issue

    core = load_core(name)
    p = derive(core)
    cu = ControlUnit.from_core(core)
    assert (p.issue, p.branch_penalty, p.first_fire, p.int_latency) == (
        cu.issue_cycles, cu.branch_penalty, cu.first_fire_delay, cu.int_latency)
    assert (p.lw_delay, p.rd_delay, p.outstanding) == (
        cu.lw_result_delay, cu.rd_write_delay, cu.mem_outstanding)
    issue = Issue(core, writers=backend.WRITERS, readers=backend.READERS)
    assert (p.queue, issue.queue_latency) == (issue.queue_depth, 1)
    assert (p.sb_writers, p.sb_readers) == (backend.WRITERS, backend.READERS)
    from dfx.rtl.issue.issue import command_layout

    cmd = command_layout(core, backend.WRITERS, backend.READERS)
    sb = {"writers": backend.WRITERS, "readers": backend.READERS}
    u = rtl_units(core)
    vport = vpu_port.VpuPort(core, cmd, vpu=u.vpu, **sb)
    assert (p.vpu_slots, p.vpu_cmds, p.vpu_vdests, p.vpu_sdests) == (
        vport.operand_slots, vport.command_slots, vport.vector_dests, vport.scalar_dests)
    mport = mpu_port.MpuPort(core, cmd, mpu=u.mpu, **sb)
    assert (p.mpu_slots, p.mpu_outs) == (mport.x_slots, mport.out_depth)
    lport = lut_port.LutPort(core, cmd, lut=u.lut, **sb)
    assert (p.lut_slots, p.lut_outs, p.lut_epilogue) == (
        lport.x_slots, lport.out_depth, lport.epilogue_latency)
    mov = mover.VectorMover(core, cmd, reads={}, writes={}, elements=False, **sb)
    assert p.store_slots == mov.store_slots
    ms = MemorySystem.from_core(core)
    g = Geometry.from_core(core)
    m = p.mem
    assert (m.ports, m.beat_bytes, m.row_bytes) == (g.channels, g.beat_bytes, g.row_bytes)
    assert m.block_rows == {s.name.lower(): g.block_rows(s) for s in MEM_SPACES}
    assert m.credits == {"hbm": g.read_credits, "ddr": g.ddr_credits}
    assert m.cmd_to_op == ms.cmd_to_op
    assert (m.r_to_row, m.row_to_vector, m.load_done) == (
        ms.r_to_row, ms.row_to_vector, ms.load_done)
    assert m.b_to_done == ms.write_to_done and m.b_to_done["hbm"] == ms.b_to_done
    assert m.wbuf_latency + 1 == ms.op_to_wbuf_row
    fab = ms.fabric
    assert (m.op_depth, m.order_depth, m.wdata_depth) == (
        fab.spaces["hbm"].op_depth, fab.order_depth, fab.spaces["hbm"].wdata_depth)
    assert fab.spaces["ddr"].wdata_depth == m.wdata_depth
    assert (m.dma_cmd_depth, m.dma_done_depth, m.dma_place_depth, m.place_latency) == (
        ms.dma.cmd_depth, ms.dma.done_depth, ms.dma.place_depth, ms.dma.place_latency)
    assert (m.ws_cmd_depth, m.lut_cmd_depth, m.word_depth) == (
        ms.weights.cmd_depth, ms.lut_stream.cmd_depth, ms.word.depth)
    assert p.outstanding <= m.word_depth
    # the testbench memory is the model's channel timing
    from dfx.rtl.tb.mem_model import ChannelTiming, MemLayout

    lay = MemLayout.from_core(core)
    assert lay.hbm_timing == ChannelTiming.from_channels(p.hbm, m.beat_bytes)
    assert lay.ddr_timing == ChannelTiming.from_channels(p.ddr, m.beat_bytes)

