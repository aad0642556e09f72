"""AdderTree: n FP32 inputs summed pairwise level by level (golden ``tree_sum32``), one input
set per cycle."""

import numpy as np
import pytest
from arith_harness import FP32_CORNERS, check_stream, ref_tree

from dfx.isa.config import load_core
from dfx.isa.golden import fp as gfp
from dfx.rtl.arith import AdderTree

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_geometry_and_latency():
    t = AdderTree(8, 3)
    assert (t.n, t.depth, t.add_latency, t.latency) == (8, 3, 3, 9)
    assert AdderTree(1).latency == 0 and AdderTree(2).latency == 11
    core = load_core("dfx-u280")
    t = AdderTree.from_core(core)
    assert (t.n, t.depth, t.add_latency, t.latency) == (64, 6, 11, 66)
    assert t.depth == core.mpu.tree_depth
    tiny = load_core("tiny")
    t = AdderTree.from_core(tiny)
    assert (t.n, t.latency) == (tiny.mpu.d, tiny.mpu.tree_depth * tiny.mpu.add_latency)
    for name in ("latency", "n", "depth", "add_latency"):
        with pytest.raises(AttributeError):
            setattr(t, name, 1)
    members = dict(AdderTree(4, 1).signature.members)
    assert sorted(members) == ["en", "inputs", "result", "valid_in", "valid_out"]
    assert members["inputs"].dimensions == (4,) and members["inputs"].shape == 32


@pytest.mark.parametrize(
    ("args", "exc", "msg"),
    [
        ((3,), ValueError, "n must be a power of two >= 1, not 3"),
        ((0,), ValueError, "n must be a power of two >= 1, not 0"),
        ((-4,), ValueError, "n must be a power of two >= 1, not -4"),
        ((4.0,), TypeError, "n must be a power of two >= 1, not 4.0"),
        ((4, -1), ValueError, "add_latency must be an integer >= 0, not -1"),
        ((4, 1.5), TypeError, "add_latency must be an integer >= 0, not 1.5"),
    ],
)
def test_bad_parameters(args, exc, msg):
    with pytest.raises(exc) as info:
        AdderTree(*args)
    assert str(info.value) == msg


def rows(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` rows of ``n`` FP32 patterns: mixed magnitudes, cancelling pairs, corners (inf,
    NaN, subnormals, zeros), near-overflow rows."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-40, 39, (k, 1)).astype(np.float64)
    r = gfp.f32_bits((rng.standard_normal((k, n)) * scale).astype(np.float32)).astype(np.uint32)
    q = k // 6
    if n >= 2:  # cancellation: the second half negates the first, give or take a few ulps
        half = r[q : 2 * q, : n // 2]
        ulps = rng.integers(0, 3, half.shape).astype(np.uint32)
        r[q : 2 * q, n // 2 :] = (half ^ np.uint32(1 << 31)) + ulps
    # sprinkle corner patterns
    corners = np.array(FP32_CORNERS, dtype=np.uint32)
    mask = rng.random((q, n)) < 0.4
    r[2 * q : 3 * q][mask] = rng.choice(corners, mask.sum())
    # subnormal rows and near-overflow rows
    r[3 * q : 4 * q] = rng.integers(0, 1 << 24, (q, n)).astype(np.uint32) | (
        rng.integers(0, 2, (q, n)).astype(np.uint32) << 31
    )
    r[4 * q : 5 * q] = rng.integers(0x7F000000, 0x7F800000, (q, n)).astype(np.uint32) | (
        rng.integers(0, 2, (q, n)).astype(np.uint32) << 31
    )
    return r


def _check(tree: AdderTree, r: np.ndarray) -> None:
    check_stream(tree, {f"inputs[{i}]": list(r[:, i]) for i in range(tree.n)}, ref_tree(r))


def test_tiny_core_lane_tree():
    core = load_core("tiny")  # d = 8, add_latency = 2
    _check(AdderTree.from_core(core), rows(core.mpu.d, 300, seed=40))


@pytest.mark.parametrize(("n", "add_latency"), [(1, 0), (2, 1), (4, 0), (4, 3), (16, 1)])
def test_other_shapes(n, add_latency):
    _check(AdderTree(n, add_latency), rows(n, 72 if n < 16 else 24, seed=41 + n + add_latency))


def test_order_is_pairwise_adjacent():
    """The tree's order matters: (a + b) + (c + d) with a = -b huge gives c + d exactly."""
    r = np.array([[0x7F000000, 0xFF000000, 0x3F800000, 0x33800000]], dtype=np.uint32)
    assert int(ref_tree(r)[0]) == 0x3F800000  # 1 + 2^-24 ties to 1
    _check(AdderTree(4, 1), np.repeat(r, 3, axis=0))
