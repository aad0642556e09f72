"""MPU construction: parameter validation with precise messages, read-only properties, the core
configurations, stream signatures and payload layouts (the offsets the testbenches pack), the
tile order contract and the latency figures."""

from __future__ import annotations

import pytest
from amaranth.hdl import Shape
from amaranth.lib import stream

from dfx.isa.config import load_core
from dfx.isa.golden import tables as gt
from dfx.rtl.mpu import Mfu, Mpu, SfuM, command_layout, output_layout, tile_layout, tile_order
from dfx.rtl.mpu.mpu import zigzag_interleave
from dfx.rtl.tb.mpu import CMD_FIELDS
from dfx.rtl.tb.mpu import tile_order as tb_tile_order

# construction-only tests build components they never elaborate
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

TINY = load_core("tiny")
U280 = load_core("dfx-u280")
GELU = gt.table_from_spec("gelu", TINY.tables.gelu)


def make(**kw) -> Mpu:
    args = {
        "d": 8,
        "l": 4,
        "mul_latency": 2,
        "dot_latency": 2,
        "add_latency": 2,
        "gelu_table": GELU,
        "gelu_latency": 2,
    }
    args.update(kw)
    return Mpu(**args)


@pytest.mark.parametrize(
    ("kw", "exc", "msg"),
    [
        ({"d": 12}, ValueError, "d must be a power of two, not 12"),
        ({"d": 0}, ValueError, "d must be a power of two, not 0"),
        ({"l": 3}, ValueError, "l must be a power of two, not 3"),
        ({"l": 16}, ValueError, "l must be a power of two <= d (8), not 16"),
        ({"d": 8.0}, ValueError, "d must be a power of two, not 8.0"),
        ({"add_latency": 0}, ValueError, "add_latency must be an integer >= 1, not 0"),
        ({"mul_latency": -1}, ValueError, "mul_latency must be an integer >= 0, not -1"),
        ({"dot_latency": -1}, ValueError, "dot_latency must be an integer >= 0, not -1"),
        ({"interleave": 1}, ValueError, "interleave must be an integer >= 2, not 1"),
        ({"queue_depth": 6}, ValueError, "queue_depth must be a power of two, not 6"),
        ({"scale_latency": "2"}, TypeError, "scale_latency must be an integer >= 0, not '2'"),
        ({"cvt_latency": -2}, ValueError, "cvt_latency must be an integer >= 0, not -2"),
        ({"gelu_latency": 0}, ValueError, "latency must be an integer >= 1, not 0"),
    ],
)
def test_bad_parameters(kw, exc, msg):
    with pytest.raises(exc) as info:
        make(**kw)
    assert str(info.value) == msg


def test_bad_gelu_table():
    with pytest.raises(TypeError, match="gelu_table must be a golden gelu PwlTable"):
        make(gelu_table=TINY.tables.gelu)
    with pytest.raises(TypeError, match="gelu_table must be a golden gelu PwlTable"):
        make(gelu_table=gt.table_from_spec("exp", TINY.tables.exp))


def test_from_core_and_properties():
    t = Mpu.from_core(TINY)
    assert (t.d, t.l, t.mul_latency, t.dot_latency, t.add_latency) == (8, 4, 2, 2, 2)
    assert (t.interleave, t.queue_depth) == (2, 8)  # power of two above mfu_latency + 1
    assert t.gelu_table is GELU
    u = Mpu.from_core(U280)
    # the zig-zag block: the fewest whole output vectors (d/l = 4 groups) covering add = 11
    assert (u.d, u.l, u.mul_latency, u.add_latency, u.interleave) == (64, 16, 6, 11, 12)
    assert u.gelu_table.points == 2048 and u.queue_depth == 32 and u.dot_latency == 7
    assert Mpu.from_core(TINY, interleave=5).interleave == 5
    attrs = "d l mul_latency add_latency interleave queue_depth gelu_table latency"
    more = " mfu_latency sfu_latency rowmax_latency epilogue_latency bias_latency"
    for attr in (attrs + more).split():
        with pytest.raises(AttributeError):
            setattr(t, attr, 1)


@pytest.mark.parametrize(
    ("d", "l", "add", "g"),
    [(8, 4, 2, 2), (64, 16, 11, 12), (8, 2, 3, 4), (8, 2, 5, 8), (4, 4, 3, 3)],
)
def test_default_interleave_is_whole_vectors(d, l, add, g):  # noqa: E741
    assert zigzag_interleave(d, l, add) == g
    assert make(d=d, l=l, add_latency=add).interleave == g


def test_latencies():
    """MFU = mul + dot (the lane dot product) + add (accumulator); SFU = bias add + scale mul +
    round16 + GELU + vectorizer; + 1 output buffer."""
    t = Mpu.from_core(TINY)
    assert t.mfu_latency == 2 + 2 + 2 == 6
    assert t.sfu_latency == 2 + 2 + 2 + 2 + 1 == 9
    assert t.latency == 16 and t.rowmax_latency == 17
    u = Mpu.from_core(U280)
    assert u.mfu_latency == 6 + 7 + 11 == 24
    assert u.sfu_latency == 11 + 6 + 2 + 4 + 1 == 24
    assert u.latency == 49 and u.rowmax_latency == 50
    assert u.epilogue_latency == u.sfu_latency + 1 and u.bias_latency == u.sfu_latency + 2


def test_signature():
    t = Mpu.from_core(TINY)
    members = dict(t.signature.members)
    assert set(members) == {"cmd", "tiles", "bias", "out", "rowmax"}
    flows = {k: v.flow.name for k, v in members.items()}
    assert flows == {"cmd": "In", "tiles": "In", "bias": "In", "out": "Out", "rowmax": "Out"}
    for k in members:
        assert isinstance(members[k].signature, stream.Signature)
    assert Shape.cast(tile_layout(8, 4)).width == 16 * 8 + 16 * 8 * 4
    assert Shape.cast(output_layout(8)).width == 16 * 8 + 1
    assert t.bias.payload.shape().size == 16 * 4
    assert Shape.cast(t.rowmax.payload.shape()).width == 32


def test_layout_offsets_match_the_testbench():
    lay = command_layout()
    assert {name: (f.offset, Shape.cast(f.shape).width) for name, f in lay} == CMD_FIELDS
    tl = tile_layout(8, 4)
    assert tl["x"].offset == 0 and tl["w"].offset == 128
    assert output_layout(8)["last"].offset == 128


@pytest.mark.parametrize(("kt", "nt", "g"), [(1, 1, 2), (3, 5, 2), (2, 11, 11), (4, 23, 11)])
def test_tile_order(kt, nt, g):
    order = list(tile_order(kt, nt, g))
    assert order == list(tb_tile_order(kt, nt, g))
    assert sorted(order) == [(n, k) for n in range(nt) for k in range(kt)]
    # kt increases per output group; one group's consecutive tiles are min(g, block) apart
    for n in range(nt):
        pos = [i for i, (m, _) in enumerate(order) if m == n]
        assert [order[i][1] for i in pos] == list(range(kt))
        block = min(g, nt - (n // g) * g)
        assert all(b - a == block for a, b in zip(pos, pos[1:], strict=False))
    assert Mpu.from_core(TINY).tile_order(kt, nt) == list(tile_order(kt, nt, 2))


def test_submodules_validate():
    with pytest.raises(ValueError, match="slots must be an integer >= 3, not 2"):
        Mfu(8, 4, mul_latency=1, dot_latency=1, add_latency=3, slots=2)
    with pytest.raises(ValueError, match="l must be a power of two <= d \\(4\\), not 8"):
        SfuM(4, 8, add_latency=1, scale_latency=1, cvt_latency=1, gelu_table=GELU, gelu_latency=1)
    with pytest.raises(ValueError, match="gelu_table must be a gelu table, not 'exp'"):
        exp = gt.table_from_spec("exp", TINY.tables.exp)
        SfuM(8, 4, add_latency=1, scale_latency=1, cvt_latency=1, gelu_table=exp, gelu_latency=1)
