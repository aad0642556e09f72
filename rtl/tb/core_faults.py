"""Fault programs of the whole-core regression: every fault code of
:mod:`dfx.rtl.core.faults` at least once, in the frame of :mod:`.core_programs`.

Each program runs the prologue and some work that is still in flight when the fault comes (a
matrix product, a store), then the faulting instruction (label ``fault``), then instructions
that must not take effect (a ``sw`` marker, a store); the functional simulator gives the
expected error class and pc, and the state at the fault (memory, VRF, SRF) must be equal too:
faults are precise. The load-time faults (undefined opcode, reserved bits) are words built
from the spec's opcode table and field positions, and nothing of the program may run.
"""

from __future__ import annotations

from collections.abc import Callable

from dfx.isa.asm import assemble_with_labels
from dfx.isa.config import CoreConfig
from dfx.isa.encoding import Count, Instruction, encode_program
from dfx.isa.spec import load_spec

from .core_directed import fmt
from .core_programs import Frame, Program, epilogue, frame

__all__ = ["expected_class", "fault_programs"]

OVERLAP = "OVERLAP"  # y over x (matrix, lutmv) / y starting inside a source (vector ops)
#: Work in flight when the fault comes.
PRE = """
    conv1d y=v[r0+40], x=v[r0+0], w=hbm[r0+{hw}], b=ddr[r0+{dd}], kt=3, nt=4, batch=2, gelu
    store dst=hbm[r0+{hs}], src=vrf[r0+40], n={d4}
    li rd=r9, imm=77
    sw rs1=r9, mem=ddr[r0+{di}]
"""
#: What must not happen after the fault.
POST = """
    li rd=r9, imm=99
    sw rs1=r9, mem=ddr[r0+{di}+4]
    store dst=hbm[r0+{hs}+0x100], src=vrf[r0+0], n={d4}
"""


def _body(fault: str) -> str:
    return PRE + fault + POST


def _faults(core: CoreConfig) -> dict[str, tuple[str, str]]:
    """name -> (expected Fault name, faulting text with the label ``fault``)."""
    c = core
    hbm_end, ddr_end = c.b.hbm.capacity_bytes, c.b.ddr.capacity_bytes
    wbuf_end = c.buffers.wbuf_tiles * c.tile_bytes
    vrf, srf, lc = c.buffers.vrf_vectors, c.buffers.srf_scalars, c.lutgemm
    nest = "".join(f"{'  ' * i}loop count=1\n" for i in range(c.control.loop_depth + 1))
    unnest = "".join(f"{'  ' * i}endloop\n" for i in reversed(range(c.control.loop_depth + 1)))
    sregs = 1 << load_spec().widths["sreg"]
    lut = "lutmv y=v[r0+60], x=v[r0+0], w=hbm[r0+{hl}], b=ddr[r0+0], n={n}, ng=1, gs=1, q={q}"
    return {
        "pc-past-end": ("PC_RANGE", "fault: nop"),  # the halt is removed (below)
        "pc-branch-far": ("PC_RANGE", "fault: jmp target=@+5000"),
        "pc-branch-negative": ("PC_RANGE", "fault: beq rs1=r0, rs2=r0, target=@-1000"),
        "loop-body-mismatch": ("LOOP", "fault: nop"),  # replaced by a loop with a wrong body
        "loop-too-deep": ("LOOP", nest.replace(f"{'  ' * c.control.loop_depth}loop",
                                               f"fault: {'  ' * c.control.loop_depth}loop")
                          + "nop\n" + unnest),
        "loop-endloop-alone": ("LOOP", "fault: endloop"),
        "loop-branch-out": ("LOOP", "loop count=2\n  beq rs1=r0, rs2=r9, target=skip\n"
                                    "fault: beq rs1=r0, rs2=r0, target=out\nskip: endloop\n"
                                    "out: nop"),
        "loop-later-iteration": ("VRF_RANGE", f"li rd=r4, imm={vrf - 12}\nloop count=4\n"
                                 "  sw rs1=r4, mem=ddr[r0+{di}+8]\n"
                                 "fault: vadd y=v[r4+0], a=v[r0+0], b=v[r0+1], n=4\n"
                                 "  addi rd=r4, rs1=r4, imm=4\nendloop"),
        "count-negative": ("COUNT", "li rd=r1, imm=-1\nfault: vadd y=v[r0+0], a=v[r0+1], "
                                   "b=v[r0+2], n=r1"),
        "count-negative-sub": ("COUNT", "li rd=r1, imm=3\nsub rd=r1, rs1=r0, rs2=r1\n"
                                        "fault: load dst=vrf[r0+0], src=hbm[r0+0], n=r1+2"),
        "count-loop-negative": ("COUNT", "li rd=r1, imm=-1\nfault: loop count=r1\nnop\n"
                                         "endloop"),
        "count-kt-zero": ("COUNT", "fault: mm y=v[r0+60], x=v[r0+0], w=hbm[r0+{hw}], kt=0, "
                                   "nt=1"),
        "count-nt-zero": ("COUNT", "li rd=r2, imm=0\nfault: conv1d y=v[r0+60], x=v[r0+0], "
                                   "w=hbm[r0+{hw}], b=ddr[r0+0], kt=1, nt=r2"),
        "count-vmax-zero": ("COUNT", "fault: vmax sd=s1, a=v[r0+0], n=0"),
        "count-vargmax-zero": ("COUNT", "fault: vargmax rd=r1, a=v[r0+0], n=0"),
        "count-lut-q-zero": ("COUNT", "fault: " + lut.replace("{n}", "8").replace("{q}", "0")),
        "count-lut-q-big": ("COUNT", "fault: " + lut.replace("{n}", "8").replace(
            "{q}", str(lc.max_q + 1))),
        "count-lut-rows": ("COUNT", "fault: " + lut.replace("{n}", str(lc.max_rows + 1))
                           .replace("{q}", "1")),
        "count-lut-group": ("COUNT", "fault: " + lut.replace("{n}", "8").replace("{q}", "1")
                            .replace("gs=1", f"gs={lc.max_group // lc.slice + 1}")),
        "count-lut-ng-zero": ("COUNT", "fault: " + lut.replace("{n}", "8").replace("{q}", "1")
                              .replace("ng=1", "ng=0")),
        "count-shift": ("COUNT", "fault: shli rd=r1, rs1=r1, imm=64"),
        "space-load-dst": ("SPACE", "fault: load dst=hbm[r0+0], src=hbm[r0+0], n=4"),
        "space-lw-wbuf": ("SPACE", "fault: lw rd=r1, mem=wbuf[r0+0]"),
        "space-sw-vrf": ("SPACE", "fault: sw rs1=r1, mem=vrf[r0+0]"),
        "space-bias-vrf": ("SPACE", "fault: conv1d y=v[r0+60], x=v[r0+0], w=hbm[r0+{hw}], "
                                    "b=vrf[r0+0], kt=1, nt=1"),
        "space-copy-vrf": ("SPACE", "fault: copy dst=vrf[r0+0], src=hbm[r0+0], n=4"),
        "space-store-src": ("SPACE", "fault: store dst=hbm[r0+{hs}], src=ddr[r0+0], n=4"),
        "align-load": ("ALIGN", "fault: load dst=vrf[r0+0], src=hbm[r0+{hd}+1], n=4"),
        "align-stride": ("ALIGN", "fault: store dst=hbm[r0+{hs}], src=vrf[r0+0], n=16, "
                                  "stride=17"),
        "align-lw": ("ALIGN", "fault: lw rd=r1, mem=ddr[r0+{di}+2]"),
        "align-sw": ("ALIGN", "li rd=r3, imm=1\nfault: sw rs1=r1, mem=hbm[r3+{hi}]"),
        "align-lut-w": ("ALIGN", "fault: " + lut.replace("{n}", "8").replace("{q}", "1")
                        .replace("{hl}", "{hl}+16")),
        "align-matrix-w": ("ALIGN", "fault: mm y=v[r0+60], x=v[r0+0], w=hbm[r0+{hw}+32], "
                                    "kt=1, nt=1"),
        "align-bias": ("ALIGN", "fault: conv1d y=v[r0+60], x=v[r0+0], w=hbm[r0+{hw}], "
                                "b=ddr[r0+{dd}+3], kt=1, nt=1"),
        "range-hbm-load": ("MEM_RANGE", f"fault: load dst=vrf[r0+0], src=hbm[r0+{hbm_end - 4}]"
                                        ", n=4"),
        "range-ddr-sw": ("MEM_RANGE", f"li rd=r5, imm={ddr_end}\nfault: sw rs1=r1, "
                                      "mem=ddr[r5+0]"),
        "range-weights": ("MEM_RANGE", f"li rd=r5, imm={hbm_end - c.tile_bytes}\nfault: "
                                       "mm y=v[r0+60], x=v[r0+0], w=hbm[r5+0], kt=2, nt=1"),
        "range-wbuf-copy": ("MEM_RANGE", f"fault: copy dst=wbuf[r0+{wbuf_end - 8}], "
                                         "src=hbm[r0+0], n=8"),
        "range-store-t": ("MEM_RANGE", f"fault: store_t dst=ddr[r0+{ddr_end - 64}], "
                                       "src=vrf[r0+0], n=8, stride=64"),
        "vrf-vector": ("VRF_RANGE", f"fault: vadd y=v[r0+{vrf - 1}], a=v[r0+0], b=v[r0+0], "
                                    "n=2"),
        "vrf-load": ("VRF_RANGE", f"fault: load dst=vrf[r0+{vrf - 1}], src=hbm[r0+0], "
                                  "n={d2}"),
        "vrf-matrix": ("VRF_RANGE", f"fault: mm y=v[r0+{vrf - 1}], x=v[r0+0], w=hbm[r0+{{hw}}], "
                                    "kt=1, nt={nt2}"),
        # (a register beyond the SRF exists only if the SRF is smaller than the field allows)
        **({} if srf >= sregs else {
            "sreg-vacc": ("SREG", f"fault: vacc sd=s{srf}, a=v[r0+0], n=1"),
            "sreg-sadd": ("SREG", f"fault: sadd sd=s1, sa=s{min(srf + 5, sregs - 1)}, sb=s1"),
            "sreg-vadds": ("SREG", f"fault: vadds y=v[r0+60], a=v[r0+0], s=s{srf}, n=1"),
        }),
        "sreg-maskedmm-max": ("SREG", f"fault: maskedmm y=v[r0+60], x=v[r0+0], w=hbm[r0+{{hw}}], "
                                      f"kt=1, nt=1, batch=2, scale=s1, max=s{srf - 1}"),
        "overlap-matrix-in-place": (OVERLAP, "fault: mm y=v[r0+24], x=v[r0+24], "
                                             "w=hbm[r0+{hw}], kt=2, nt=4"),
        "overlap-matrix-batch": (OVERLAP, "fault: mm y=v[r0+10], x=v[r0+9], w=hbm[r0+{hw}], "
                                          "kt=2, nt=6, batch=2"),
        "overlap-lutmv": (OVERLAP, "fault: " + lut.replace("{n}", "16").replace("{q}", "1")
                          .replace("v[r0+60]", "v[r0+0]")),
        "overlap-vector-ahead": (OVERLAP, "fault: vmov y=v[r0+7], a=v[r0+2], n=6"),
        "overlap-vector-b-ahead": (OVERLAP, "fault: vsub y=v[r0+40], a=v[r0+50], "
                                            "b=v[r0+39], n=4"),
        "ring-send": ("RING", "fault: send v=v[r0+0], n=1"),
        "ring-recv": ("RING", "fault: recv v=v[r0+60], n=1"),
    }


def _raw(core: CoreConfig) -> dict[str, tuple[str, Callable[[Instruction], int]]]:
    """Load-time faults: name -> (Fault name, word of the faulting pc built from a nop)."""
    spec = load_spec()
    unused = sorted(set(range(1 << spec.widths["opcode"])) - set(spec.by_opcode))
    halt = spec.instructions["halt"]
    fmt_ = halt.format
    used = {f.name for f in halt.fields}
    spare = next(f for f in fmt_.fields if f.name not in used and f.operand is not None)
    return {
        "undefined-opcode": ("UNDEFINED_OPCODE", lambda ins: unused[-1]),
        "undefined-opcode-low": ("UNDEFINED_OPCODE", lambda ins: unused[0] | (1 << 100)),
        "reserved-top-bit": ("RESERVED_BITS",
                             lambda ins: Instruction("halt").word | (1 << (spec.word_bits - 1))),
        "reserved-unused-field": ("RESERVED_BITS",
                                  lambda ins: Instruction("halt").word | (1 << spare.lsb)),
    }


def expected_class(expect: str) -> str:
    """The simulator error class a program's ``expect`` (``OK`` or a fault name) stands for
    (``"halt"`` for ``OK``; a name that is no fault code stands for itself)."""
    from dfx.rtl.core.faults import ERROR_CLASS, Fault

    if expect == "OK":
        return "halt"
    return ERROR_CLASS[Fault[expect]] if expect in Fault.__members__ else expect


def _assemble(fr: Frame, text: str) -> tuple[list[Instruction], int]:
    d, l = fr.core.d, fr.core.l  # noqa: E741
    prog, labels = assemble_with_labels(
        fmt(fr, text, d4=4 * d, d2=2 * d, nt2=max(1, 2 * d // l)), source="fault")
    return prog, labels["fault"]


def fault_programs(core: CoreConfig, seed: int = 0) -> list[Program]:
    """Every fault program (module doc), memory images from ``seed``."""
    out = []
    for name, (expect, text) in _faults(core).items():
        fr = frame(core, seed)
        body, at = _assemble(fr, _body(text))
        pc = len(fr.prologue) + at
        text_ = fr.prologue + body + epilogue(fr.arena)
        if name == "pc-past-end":
            text_ = text_[:-1] + [Instruction("nop")]
            pc = len(text_)
        elif name == "loop-body-mismatch":
            text_[pc] = Instruction("loop", count=Count(2), body=2)  # pc + 2 is no endloop
        words = encode_program(text_)
        out.append(Program(f"fault-{name}", "fault", words, fr.segments, fr.arena,
                           expect=expect, text=text_, notes={"pc": pc}))
    for name, (expect, word) in _raw(core).items():
        fr = frame(core, seed)
        body, at = _assemble(fr, _body("fault: nop"))
        text_ = fr.prologue + body + epilogue(fr.arena)
        pc = len(fr.prologue) + at
        raw = bytearray(encode_program(text_))
        wb = load_spec().word_bytes
        raw[pc * wb:(pc + 1) * wb] = word(text_[pc]).to_bytes(wb, "little")
        out.append(Program(f"fault-{name}", "fault", bytes(raw), fr.segments, fr.arena,
                           expect=expect, text=None, notes={"pc": pc}))
    fr = frame(core, seed)
    n = core.buffers.instruction_words + 1
    body = [Instruction("nop")] * (n - len(fr.prologue) - len(epilogue(fr.arena)))
    text_ = fr.prologue + body + epilogue(fr.arena)
    out.append(Program("fault-program-size", "fault", encode_program(text_), fr.segments,
                       fr.arena, expect="PROGRAM_SIZE", text=None, notes={"pc": 0}))
    return out
