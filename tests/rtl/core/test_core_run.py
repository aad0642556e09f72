"""Whole-core runs on Verilator (:mod:`dfx.host.rtl_backend` on :mod:`dfx.rtl.tb.core_tb`):
a small GPT-2 (2 layers, n_embd 32, 4 heads, vocabulary 256; a Hugging Face checkpoint made
here) compiled for one tiny card runs a 4-token prompt + 4 new tokens, FP16 and BCQ-quantized
(lutmv), bit-identical to the functional simulator (tokens and logits); the same under random
memory stalls; a fault program raises the functional simulator's error; a small program's VRF
and SRF read back through the debug ports equal the functional simulator's.

All tests share one Verilator model of the tiny core (built once per RTL change, cached on
disk: the first run takes many minutes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dfx.isa.asm import assemble
from dfx.isa.config import load_core
from dfx.isa.container import Binary, CardImage, Segment
from dfx.isa.encoding import encode_program

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))

pytestmark = [pytest.mark.verilator, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]

PROMPT = [5, 17, 200, 3]
NEW = 4
MAX_CYCLES = 200_000  # the request takes about 22k cycles (more with stalls)
SIM_TIMEOUT_S = 900  # wall-clock limit of one simulation (the run kills it after)


@pytest.fixture(scope="module")
def core_model():
    """The shared Verilator model of the tiny core testbench (cached on disk)."""
    from dfx.rtl.tb.core_build import core_model as build

    return build(load_core("tiny"), progress=lambda s: print(f"[core build] {s}"))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """The small GPT-2 as a Hugging Face checkpoint, compiled FP16 and BCQ for one tiny card."""
    import hfref

    from dfx.compiler.driver import compile_model
    from dfx.compiler.frontend.hf import save_checkpoint

    d = tmp_path_factory.mktemp("gpt2")
    ckpt = save_checkpoint(hfref.random_model(2, 32, 4, 16, 256, seed=3, scale=4.0),
                           d / "ckpt")
    return {q or "fp16": compile_model(str(ckpt), core="tiny", cards=1, quant=q).binary
            for q in (None, "bcq:q=3,g=32")}


def _functional(b: Binary):
    from dfx.sim.functional import generate

    return generate(b, PROMPT, NEW, write_logits=True)


def _rtl(b: Binary, **kw):
    from dfx.host.rtl_backend import generate

    lines: list[str] = []
    out = generate(b, PROMPT, NEW, write_logits=True, status=lines.append,
                   timeout_s=SIM_TIMEOUT_S, max_cycles=MAX_CYCLES, **kw)
    return out, lines



@pytest.mark.parametrize("kind,wait", [
    ("fp16", "interrupt"),
    ("bcq:q=3,g=32", "poll"),
])
def test_core_gpt2_bit_identical(core_model, gpt2, kind, wait):
    """Tokens and logits of the RTL equal the functional simulator's, bit for bit."""
    b = gpt2[kind]
    if kind != "fp16":
        from dfx.isa.asm import format_instruction
        from dfx.isa.encoding import decode_program

        ops = {format_instruction(i).split()[0] for i in decode_program(b.cards[0].program)}
        assert "lutmv" in ops
    ids, logits = _functional(b)
    (rids, rlogits, run), lines = _rtl(b, wait=wait)
    assert rids == ids
    assert rlogits is not None and logits is not None
    assert rlogits.view(np.uint16).tolist() == logits.view(np.uint16).tolist()
    assert run.cycles[0] > 0 and run.model_cycles and run.model_cycles[0] > 0
    assert run.sim_cycles >= run.cycles[0]
    assert run.result.irq == (wait == "interrupt")
    print(f"\n{kind}: {run.cycles[0]:,} core cycles (model {run.model_cycles[0]:,}), "
          f"{run.cycles_per_s:,.0f} cycles/s, {run.wall_s:.1f} s")


def test_core_gpt2_under_stalls(core_model, gpt2):
    """Random memory stalls (6/16 of the cycles on every channel) change the timing only;
    done found by polling CTRL."""
    b = gpt2["fp16"]
    ids, logits = _functional(b)
    (rids, rlogits, run), _ = _rtl(b, stall=6, wait="poll")
    assert not run.result.irq
    assert rids == ids
    assert rlogits.view(np.uint16).tolist() == logits.view(np.uint16).tolist()
    assert run.model_cycles and run.cycles[0] > run.model_cycles[0] // 2


def _program(core, text: str, segments=()) -> Binary:
    return Binary(core, {}, [CardImage(encode_program(assemble(text)), list(segments))])


def test_core_fault_is_the_simulator_error(core_model):
    """A misaligned lw faults (ALIGN): MemoryAccessError, located at its pc, one line."""
    from dfx.host.rtl_backend import run_program
    from dfx.sim.functional import Appliance
    from dfx.sim.functional.errors import MemoryAccessError

    core = load_core("tiny")
    b = _program(core, """
        li rd=r1, imm=6
        addi rd=r2, rs1=r1, imm=1
        lw rd=r3, mem=ddr[r2+0]
        halt
    """)
    with pytest.raises(MemoryAccessError) as func:
        Appliance(b).run()
    with pytest.raises(MemoryAccessError) as rtl:
        run_program(b, timeout_s=SIM_TIMEOUT_S)
    msg = str(rtl.value)
    assert msg.startswith("card 0, pc 2: lw rd=r3, mem=ddr[r2+0]: ")
    assert "\n" not in msg
    assert (rtl.value.card, rtl.value.pc) == (func.value.card, func.value.pc) == (0, 2)
    assert rtl.value.instruction == func.value.instruction


def test_core_vrf_srf_back_doors(core_model):
    """A small vector program: the VRF and SRF read through the debug ports equal the
    functional simulator's state; memory written by the program reads back equal."""
    from dfx.host.rtl_backend import run_program
    from dfx.sim.functional import Appliance

    core = load_core("tiny")
    d = core.d
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4 * d).astype(np.float16)
    b = _program(core, f"""
        load dst=vrf[r0+0], src=ddr[r0+0], n={4 * d}
        vadd y=v[r0+4], a=v[r0+0], b=v[r0+2], n=2
        vacc sd=s3, a=v[r0+0], n=4
        vmuls y=v[r0+6], a=v[r0+4], s=s3, n=2
        store dst=hbm[r0+256], src=vrf[r0+4], n={4 * d}
        halt
    """, [Segment("ddr", 0, x)])
    app = Appliance(b)
    app.run()
    card = app.cards[0]
    run = run_program(b, vrf=(0, 8), srf=True, reads=[("hbm", 256, 8 * d)],
                      timeout_s=SIM_TIMEOUT_S)
    res = run.result
    want_vrf = np.asarray(card.vrf[:8]).view(np.uint16)
    assert res.vrf.tolist() == want_vrf.tolist()
    want_srf = card.srf.view(np.uint32)
    assert res.srf.tolist() == want_srf.tolist()
    assert res.reads["hbm:256"] == app.read(0, "hbm", 256, 8 * d)


def _lutmv_case(core, *, n: int, bias: bool, finite: bool, seed: int) -> Binary:
    """x (32 FP16) and a lutmv (ng=1, gs=4, q=3) over random packed-stream bytes (``finite``:
    every halfword's exponent MSB cleared, so every scale is finite)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 256, 8192, dtype=np.uint8)
    if finite:
        w.view(np.uint16)[:] &= np.uint16(0xBFFF)
    x = rng.standard_normal(32).astype(np.float16)
    bvec = rng.standard_normal(n).astype(np.float16)
    return _program(core, f"""
        load dst=vrf[r0+16], src=ddr[r0+0x1000], n=32
        lutmv y=v[r0+20], x=v[r0+16], w=hbm[r0+0], b=ddr[r0+0x2000], n={n}, ng=1, gs=4, q=3{
            ', bias' if bias else ''}
        halt
    """, [Segment("hbm", 0, w), Segment("ddr", 0x1000, x), Segment("ddr", 0x2000, bvec)])


def _same_vrf(b: Binary, first: int, count: int, workdir: Path,
              max_cycles: int = 50_000) -> None:
    from dfx.host.rtl_backend import run_program
    from dfx.sim.functional import Appliance

    app = Appliance(b)
    app.run()
    run = run_program(b, vrf=(first, count), max_cycles=max_cycles, timeout_s=SIM_TIMEOUT_S,
                      workdir=str(workdir))
    want = app.cards[0].vrf[first:first + count].view(np.uint16)
    assert run.result.vrf.tolist() == want.tolist()


def test_core_lutmv_small_n_with_bias(core_model, tmp_path):
    """lutmv with bias, n = 96 (12 output vectors): bit-identical."""
    _same_vrf(_lutmv_case(load_core("tiny"), n=96, bias=True, finite=True, seed=2), 20, 12,
              tmp_path)


def test_core_lutmv_bias_large_n(core_model, tmp_path):
    _same_vrf(_lutmv_case(load_core("tiny"), n=128, bias=True, finite=True, seed=2), 20, 16,
              tmp_path, max_cycles=20_000)


def test_core_lutmv_nonfinite_scales(core_model, tmp_path):
    _same_vrf(_lutmv_case(load_core("tiny"), n=32, bias=False, finite=False, seed=1), 20, 4,
              tmp_path)
