"""Straight-line programs on the Backend (issue, scoreboard, SRF, VRF, VPU and MPU ports), bit
for bit against the functional simulator, on one Amaranth-simulator build per core."""

from __future__ import annotations

import numpy as np
import pytest
from backend_harness import Case, check_cases, program, random_image, random_vrf

from dfx.isa.config import load_core

CORE = load_core("tiny")


def vv(op: str, y: int, a: int, b: int, n: int) -> str:
    return f"{op} y=v[{y}], a=v[{a}], b=v[{b}], n={n}"


def vs(op: str, y: int, a: int, s: int, n: int) -> str:
    return f"{op} y=v[{y}], a=v[{a}], s=s{s}, n={n}"


def v1(op: str, y: int, a: int, n: int) -> str:
    return f"{op} y=v[{y}], a=v[{a}], n={n}"


def red(op: str, sd: int, a: int, n: int) -> str:
    return f"{op} sd=s{sd}, a=v[{a}], n={n}"


def sc(op: str, sd: int, sa: int, sb: int | None = None) -> str:
    return f"{op} sd=s{sd}, sa=s{sa}" + ("" if sb is None else f", sb=s{sb}")


def sli(sd: int, x: float) -> str:
    return f"sli sd=s{sd}, imm={x!r}"


def vector_cases(rng: np.random.Generator) -> list[Case]:
    d = CORE.d
    cases = [
        Case(program("\n".join([
            vv("vadd", 20, 0, 4, 4), vv("vmul", 24, 20, 8, 4), v1("vexp", 28, 24, 4),
            vv("vsub", 32, 28, 20, 4), v1("vmov", 36, 32, 4), v1("vgelu", 0, 36, 2),
        ])), random_vrf(rng, 40, d)),
        Case(program("\n".join([
            sli(0, 0.125), red("vacc", 1, 0, 4), sc("smul", 2, 1, 0), vs("vsubs", 8, 0, 2, 4),
            red("vaccsq", 3, 8, 4), sc("smul", 4, 3, 0), sli(5, 1e-5), sc("sadd", 4, 4, 5),
            sc("srsqrt", 6, 4), vs("vmuls", 12, 8, 6, 4), red("vmax", 7, 12, 4),
            sc("srecip", 8, 6), sc("ssub", 9, 8, 7), red("vacc", 10, 16, 0),
            "vargmax rd=r5, a=v[12], n=27",
        ])), random_vrf(rng, 32, d)),
        Case(program("\n".join([
            vv("vadd", 0, 0, 4, 4), vv("vadd", 0, 0, 4, 4), vs("vmuls", 4, 0, 0, 4),
            v1("vmov", 8, 4, 1), v1("vmov", 9, 8, 1), v1("vmov", 10, 9, 1),
        ])), random_vrf(rng, 16, d)),
    ]
    for _ in range(3):
        lines = [sli(0, 0.5), sli(1, -1.25)]
        for _ in range(25):
            k = int(rng.integers(0, 5))
            n = int(rng.integers(1, 6))
            y, a, b = (int(rng.integers(0, 48 - n)) for _ in range(3))
            while a < y < a + n or b < y < b + n:  # y may not start inside a source
                y = int(rng.integers(0, 48 - n))
            s1, s2, s3 = (int(rng.integers(0, 4)) for _ in range(3))
            if k == 0:
                lines.append(vv(str(rng.choice(["vadd", "vsub", "vmul"])), y, a, b, n))
            elif k == 1:
                lines.append(v1(str(rng.choice(["vexp", "vgelu", "vmov"])), y, a, n))
            elif k == 2:
                lines.append(vs(str(rng.choice(["vadds", "vsubs", "vmuls"])), y, a, s1, n))
            elif k == 3:
                lines.append(red(str(rng.choice(["vacc", "vaccsq", "vmax"])), 2 + s1 % 2, a,
                                 n))
            else:
                lines.append(sc(str(rng.choice(["sadd", "smul", "ssub"])), s1, s2, s3))
        cases.append(Case(program("\n".join(lines)), random_vrf(rng, 48, d)))
    return cases


def matrix_cases(rng: np.random.Generator) -> list[Case]:
    d, tb = CORE.d, CORE.tile_bytes
    mem = {"hbm": random_image(rng, 64 * 1024), "ddr": random_image(rng, 16 * 1024)}
    w = lambda space, tile: f"w={space}[{tile * tb}]"  # noqa: E731
    return [
        Case(program("\n".join([
            f"conv1d y=v[16], x=v[0], {w('hbm', 0)}, b=ddr[64], kt=3, nt=5",
            f"conv1d y=v[24], x=v[16], {w('hbm', 40)}, b=ddr[0], kt=3, nt=6, gelu",
            vv("vadd", 32, 24, 16, 3),
        ])), random_vrf(rng, 40, d), mem),
        Case(program("\n".join([
            sli(2, 0.35),
            f"maskedmm y=v[8], x=v[0], {w('hbm', 8)}, kt=2, nt=7, limit=r4, scale=s2, max=s16",
            vs("vsubs", 8, 8, 16, 4),
            f"mm y=v[20], x=v[8], {w('hbm', 100)}, kt=4, nt=2, kt_stride=6",
            f"mm y=v[24], x=v[0], {w('hbm', 200)}, kt=1, nt=1",
            f"mm y=v[25], x=v[0], {w('hbm', 201)}, kt=2, nt=13, batch=2",
            f"maskedmm y=v[40], x=v[0], {w('hbm', 300)}, kt=1, nt=3, batch=3, limit=r4, "
            "scale=s2, max=s20",
        ])), random_vrf(rng, 48, d), mem, regs=[0, 0, 0, 0, 5] + [0] * 27),
    ]


@pytest.mark.slow
def test_vector_and_matrix_programs() -> None:
    rng = np.random.default_rng(7)
    check_cases(CORE, vector_cases(rng) + matrix_cases(rng))


def lut_cases(rng: np.random.Generator) -> list[Case]:
    """lutmv with and without bias and GELU, batch 2, several groups and planes; inputs from
    the VRF, packed BCQ streams in HBM (32-byte aligned), biases in DDR."""
    from dfx.compiler.quant.bcq import bcq
    from dfx.isa.golden import lutgemm as glut

    d, s = CORE.d, CORE.lutgemm.slice
    hbm = np.zeros(64 * 1024, np.uint8)
    lines, addr = [], 0
    for n, k, g, q, bias, gelu, batch in ((13, 32, 16, 2, 1, 0, 1), (8, 16, 8, 3, 1, 1, 2),
                                         (20, 24, 8, 1, 0, 0, 1)):
        w = bcq((rng.standard_normal((k, n)) * 0.3).astype(np.float32), q, g)
        packed = glut.pack(w, s)
        hbm[addr:addr + packed.size] = packed
        flags = (", bias" if bias else "") + (", gelu" if gelu else "")
        kv = -(-k // d)
        lines.append(f"lutmv y=v[{20 + len(lines) * 8}], x=v[{len(lines) * 6}], w=hbm[{addr}], "
                     f"b=ddr[{2 * len(lines) * 64}], n={n}, ng={k // g}, gs={g // s}, q={q}, "
                     f"batch={batch}{flags}")
        assert kv * batch <= 6
        addr += -(-packed.size // 64) * 64
    mem = {"hbm": hbm, "ddr": random_image(rng, 4096)}
    return [Case(program("\n".join(lines)), random_vrf(rng, 48, d), mem)]


@pytest.mark.slow
def test_lutmv_programs() -> None:
    check_cases(CORE, lut_cases(np.random.default_rng(11)))
