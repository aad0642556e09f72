"""Vpu / Vfu / SfuV / ScalarTable construction: parameters from the core configuration,
validation messages, read-only properties, stream signatures, latency bookkeeping."""

import gc

import pytest
from amaranth.hdl import Shape
from amaranth.lib import data, stream, wiring

from dfx.isa.config import load_core
from dfx.isa.golden import tables as gtab
from dfx.rtl.isa_layouts import Opcode
from dfx.rtl.vpu import VFU_OPS, Command, ScalarTable, SfuV, Vfu, Vpu, VpuOp

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture(autouse=True)
def _collect_unused():
    """Components built here are never elaborated: collect them while the filter is active."""
    yield
    gc.collect()


LAT = dict(add_latency=2, mul_latency=2, table_latency=2, bypass_latency=1, scalar_latency=2)


def test_from_core_tiny_and_u280():
    for name in ("tiny", "dfx-u280"):
        core = load_core(name)
        vpu = Vpu.from_core(core)
        v = core.vpu
        assert vpu.d == core.d
        assert (vpu.add_latency, vpu.mul_latency, vpu.table_latency) == (
            v.add_latency,
            v.mul_latency,
            v.table_latency,
        )
        assert (vpu.bypass_latency, vpu.scalar_latency) == (v.bypass_latency, v.scalar_latency)
        assert vpu.cvt_latency == 1
        assert (vpu.acc_tree_latency, vpu.acc_add_latency, vpu.acc_convert_latency) == (
            v.acc_tree_latency,
            v.acc_add_latency,
            v.acc_convert_latency,
        )
        for fn in ("exp", "gelu", "recip", "rsqrt"):
            spec = getattr(core.tables, fn)
            tab = vpu.tables[fn]
            assert (tab.lo, tab.hi, tab.points) == (spec.lo, spec.hi, spec.points)
        assert vpu.latencies[VpuOp.VADD] == v.add_latency
        assert vpu.latencies[VpuOp.VMUL] == vpu.latencies[VpuOp.VMULS] == v.mul_latency
        assert vpu.latencies[VpuOp.VEXP] == vpu.latencies[VpuOp.VGELU] == v.table_latency
        assert vpu.latencies[VpuOp.VMOV] == v.bypass_latency
        assert set(vpu.latencies) == set(VFU_OPS)
        assert vpu.acc_interval == 1
        # vacc/vaccsq: the VFU stage, then tree + add + convert, whatever the vector count
        acc = v.acc_tree_latency + v.acc_add_latency + v.acc_convert_latency
        for n in (1, 2, 100):
            assert vpu.result_latency(VpuOp.VACC, n) == vpu.result_latency(VpuOp.VACCSQ, n)
            assert vpu.result_latency(VpuOp.VACC, n) == v.mul_latency - 1 + acc


def test_u280_numbers():
    vpu = Vpu.from_core(load_core("dfx-u280"))
    assert vpu.d == 64
    assert vpu.latencies[VpuOp.VADD] == 11 and vpu.latencies[VpuOp.VMOV] == 1
    # vacc of V vectors, from the last vector's issue: Fp16Mul (6 - 1), then the exact
    # accumulation: FP32 -> fixed + integer tree 4, wide accumulator 2, RNE to FP32 3 (the
    # result register is the converter's last stage)
    assert vpu.result_latency(VpuOp.VACC, 1) == 5 + 4 + 2 + 3
    assert vpu.result_latency(VpuOp.VACC, 4) == 5 + 4 + 2 + 3
    assert vpu.result_latency(VpuOp.VMAX) == 6 + 1
    assert vpu.result_latency(VpuOp.SADD) == 11 + 1
    assert vpu.result_latency(VpuOp.SRECIP) == 11 + 11 + 2 + 1
    with pytest.raises(ValueError, match="op: VADD has no scalar result"):
        vpu.result_latency(VpuOp.VADD)


def test_from_core_overrides():
    vpu = Vpu.from_core(load_core("dfx-u280"), d=4, scalar_latency=1, cvt_latency=2)
    assert (vpu.d, vpu.scalar_latency, vpu.cvt_latency, vpu.acc_interval) == (4, 1, 2, 1)


def test_properties_are_read_only():
    vpu = Vpu(8, **LAT)
    for name in (
        "d",
        "add_latency",
        "mul_latency",
        "table_latency",
        "bypass_latency",
        "scalar_latency",
        "cvt_latency",
        "acc_tree_latency",
        "acc_add_latency",
        "acc_convert_latency",
        "latencies",
        "acc_interval",
        "tables",
    ):
        with pytest.raises(AttributeError):
            setattr(vpu, name, 1)


def test_vpu_signature():
    vpu = Vpu(8, **LAT)
    members = dict(vpu.signature.members)
    assert sorted(members) == ["a", "b", "cmd", "result", "y"]
    v16 = data.ArrayLayout(16, 8)
    assert members["cmd"] == wiring.In(stream.Signature(Command))
    assert members["a"] == members["b"] == wiring.In(stream.Signature(v16))
    assert members["y"] == wiring.Out(stream.Signature(v16))
    assert members["result"] == wiring.Out(stream.Signature(32))
    assert Shape.cast(Command).width == 8 + 24 + 32 + 32
    assert list(dict(Command).keys()) == ["op", "n", "s", "t"]


def test_op_values_are_isa_opcodes():
    for op in VpuOp:
        assert op.value == Opcode[op.name].value
    assert Shape.cast(VpuOp).width == 8


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"d": 6}, ValueError, "d must be a power of two >= 1, not 6"),
        ({"d": 0}, ValueError, "d must be a power of two >= 1, not 0"),
        ({"d": 8.0}, TypeError, "d must be a power of two >= 1, not 8.0"),
        ({"add_latency": 0}, ValueError, "add_latency must be an integer >= 1, not 0"),
        ({"mul_latency": "2"}, TypeError, "mul_latency must be an integer >= 1, not '2'"),
        ({"table_latency": 0}, ValueError, "table_latency must be an integer >= 1, not 0"),
        ({"bypass_latency": 0}, ValueError, "bypass_latency must be an integer >= 1, not 0"),
        ({"scalar_latency": 0}, ValueError, "scalar_latency must be an integer >= 1, not 0"),
        ({"cvt_latency": -1}, ValueError, "cvt_latency must be an integer >= 0, not -1"),
        (
            {"cvt_latency": 3},
            ValueError,
            "add_latency must be an integer >= 3, not 2",
        ),
        (
            {"acc_tree_latency": -2},
            ValueError,
            "acc_tree_latency must be an integer >= 0, not -2",
        ),
        (
            {"acc_add_latency": 0},
            ValueError,
            "acc_add_latency must be an integer >= 1, not 0",
        ),
        (
            {"acc_convert_latency": 0},
            ValueError,
            "acc_convert_latency must be an integer >= 1, not 0",
        ),
        (
            {"tables": {"sin": {"lo": 0, "hi": 1, "points": 4}}},
            ValueError,
            "tables: unknown function 'sin' (allowed: exp, gelu, recip, rsqrt)",
        ),
        (
            {"tables": {"recip": {"lo": 1.0, "hi": 2.0, "points": 3}}},
            ValueError,
            "points: step h",
        ),
    ],
)
def test_bad_parameters(kwargs, exc, msg):
    args = {"d": 8, **LAT, **kwargs}
    with pytest.raises(exc) as info:
        Vpu(**args)
    assert str(info.value).startswith(msg), str(info.value)


def test_parts_validate_too():
    with pytest.raises(ValueError, match="fn must be one of"):
        ScalarTable("exp")
    with pytest.raises(ValueError, match="table is for 'exp', expected 'recip'"):
        ScalarTable("recip", gtab.default_table("exp"))
    with pytest.raises(ValueError, match="mul_latency must be an integer >= 0, not -1"):
        ScalarTable("rsqrt", mul_latency=-1)
    with pytest.raises(ValueError, match="scalar_latency must be an integer >= 1, not 0"):
        SfuV(8, scalar_latency=0)
    with pytest.raises(ValueError, match="mul_latency must be an integer >= 2, not 1"):
        Vfu(8, add_latency=2, mul_latency=1, table_latency=1, bypass_latency=1, cvt_latency=2)


def test_scalar_table_latency_and_rom():
    st = ScalarTable("rsqrt", {"lo": 1.0, "hi": 4.0, "points": 192}, mul_latency=3, add_latency=4)
    assert st.latency == 3 + 4 + 2 and st.fn == "rsqrt"
    rom = st.rom_init()
    assert len(rom) == 192
    tab = st.table
    assert rom[5] >> 32 == int(tab.y[5].view("uint32")) and rom[5] & 0xFFFFFFFF == int(
        tab.m[5].view("uint32")
    )
