"""The core testbench's job preparation (:mod:`dfx.rtl.tb.core_job`), the cache key of the
core Verilog (:mod:`dfx.rtl.tb.core_build`) and the host's fault mapping
(:func:`dfx.host.rtl_backend.fault_error`); pure Python, no simulator."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.asm import assemble
from dfx.isa.config import load_core
from dfx.isa.container import CardImage, Segment
from dfx.isa.encoding import encode_program
from dfx.rtl.tb.core_build import core_layout
from dfx.rtl.tb.core_job import PROG_ALIGN, CoreJob, CoreResult, card_job

CORE = load_core("tiny")
LAYOUT = core_layout(CORE)
PROG = encode_program(assemble("li rd=r1, imm=3\nhalt"))


def test_core_job_images_and_args(tmp_path):
    rng = np.random.default_rng(0)
    hbm = rng.integers(0, 256, 3000, dtype=np.uint8)
    ddr = rng.integers(0, 256, 100, dtype=np.uint8)
    img = CardImage(PROG, [Segment("hbm", 40, hbm), Segment("hbm", 5000, length=70, fill=7),
                           Segment("ddr", 10, ddr)],
                    symbols={"logits": {"space": "ddr", "addr": 200, "bytes": 5000}})
    job = card_job(img, CORE, LAYOUT, tmp_path, stall=3)
    # HBM: the pieces per channel are MemLayout's scatter of the linear image
    linear = np.zeros(5070, np.uint8)
    linear[40:3040] = hbm
    linear[5000:5070] = 7
    chans = {ld.channel: (tmp_path / ld.file).read_bytes() for ld in job.loads
             if ld.channel < LAYOUT.hbm_channels}
    for c, lo, piece in LAYOUT.hbm_scatter(0, linear.tobytes()):
        assert chans[c][lo:lo + len(piece)] == piece
    # DDR image, then the program above the logits symbol, page aligned
    prog_load = [ld for ld in job.loads if ld.file == "prog.bin"][0]
    off = prog_load.word * LAYOUT.beat_bytes
    assert off == -(-5200 // PROG_ALIGN) * PROG_ALIGN
    assert job.args["prog"] == LAYOUT.ddr_base + off
    assert job.args["prog_words"] == 2 and job.args["cards"] == 1
    assert job.args["ddr"] == LAYOUT.ddr_base
    assert [job.args[f"hbm{i:02d}"] for i in range(4)] == list(LAYOUT.hbm_bases)
    assert (tmp_path / "ddr.bin").read_bytes()[10:110] == ddr.tobytes()
    # the job survives its file
    again = CoreJob.read(job.write(tmp_path))
    assert again == job and again.stall == 3


def test_core_job_refuses_what_the_bench_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="on-chip wbuf"):
        card_job(CardImage(PROG, [Segment("wbuf", 0, length=64, fill=0)]), CORE, LAYOUT,
                 tmp_path)
    with pytest.raises(ValueError, match="past the"):
        card_job(CardImage(PROG, [Segment("ddr", LAYOUT.ddr_bytes, length=16, fill=0)]),
                 CORE, LAYOUT, tmp_path)


def test_core_result_round_trip(tmp_path):
    r = CoreResult("done", status=7, error_pc=3, error_word=(1 << 255) | 5, cycles=99,
                   sim_cycles=120, wall_s=0.5, reads={"tokens": b"\x01\x02"},
                   vrf=np.arange(16, dtype=np.uint16).reshape(2, 8),
                   srf=np.arange(4, dtype=np.uint32))
    r.write(tmp_path)
    s = CoreResult.read(tmp_path)
    assert (s.status, s.error_pc, s.error_word, s.cycles) == (7, 3, (1 << 255) | 5, 99)
    assert s.reads == r.reads and s.cycles_per_s == 240
    assert s.vrf.tolist() == r.vrf.tolist() and s.srf.tolist() == r.srf.tolist()


def test_core_top_ports(tmp_path):
    from dfx.rtl.tb import core_build as cb

    v = tmp_path / "t.v"
    v.write_text("// x\nmodule other(a);\nendmodule\nmodule dfx_core_tb(ap_rst_n, stall,\n"
                 ", interrupt, ap_clk);\n  input ap_clk;\nendmodule\n")
    assert cb.top_ports(v) == ["ap_rst_n", "stall", "interrupt", "ap_clk"]


def test_core_fault_error_mapping():
    from dfx.host.rtl_backend import RtlError, fault_error
    from dfx.rtl.core.faults import ERROR_CLASS, MESSAGE, Fault
    from dfx.sim.functional import errors

    img = CardImage(PROG, debug=[(0, "prologue")])
    for fault in Fault:
        if fault == Fault.OK:
            continue
        e = fault_error(fault.value, 0, 0, img)
        assert type(e) is getattr(errors, ERROR_CLASS[fault])
        if fault == Fault.PROGRAM_SIZE:
            assert str(e) == f"card 0: {MESSAGE[fault]}"
        else:
            assert str(e) == f"card 0, pc 0 (prologue): li rd=r1, imm=3: {MESSAGE[fault]}"
    # a pc past the program: the instruction comes from the error word
    word = int.from_bytes(PROG[32:64], "little")
    assert str(fault_error(Fault.PC_RANGE.value, 9, word, img)).startswith(
        "card 0, pc 9 (prologue): halt: ")
    assert isinstance(fault_error(200, 0, 0, img), RtlError)


def test_core_build_heartbeat():
    import time

    from dfx.rtl.tb import core_build as cb

    said: list[str] = []
    with cb._heartbeat(said.append, "building it (takes minutes)", first=0.05, every=0.1):
        time.sleep(0.38)
    assert said[0] == "building it (takes minutes)"
    assert len(said) >= 3 and all(s.startswith("still building it (") for s in said[1:])
    said.clear()
    with cb._heartbeat(said.append, "quick", first=5.0):
        pass
    assert said == []
