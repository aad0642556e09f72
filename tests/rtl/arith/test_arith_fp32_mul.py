"""Fp32Mul: FP32 x FP32 with RNE, bit-exact against the golden model (numpy float32 multiply),
streamed one pair per cycle: all corner pairs (signed zeros, subnormals, max normals, inf, NaN
payloads) and random families aimed at the multiplier's paths (subnormal results, rounding
ties, overflow by rounding, subnormal x large)."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Shape
from arith_harness import (
    FP32_CORNERS,
    all_pairs,
    check_stream,
    pipeline_model,
    random_fp32_pairs,
    stream,
)

from dfx.isa.config import load_core
from dfx.isa.golden import fp as gfp
from dfx.rtl.arith.fp32_mul import DEFAULT_FP32_MUL_LATENCY, Fp32Mul

# construction-only tests build components they never elaborate
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def ref_mul32(a32, b32) -> np.ndarray:
    a = gfp.bits_f32(np.asarray(a32, dtype=np.uint32))
    b = gfp.bits_f32(np.asarray(b32, dtype=np.uint32))
    return np.asarray(gfp.f32_bits(gfp.mul32(a, b)))


def test_defaults_follow_the_dfx_core():
    core = load_core("dfx-u280")
    assert DEFAULT_FP32_MUL_LATENCY == core.mpu.mul_latency == 6
    assert Fp32Mul().latency == 6
    assert Fp32Mul.from_core(core).latency == 6
    assert Fp32Mul.from_core(load_core("tiny")).latency == load_core("tiny").mpu.mul_latency


def test_signature():
    members = dict(Fp32Mul(1).signature.members)
    assert {k: (m.flow.name, Shape.cast(m.shape).width) for k, m in members.items()} == {
        "a": ("In", 32),
        "b": ("In", 32),
        "valid_in": ("In", 1),
        "en": ("In", 1),
        "result": ("Out", 32),
        "valid_out": ("Out", 1),
    }
    assert members["en"].init == 1


@pytest.mark.parametrize(
    ("latency", "exc", "msg"),
    [
        (-1, ValueError, "latency must be an integer >= 0, not -1"),
        (2.0, TypeError, "latency must be an integer >= 0, not 2.0"),
        (True, TypeError, "latency must be an integer >= 0, not True"),
    ],
)
def test_bad_latency(latency, exc, msg):
    with pytest.raises(exc) as info:
        Fp32Mul(latency)
    assert str(info.value) == msg


def test_latency_is_read_only():
    with pytest.raises(AttributeError):
        Fp32Mul(2).latency = 3


def test_reference_covers_the_policy():
    """The reference is IEEE RNE with gradual underflow; the vectors contain these cases."""
    one, inf, qnan = 0x3F800000, 0x7F800000, 0x7FC00000
    cases = {
        (0x00000001, 0x3F000000): 0x00000000,  # min_sub * 0.5: tie, to even (0)
        (0x00000003, 0x3F000000): 0x00000002,  # 1.5 ulp: tie, to even (2)
        (0x00000001, 0x3F400000): 0x00000001,  # 0.75 ulp rounds up to min_sub
        (0x00800000, 0x3F000000): 0x00400000,  # min normal * 0.5 -> subnormal, exact
        (0x007FFFFF, 0x40000000): 0x00FFFFFE,  # subnormal * 2 -> normal
        (0x3F7FFFFF, 0x00800001): 0x00800000,  # rounds up to the min normal
        (0x7F7FFFFF, 0x3F800001): inf,  # overflow by rounding
        (0x7F7FFFFF, 0x3F7FFFFF): 0x7F7FFFFE,
        (inf, 0x80000000): qnan,  # inf * -0
        (0xFF812345, one): qnan,  # NaN payload and sign -> canonical
        (0x80000000, one): 0x80000000,  # -0 * 1 = -0
        (0x80000001, 0x00000001): 0x80000000,  # underflow to signed zero
        (0x3F800001, 0x3F800001): 0x3F800002,  # (1+u)^2 = 1 + 2u + u^2: rounds down
    }
    a, b = zip(*cases, strict=True)
    assert list(ref_mul32(a, b)) == list(cases.values())


def mul_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """FP32 operand pairs aimed at a multiplier (``n`` per kind)."""
    u32 = np.uint32

    def make(e, f, s=None):
        s = rng.integers(0, 2, len(e), dtype=u32) << u32(31) if s is None else s
        return (s | (np.asarray(e).astype(u32) << u32(23)) | np.asarray(f).astype(u32)).astype(u32)

    frac = lambda k: rng.integers(0, 1 << 23, k)  # noqa: E731
    A, B = [], []
    # exponent sums around the subnormal range: ea + eb - 127 in [-30, 4]
    ea = rng.integers(1, 127, n)
    eb = np.clip(127 + rng.integers(-30, 5, n) - ea, 1, 254)
    A.append(make(ea, frac(n)))
    B.append(make(eb, frac(n)))
    # exponent sums around overflow: ea + eb - 127 in [252, 256]
    ea = rng.integers(130, 255, n)
    eb = np.clip(127 + rng.integers(252, 257, n) - ea, 1, 254)
    A.append(make(ea, frac(n)))
    B.append(make(eb, frac(n)))
    # short significands (<= 12 bits each): many products are exact or exact ties, also in
    # the subnormal range
    short = lambda k: rng.integers(0, 1 << 12, k) << 11  # noqa: E731
    ea = rng.integers(1, 254, n)
    eb = np.clip(127 + rng.integers(-160, 20, n) - ea, 0, 254)
    A.append(make(ea, short(n)))
    B.append(make(eb, short(n)))
    # subnormal x anything moderately large (normalised subnormal significands)
    A.append(make(np.zeros(n, dtype=np.int64), frac(n)))
    B.append(make(rng.integers(100, 254, n), frac(n)))
    # products of values 1 + k ulp (ties and near ties of the 48-bit product)
    A.append(make(rng.integers(100, 150, n), rng.integers(0, 64, n)))
    B.append(make(rng.integers(100, 150, n), (1 << 23) - rng.integers(1, 64, n)))
    return np.concatenate(A), np.concatenate(B)


def vectors(n_per_kind: int, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    a, b = all_pairs(FP32_CORNERS)
    x, y = mul_pairs(rng, n_per_kind)
    r, s = random_fp32_pairs(rng, n_per_kind // 3)  # adder families: raw patterns, ties ...
    return (
        a + [int(v) for v in x] + [int(v) for v in r],
        b + [int(v) for v in y] + [int(v) for v in s],
    )


def test_vectors_hit_the_interesting_paths():
    a, b = vectors(500, seed=60)
    r = ref_mul32(a, b)
    exp = (r >> 23) & 0xFF
    frac = r & 0x7FFFFF
    assert ((exp == 0) & (frac != 0)).sum() > 300, "subnormal results"
    assert ((exp == 0xFF) & (frac == 0)).sum() > 300, "infinities"
    assert ((r & 0x7FFFFFFF) == 0).sum() > 300, "zeros"
    # exact ties: the product needs exactly one bit more than the result keeps
    with np.errstate(all="ignore"):
        fa = gfp.bits_f32(np.asarray(a, dtype=np.uint32)).astype(np.float64)
        fb = gfp.bits_f32(np.asarray(b, dtype=np.uint32)).astype(np.float64)
        exact = fa * fb  # exact in float64 for normal operands with short significands
        ok = np.isfinite(exact) & (exact != 0)
        rv = gfp.bits_f32(r).astype(np.float64)
        ulp = np.abs(np.spacing(gfp.bits_f32(r)).astype(np.float64))
        tie = ok & np.isfinite(rv) & (np.abs(np.abs(exact - rv) - ulp / 2) == 0)
    assert tie.sum() > 100, "rounding ties"


def test_stream_default_latency():
    a, b = vectors(800, seed=61)  # 3844 corner pairs + 4266 random
    check_stream(Fp32Mul(), {"a": a, "b": b}, ref_mul32(a, b))


@pytest.mark.parametrize("latency", [0, 1, 2, 3, 4, 9])
def test_stream_other_latencies(latency):
    rng = np.random.default_rng(62 + latency)
    x, y = mul_pairs(rng, 60)
    corners = rng.choice(len(FP32_CORNERS), (2, 200))
    a = [int(v) for v in x] + [FP32_CORNERS[i] for i in corners[0]]
    b = [int(v) for v in y] + [FP32_CORNERS[i] for i in corners[1]]
    check_stream(Fp32Mul(latency), {"a": a, "b": b}, ref_mul32(a, b))


@pytest.mark.parametrize("latency", [1, 6])
def test_stalls_and_bubbles(latency):
    rng = np.random.default_rng(70 + latency)
    n, tail = 200, 2 * latency + 4
    x, y = mul_pairs(rng, n // 5)
    a, b = [int(v) for v in x[:n]], [int(v) for v in y[:n]]
    ref = [int(v) for v in ref_mul32(a, b)]
    en = [int(v) for v in rng.random(n) < 0.7]
    valid = [int(v) for v in rng.random(n) < 0.7]
    results, valids = stream(Fp32Mul(latency), {"a": a, "b": b}, en=en, valid=valid, tail=tail)
    en_all, valid_all = en + [1] * tail, valid + [0] * tail
    model = pipeline_model(ref + [None] * tail, valid_all, en_all, latency)
    assert valids == [v for _, v in model]
    for t, (want, v) in enumerate(model):
        if v:
            assert results[t] == want, f"cycle {t}: got {results[t]:#x}, want {want:#x}"


def test_verilog_converts():
    text = verilog.convert(Fp32Mul(), name="top")
    assert "module top(" in text and "posedge clk" in text
