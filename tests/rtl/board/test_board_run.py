"""The Alveo kernel top on the Verilator RTL backend (issue 13, Done-when items 2 and 3): the
board testbench card (:class:`dfx.rtl.tb.board_top.BoardTestTop`: ``dfx_core`` as ``dfx build``
packages it — the core, the ring router, the clock-domain crossings to the QSFP streams on
``ap_clk_2`` at the board's clock ratio — with the card's memory models) and N of them joined
card to card by QSFP link models on the link clock
(:class:`dfx.rtl.tb.board_ring.BoardRingTop`).

* XRT's order (the cocotb testbench, ``wait="xrt"``): at the compute unit's start CTRL is read
  (ap_idle), GIE then IER set; per run the argument block from 0x10 written as XRT's
  register-map write does, CTRL = ap_start, the interrupt, ISR read and written back (the
  interrupt falls), CTRL read (ap_done | ap_idle; ap_done clears on read), the status
  registers; started twice in a row, the small GPT-2's tokens and logits are the functional
  simulator's both times;
* a fault program: the status register's fault is the functional simulator's error, one line;
* the host's request sequence (:func:`dfx.host.device.generate` over
  :func:`dfx.host.device.rtl_devices`) on 1 and 4 board cards: tokens and logits bit-identical
  to the functional simulator, also on stressed links; a ring deadlock named card by card.

Without Verilator: XRT's register-map block, the link clock and link settings, the board ring
top's ports, and the refusals (debug reads on the board top, XRT's order on a ring, waiting
before every card started).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dfx.isa.config import load_core

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))

# one xdist worker runs them (--dist loadgroup): the board models are built once, in turn
pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"),
              pytest.mark.xdist_group("board")]

PROMPT = [5, 17, 200, 3]
NEW = 4
MAX_CYCLES = 400_000
SIM_TIMEOUT_S = 1500


def _model(cards: int):
    from dfx.rtl.tb.core_build import card_model

    return card_model(load_core("tiny"), cards, top="board",
                      progress=lambda s: print(f"[board build] {s}"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The small GPT-2 (2 layers, n_embd 32, 4 heads, vocabulary 256) as a Hugging Face
    checkpoint made here."""
    import hfref

    from dfx.compiler.frontend.hf import save_checkpoint

    d = tmp_path_factory.mktemp("board")
    return save_checkpoint(hfref.random_model(2, 32, 4, 16, 256, seed=3, scale=4.0), d / "h4")


def _compile(ckpt, cards: int):
    from dfx.compiler.driver import compile_model

    return compile_model(str(ckpt), core="tiny", cards=cards).binary


def _functional(b):
    from dfx.sim.functional import generate

    return generate(b, PROMPT, NEW, write_logits=True)


def _same(a, b) -> bool:
    return a.view(np.uint16).tolist() == b.view(np.uint16).tolist()


@pytest.mark.verilator
@pytest.mark.slow
def test_board_xrt_order_started_twice(checkpoint):
    """XRT's register sequence on one board card, started twice in a row: both runs give the
    functional simulator's tokens (and logits); the control registers read as XRT sees them."""
    from dfx.host.rtl_backend import generate
    from dfx.rtl.control import regmap as rm

    _model(1)
    b = _compile(checkpoint, 1)
    ids, logits = _functional(b)
    rids, rlogits, run = generate(b, PROMPT, NEW, write_logits=True, top="board", wait="xrt",
                                  starts=2, timeout_s=SIM_TIMEOUT_S, max_cycles=MAX_CYCLES)
    assert rids == ids and _same(rlogits, logits)
    res = run.result
    first = np.frombuffer(res.reads["tokens@0"], "<u4").tolist()
    assert first == ids
    assert [s["mode"] for s in res.starts] == ["interrupt", "poll"]
    irq, poll = res.starts
    assert irq["ctrl_open"] & rm.AP_IDLE and not irq["ctrl_open"] & (rm.AP_DONE | rm.AP_START)
    assert irq["isr"] == rm.IRQ_DONE and irq["irq_after_clear"] == 0
    assert poll["polls"] > 1 and not poll["ctrl_running"] & (rm.AP_DONE | rm.AP_IDLE)
    for s in res.starts:
        assert s["ctrl_done"] & (rm.AP_DONE | rm.AP_IDLE) == rm.AP_DONE | rm.AP_IDLE
        assert s["status"] == 0 and s["cycles"] > 0
    print(f"\nboard, XRT order: cycles per start {[s['cycles'] for s in res.starts]}, "
          f"{run.cycles_per_s:,.0f} cycles/s")


@pytest.mark.verilator
@pytest.mark.slow
def test_board_fault_is_the_simulator_error():
    """A misaligned lw faults (ALIGN) on the board top: the host reads the status registers
    and raises the functional simulator's MemoryAccessError at its pc, one line."""
    from dfx.host.rtl_backend import run_program
    from dfx.isa.asm import assemble
    from dfx.isa.container import Binary, CardImage
    from dfx.isa.encoding import encode_program
    from dfx.sim.functional import Appliance
    from dfx.sim.functional.errors import MemoryAccessError

    _model(1)
    b = Binary(load_core("tiny"), {}, [CardImage(encode_program(assemble("""
        li rd=r1, imm=6
        addi rd=r2, rs1=r1, imm=1
        lw rd=r3, mem=ddr[r2+0]
        halt
    """)))])
    with pytest.raises(MemoryAccessError) as func:
        Appliance(b).run()
    with pytest.raises(MemoryAccessError) as rtl:
        run_program(b, top="board", timeout_s=SIM_TIMEOUT_S)
    msg = str(rtl.value)
    assert msg.startswith("card 0, pc 2: lw rd=r3, mem=ddr[r2+0]: ") and "\n" not in msg
    assert (rtl.value.card, rtl.value.pc) == (func.value.card, func.value.pc) == (0, 2)


@pytest.mark.verilator
@pytest.mark.slow
@pytest.mark.parametrize("cards", [1, 4])
def test_board_devices_bit_identical(checkpoint, cards):
    """The host's request sequence (host/device.py) on 1 and 4 board cards: tokens and logits
    bit-identical to the functional simulator."""
    from dfx.host.device import generate, rtl_devices

    _model(cards)
    b = _compile(checkpoint, cards)
    ids, logits = _functional(b)
    devices = rtl_devices(b, top="board", max_cycles=MAX_CYCLES)
    rids, rlogits, statuses = generate(devices, b, PROMPT, NEW, write_logits=True,
                                       timeout_s=SIM_TIMEOUT_S)
    assert rids == ids and _same(rlogits, logits)
    assert len(statuses) == cards and all(s.status == 0 and s.cycles > 0 for s in statuses)
    run = devices[0].run
    assert run.results[0].ring_error == 0
    print(f"\n{cards} board card(s): cycles {[s.cycles for s in statuses]}, "
          f"{run.cycles_per_s:,.0f} cycles/s, {run.wall_s:.1f} s")


@pytest.mark.verilator
@pytest.mark.slow
def test_board_ring_stressed_links(checkpoint):
    """4 board cards, QSFP link latencies 1..64 link cycles and TREADY low on a quarter of the
    link cycles: the same tokens and logits, no beat lost at a kernel's receive crossing."""
    from dfx.host.rtl_backend import generate
    from dfx.rtl.tb.link_model import BENCH_LATENCIES, BENCH_STALL

    _model(4)
    b = _compile(checkpoint, 4)
    ids, logits = _functional(b)
    rids, rlogits, run = generate(b, PROMPT, NEW, write_logits=True, top="board",
                                  links={"latencies": BENCH_LATENCIES, "stall_prob": BENCH_STALL},
                                  timeout_s=SIM_TIMEOUT_S, max_cycles=MAX_CYCLES)
    assert rids == ids and _same(rlogits, logits)
    assert all(r.ring_error == 0 for r in run.results)
    print(f"\n4 board cards, stressed links: cycles {run.cycles}")


@pytest.mark.verilator
@pytest.mark.slow
def test_board_ring_deadlock_named():
    """A ring program that deadlocks by design (every card receives first) on 4 board cards:
    the testbench's watchdog, reading the live registers over each kernel's control slave,
    names every card's blocked recv, as the functional simulator does."""
    from dfx.host.rtl_backend import run_card
    from dfx.isa.asm import assemble
    from dfx.isa.container import Binary, CardImage
    from dfx.isa.encoding import encode_program
    from dfx.sim.functional import DeadlockError

    _model(4)
    prog = encode_program(assemble("recv v=v[r0+0], n=2\nsend v=v[r0+0], n=2\nhalt"))
    b = Binary(load_core("tiny"), {"name": "ring-test"},
               [CardImage(program=prog, debug=[(0, "allgather")]) for _ in range(4)])
    with pytest.raises(DeadlockError) as e:
        run_card(b, {}, reads=[], writes=[], watch=None, model_cycles=None, waves=None,
                 status=None, progress=None, workdir=None, keep=False, max_cycles=400_000,
                 timeout_s=SIM_TIMEOUT_S, top="board")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("deadlock: no card can make progress: ")
    for c in range(4):
        assert (f"card {c}, pc 0 (allgather): recv v=v[r0+0], n=2: waits for vectors from "
                f"card {(c - 1) % 4}") in msg


# -- without Verilator ---------------------------------------------------------------------------
def test_xrt_regmap_is_the_whole_argument_block():
    """XRT's register-map write: every word from 0x10 to the end of the last argument, the
    arguments' words in place (64-bit values low word first), reserved words 0."""
    from dfx.rtl.control import regmap as rm
    from dfx.rtl.tb.core_tb import xrt_regmap

    regs = rm.regmap(load_core("tiny"))
    args = {"prog_words": 7, "prog": 0x40_0000_1000, "ddr": 0x40_0000_0000, "cards": 4,
            **{f"hbm{i:02d}": (i + 1) << 32 for i in range(regs.pseudo_channels)}}
    words = xrt_regmap(regs, args)
    offsets = [o for o, _w in words]
    end = max(r.offset + 4 * r.words for r in regs.args)
    assert offsets == list(range(rm.ARGS_BASE, end, 4))
    got = dict(words)
    for name, value in args.items():
        for off, word in regs.words(name, value):
            assert got.pop(off) == word
    assert set(got.values()) == {0}


def test_board_clocks_and_links():
    """The board testbench's link clock is dfx build's (76 MHz for the tiny core's 100, 190
    for dfx-u280's 200), at the board's ratio; a link beat takes >= 1 link cycle."""
    from fractions import Fraction

    from dfx.host.kernel.describe import describe
    from dfx.rtl.tb.board_ring import (
        board_link_settings,
        link_mhz,
        link_period_ps,
        link_rate,
        link_wire_cycles,
    )

    tiny = load_core("tiny")
    assert link_mhz(tiny) == describe(tiny).link_mhz == 76
    assert link_period_ps(tiny, 10) == 13158
    assert link_rate(tiny) == Fraction(627, 625)
    assert link_wire_cycles(tiny) == 8  # 105 ns at 76 MHz
    assert board_link_settings(tiny, 2) == [(8, 0)] * 4
    u280 = load_core("dfx-u280")
    assert link_mhz(u280) == 190 and 1 <= link_rate(u280) < Fraction(11, 10)


def test_board_ring_top_ports():
    """The board ring's top: the clocks of both domains, the ring error, two links per card,
    every card port but the clocks and QSFP streams (joined inside) prefixed per card."""
    from dfx.rtl.bus.vitis import vitis_ports
    from dfx.rtl.tb.board_ring import BOARD_TOP, BoardRingTop
    from dfx.rtl.tb.board_top import BoardTestTop
    from dfx.rtl.tb.core_build import core_layout

    core = load_core("tiny")
    card = vitis_ports(BoardTestTop(core, core_layout(core)))
    assert {p.name for p in card} >= {"ap_clk_2", "ap_rst_n_2", "qsfp0_tx_tdata",
                                       "qsfp1_rx_tvalid", "router_overflow", "bd_sel"}
    assert not [p for p in card if p.name.startswith("dbg_")]
    ring = BoardRingTop(core, 3, card_module=BOARD_TOP, card_ports=card).ports()
    names = list(ring)
    assert names[:5] == ["ap_clk", "ap_rst_n", "ap_clk_2", "ap_rst_n_2", "ring_error"]
    assert sum(n.endswith("_latency") for n in names) == 6
    assert not [n for n in names if "qsfp" in n]
    assert not [n for n in names if n.startswith("card") and n.endswith(("clk_2", "rst_n_2"))]
    assert "card02_s_axi_control_awaddr" in names and "card01_router_overflow" in names


def test_board_top_refusals(checkpoint):
    """What the board top cannot do is refused before any build, one line: debug reads (no
    debug ports), XRT's order on a ring; rtl_devices need every card started."""
    from dfx.host.device import RtlDevice, rtl_devices
    from dfx.host.rtl_backend import generate, run_program
    from dfx.isa.errors import DfxError

    one, four = _compile(checkpoint, 1), _compile(checkpoint, 4)
    with pytest.raises(DfxError, match="no debug ports: vrf"):
        run_program(one, top="board", vrf=(0, 1))
    with pytest.raises(DfxError, match="runs one card"):
        generate(four, PROMPT, NEW, top="board", wait="xrt")
    with pytest.raises(DfxError, match="rtl_devices"):
        RtlDevice(four)
    devices = rtl_devices(four, top="board")
    devices[0].start(4)
    with pytest.raises(DfxError, match=r"card\(s\) \[1, 2, 3\] not started"):
        devices[0].wait()
