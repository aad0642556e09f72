"""The whole-core regression (docs/verification.md "Core regression"): directed, fault and random
programs on the core's Verilator model and on the functional simulator, the final state
compared bit for bit (:mod:`dfx.rtl.tb.core_check`).

The generator tests are pure Python. The Verilator tests share one model of the tiny core
(built once per RTL change and cached on disk: the first run takes many minutes); they run
every directed program (also under memory stalls), one fault program per fault code and
``$DFX_CORE_PROGRAMS`` random programs (12; ``$DFX_CORE_SEED`` the first seed, 0);
``DFX_CORE_FAULTS=all`` runs every fault program. ``dfx regress --bench core`` runs more.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import pytest

from dfx.isa.config import load_core
from dfx.isa.spec import load_spec
from dfx.rtl.core.faults import Fault
from dfx.rtl.tb.core_check import check_batch, compare, reference
from dfx.rtl.tb.core_directed import directed_programs
from dfx.rtl.tb.core_faults import expected_class, fault_programs
from dfx.rtl.tb.core_job import CoreResult
from dfx.rtl.tb.core_random import random_program

CORE = load_core("tiny")
RANDOMS = int(os.environ.get("DFX_CORE_PROGRAMS", "12"))
SEED = int(os.environ.get("DFX_CORE_SEED", "0"))
STALL = 6
SIM_TIMEOUT_S = 600  # wall-clock limit of one simulation


# -- the generator and the reference (pure Python) --------------------------------------------


def test_random_programs_are_valid_and_cover_the_isa():
    """Random programs halt on the functional simulator (every read initialised, every operand
    legal); over 40 seeds every non-router instruction occurs, loops nest to the core's depth,
    counts of 0 and branches both ways happen; a seed gives the same program every time."""
    spec = load_spec()
    ops: collections.Counter[str] = collections.Counter()
    depth = 0
    for seed in range(40):
        p = random_program(CORE, seed)
        st = reference(CORE, p)
        assert st.outcome == "halt", (seed, st.message)
        assert p.words <= CORE.buffers.instruction_words
        ops.update(i.op for i in p.text)
        nest = 0
        for i in p.text:
            nest += (i.op == "loop") - (i.op == "endloop")
            depth = max(depth, nest)
    router = {n for n, i in spec.instructions.items() if i.cls == "router"}
    assert set(spec.instructions) - router - set(ops) == set()
    assert depth == min(CORE.control.loop_depth, 4)
    again = random_program(CORE, 7)
    assert again.program == random_program(CORE, 7).program
    assert again.program != random_program(CORE, 8).program


@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_directed_programs_halt(core):
    c = load_core(core)
    for p in directed_programs(c) + [random_program(c, 5)]:
        st = reference(c, p)
        assert st.outcome == "halt", (p.name, st.message)
        assert st.valid.all()


@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_fault_programs_fault_where_made(core):
    """Every fault code has a program; the simulator raises the code's error class at the
    program's faulting pc."""
    c = load_core(core)
    seen = set()
    for p in fault_programs(c):
        st = reference(c, p)
        assert st.outcome == expected_class(p.expect), (p.name, st.message)
        assert st.pc == p.notes["pc"], (p.name, st.message)
        seen.add(p.expect)
    assert seen >= {f.name for f in Fault if f != Fault.OK}


def test_compare_names_every_difference():
    """The comparison is clean on the reference's own state and names what differs: a dumped
    register byte, a memory byte, a VRF lane, a scalar, the fault class or pc."""
    p = random_program(CORE, 3)
    st = reference(CORE, p)
    ar = p.arena

    def result(**kw):
        r = CoreResult("done", reads={"hbm": st.mem["hbm"], "ddr": st.mem["ddr"]},
                       vrf=st.vrf.copy(), srf=st.srf.copy())
        for k, v in kw.items():
            setattr(r, k, v)
        return r

    assert compare(st, result(), p) == []
    ddr = bytearray(st.mem["ddr"])
    ddr[ar.dump_regs + 8 * 5 + 2] ^= 1
    assert compare(st, result(reads={"hbm": st.mem["hbm"], "ddr": bytes(ddr)}), p) == [
        f"r5 (dumped, byte 2): {ddr[ar.dump_regs + 42]:#04x}, expected "
        f"{st.mem['ddr'][ar.dump_regs + 42]:#04x}"]
    hbm = bytearray(st.mem["hbm"])
    hbm[ar.hbm["scratch"][0] + 0x40] ^= 0x80
    assert compare(st, result(reads={"hbm": bytes(hbm), "ddr": st.mem["ddr"]}), p)[0] \
        .startswith("hbm scratch+0x40: ")
    vrf = st.vrf.copy()
    vrf[12, 3] ^= 1
    assert compare(st, result(vrf=vrf), p)[0].startswith("v[12] lanes [3]: ")
    srf = st.srf.copy()
    srf[7] ^= 1
    assert compare(st, result(srf=srf), p)[0].startswith("s7: ")
    assert "ended with ALIGN" in compare(st, result(status=Fault.ALIGN.value, error_pc=9), p)[0]
    assert compare(st, result(outcome="timeout"), p)[0].startswith("no done within")
    f = next(q for q in fault_programs(CORE) if q.expect == "COUNT")
    fs = reference(CORE, f)
    bad = result(status=Fault.COUNT.value, error_pc=fs.pc + 1, reads={
        "hbm": fs.mem["hbm"], "ddr": fs.mem["ddr"]}, vrf=fs.vrf, srf=fs.srf)
    assert compare(fs, bad, f) == [f"COUNT at pc {fs.pc + 1}, expected pc {fs.pc}: "
                                   f"{fs.message}"]


def test_arena_fits_the_board_and_the_testbench():
    from dfx.rtl.tb.core_build import core_layout
    from dfx.rtl.tb.core_programs import arena

    for name in ("tiny", "dfx-u280"):
        core = load_core(name)
        ar = arena(core)
        layout = core_layout(core)
        assert ar.hbm_bytes <= layout.hbm_bytes * layout.hbm_channels
        assert ar.ddr_bytes + 4096 * 33 <= layout.ddr_bytes  # and the program above it
        assert ar.wbuf <= core.buffers.wbuf_tiles * core.tile_bytes
        assert ar.vrf <= core.buffers.vrf_vectors
        regions = sorted([*ar.hbm.values()])
        assert all(a[1] <= b[0] for a, b in zip(regions, regions[1:], strict=False))


# -- on Verilator -----------------------------------------------------------------------------


def _fault_suite() -> list:
    progs = fault_programs(CORE, SEED)
    if os.environ.get("DFX_CORE_FAULTS") == "all":
        return progs
    first: dict[str, object] = {}
    for p in progs:  # one per fault code, and every known issue's reproducer
        first.setdefault(p.name if "known" in p.notes else p.expect, p)
    return list(first.values())


def _suite() -> list[tuple[object, tuple[int, ...]]]:
    out = [(p, (0, STALL)) for p in directed_programs(CORE, SEED)]
    out += [(p, (0,)) for p in _fault_suite()]
    out += [(random_program(CORE, SEED + i), (0, STALL) if i % 4 == 0 else (0,))
            for i in range(RANDOMS)]
    return out


SUITE = _suite()


#: The suite in a few groups, each one simulator process (core_check.check_batch): the start-up
#: of a process (seconds) is most of a short program's time; a few groups still spread over
#: pytest-xdist workers.
GROUPS = 4


def _groups() -> list[list[tuple[object, tuple[int, ...]]]]:
    per = -(-len(SUITE) // GROUPS)
    return [SUITE[k:k + per] for k in range(0, len(SUITE), per)]


@pytest.fixture(scope="module")
def core_model():
    """The shared Verilator model of the tiny core testbench (cached on disk)."""
    from dfx.rtl.tb.core_build import core_model as build

    return build(CORE, progress=lambda s: print(f"[core build] {s}"))


@pytest.mark.verilator
@pytest.mark.slow
@pytest.mark.parametrize("group", _groups(),
                         ids=lambda g: f"{g[0][0].name}..{g[-1][0].name}")
def test_core_programs(core_model, group, tmp_path: Path):
    """The RTL ends like the functional simulator (halt, or the same fault at the same pc)
    with the same registers, SRF, VRF window and memory, with and without memory stalls;
    a program marked as a known RTL issue must still fail (else: remove the mark)."""
    verdicts = check_batch(core_model, CORE, group, tmp_path, keep=True,
                           timeout_s=SIM_TIMEOUT_S)
    failures = []
    for (prog, _), v in zip(group, verdicts, strict=True):
        issue = prog.notes.get("known")
        print(f"\n{prog.name}: {v.instructions} instructions, cycles {v.cycles}, "
              f"{v.wall_s:.1f} s")
        if issue:
            if v.passed:
                failures.append(f"{prog.name} passes now: remove {issue!r} from KNOWN_ISSUES")
            continue
        problems = list(v.mismatches)
        if v.passed and not all(c > 0 for c in v.cycles):
            problems.append(f"cycles {v.cycles}")
        if v.passed and len(v.cycles) == 2 and prog.expect == "OK" \
                and v.cycles[1] < v.cycles[0] * 0.9:  # stalls slow it down (or not much)
            problems.append(f"stalls made it faster: {v.cycles}")
        if problems:
            failures.append(f"{prog.name} ({len(problems)} differences):\n"
                            + "\n".join(problems) + f"\nprogram:\n{prog.listing()}")
    assert not failures, "\n\n".join(failures)


def test_suite_size():
    """The suite stays bounded: a few dozen programs by default."""
    assert 20 <= len(SUITE) <= 60 or RANDOMS != 12
    assert np.unique([p.name for p, _ in SUITE]).size == len(SUITE)


@pytest.mark.verilator
@pytest.mark.slow
def test_regress_core_bench(core_model, tmp_path: Path, monkeypatch, capsys):
    """``dfx regress --bench core`` on a small suite: a passing program, a failing program
    marked as a known issue (a passing test with a KNOWN line) and the totals line."""
    import dataclasses

    import dfx.rtl.regress as rg
    from dfx.host.cli import main
    from dfx.rtl.tb import core_programs

    good = random_program(CORE, 1)
    bad = dataclasses.replace(random_program(CORE, 2), name="made-for-a-fault", expect="ALIGN",
                              notes={"known": "test-issue"})
    monkeypatch.setitem(core_programs.KNOWN_ISSUES, "test-issue", "a test of the known path")
    monkeypatch.setattr(rg, "core_suite", lambda core, randoms, seed=0: [(good, (0,)),
                                                                          (bad, (0,))])
    status = main(["regress", "--bench", "core", "--build-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS" in out and "KNOWN core::made-for-a-fault: known issue test-issue" in out
    assert "core: 2 programs (2 runs), " in out and "cycles/s" in out
