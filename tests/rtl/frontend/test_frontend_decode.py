"""Decode of the front end: Legality against the Python decoder, Predecode's targets."""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.sim import Simulator

from dfx.isa.encoding import Instruction, decode
from dfx.isa.errors import IsaError
from dfx.isa.spec import load_spec
from dfx.rtl.core.faults import Fault
from dfx.rtl.frontend.decode import Legality, Predecode
from dfx.rtl.isa_layouts import USED_MASK, WORD_BITS, Opcode

SPEC = load_spec()
CTRL = SPEC.formats["ctrl"].field_by_name

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def ctrl_word(op: Opcode, **fields: int) -> int:
    """A ctrl-format word with any fields set (Predecode reads body and target of any op)."""
    w = op.value
    for name, v in fields.items():
        f = CTRL[name]
        w |= (v & f.mask) << f.lsb
    return w


def random_instruction(rng: random.Random) -> Instruction:
    ispec = rng.choice(list(SPEC.instructions.values()))
    values = {}
    for f in ispec.fields:
        if f.operand is not None:
            values[f.name] = rng.choice(f.codes) if f.codes else rng.randint(f.lo, f.hi)
    return Instruction.from_fields(ispec.name, **values)


def python_fault(word: int) -> Fault:
    try:
        decode(word.to_bytes(WORD_BITS // 8, "little"))
        return Fault.OK
    except IsaError as e:
        return Fault.UNDEFINED_OPCODE if "is not defined" in str(e) else Fault.RESERVED_BITS


def test_legality_matches_the_python_decoder() -> None:
    rng = random.Random(1)
    words = []
    for _ in range(300):
        w = random_instruction(rng).word
        words.append(w)
        words.append(w ^ (1 << rng.randrange(8, WORD_BITS)))  # one flipped bit
        words.append(w | rng.getrandbits(WORD_BITS) << 8 & ((1 << WORD_BITS) - 1))
    defined = {op.value for op in Opcode}
    words += [rng.choice([o for o in range(256) if o not in defined]) for _ in range(50)]
    words += [op.value | (((1 << WORD_BITS) - 1) & ~USED_MASK[op]) for op in Opcode]
    expected = [python_fault(w) for w in words]
    assert {Fault.OK, Fault.UNDEFINED_OPCODE, Fault.RESERVED_BITS} == set(expected)
    dut = Legality()
    got = []

    async def bench(ctx):
        for w in words:
            ctx.set(dut.word, w)
            got.append(ctx.get(dut.fault))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected


def test_predecode_targets_and_loop_end() -> None:
    words = 64
    dut = Predecode(words)
    rng = random.Random(2)
    cases = []
    for _ in range(400):
        pc = rng.randrange(words)
        n_prog = rng.randint(pc + 1, words)
        target = rng.choice([rng.randint(-80, 80), rng.randint(-(1 << 23), (1 << 23) - 1)])
        body = rng.choice([0, rng.randint(1, 70), rng.randrange(1 << 20)])
        is_end = rng.random() < 0.5
        cases.append((pc, n_prog, target, body, is_end))

    async def bench(ctx):
        for pc, n_prog, target, body, is_end in cases:
            ctx.set(dut.word, ctrl_word(Opcode.LOOP, count=1, body=body, target=target))
            ctx.set(dut.pc, pc)
            ctx.set(dut.n_prog, n_prog)
            end = pc + body
            if end < words:
                assert ctx.get(dut.end_addr) == end
            ctx.set(dut.end_is_endloop, is_end)
            tgt = pc + target
            assert ctx.get(dut.tgt_ok) == (0 <= tgt < n_prog)
            if 0 <= tgt < n_prog:
                assert ctx.get(dut.tgt) == tgt
            ok = body >= 1 and end < n_prog and is_end
            assert ctx.get(dut.loop_ok) == ok
            if ok:
                assert (ctx.get(dut.end), ctx.get(dut.skip)) == (end, end + 1)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="words must be an integer >= 1"):
        Predecode(0)
    gc.collect()  # the half-built component, while the warning filter is active
