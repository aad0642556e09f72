"""Vector and scalar programs on the Backend (issue, scoreboard, SRF, VRF, VPU port), bit for
bit against the functional simulator (Amaranth simulator)."""

from __future__ import annotations

import numpy as np
import pytest
from backend_harness import check_same, random_vrf

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


def test_elementwise_chain() -> None:
    rng = np.random.default_rng(1)
    check_same(CORE, "\n".join([
        vv("vadd", 20, 0, 4, 4), vv("vmul", 24, 20, 8, 4), v1("vexp", 28, 24, 4),
        vv("vsub", 32, 28, 20, 4), v1("vmov", 36, 32, 4), v1("vgelu", 0, 36, 2),
    ]), random_vrf(rng, 40, CORE.d))


def test_reductions_and_scalars() -> None:
    rng = np.random.default_rng(2)
    check_same(CORE, "\n".join([
        sli(0, 0.125), red("vacc", 1, 0, 4), sc("smul", 2, 1, 0), vs("vsubs", 8, 0, 2, 4),
        red("vaccsq", 3, 8, 4), sc("smul", 4, 3, 0), sli(5, 1e-5), sc("sadd", 4, 4, 5),
        sc("srsqrt", 6, 4), vs("vmuls", 12, 8, 6, 4), red("vmax", 7, 12, 4), sc("srecip", 8, 6),
        sc("ssub", 9, 8, 7), red("vacc", 10, 16, 0), "vargmax rd=r5, a=v[12], n=27",
    ]), random_vrf(rng, 32, CORE.d))


def test_in_place_and_back_to_back() -> None:
    rng = np.random.default_rng(3)
    check_same(CORE, "\n".join([
        vv("vadd", 0, 0, 4, 4), vv("vadd", 0, 0, 4, 4), vs("vmuls", 4, 0, 0, 4),
        v1("vmov", 8, 4, 1), v1("vmov", 9, 8, 1), v1("vmov", 10, 9, 1),
    ]), random_vrf(rng, 16, CORE.d))


@pytest.mark.parametrize("seed", range(3))
def test_random_vector_programs(seed: int) -> None:
    rng = np.random.default_rng(seed + 10)
    lines = [sli(0, 0.5), sli(1, -1.25)]
    for _ in range(25):
        k = int(rng.integers(0, 5))
        n = int(rng.integers(1, 6))
        y, a, b = (int(rng.integers(0, 48 - n)) for _ in range(3))
        s1, s2, s3 = (int(rng.integers(0, 4)) for _ in range(3))
        if k == 0:
            lines.append(vv(str(rng.choice(["vadd", "vsub", "vmul"])), y, a, b, n))
        elif k == 1:
            lines.append(v1(str(rng.choice(["vexp", "vgelu", "vmov"])), y, a, n))
        elif k == 2:
            lines.append(vs(str(rng.choice(["vadds", "vsubs", "vmuls"])), y, a, s1, n))
        elif k == 3:
            lines.append(red(str(rng.choice(["vacc", "vaccsq", "vmax"])), 2 + s1 % 2, a, n))
        else:
            lines.append(sc(str(rng.choice(["sadd", "smul", "ssub"])), s1, s2, s3))
    check_same(CORE, "\n".join(lines), random_vrf(rng, 48, CORE.d))
