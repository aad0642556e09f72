"""QuantSpec: text form round trip, defaults, layer exclusion, group sizes, one-line errors."""

from __future__ import annotations

import pytest

from dfx.compiler.quant import QuantError, QuantSpec
from dfx.isa.errors import DfxError


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("bcq:q=3,g=128", QuantSpec("bcq", 3, 128)),
        ("rtn:q=4,g=64", QuantSpec("rtn", 4, 64)),
        ("bcq:q=2,g=row,rounds=5,exclude=lm_head+h.0.*",
         QuantSpec("bcq", 2, None, 5, ("lm_head", "h.0.*"))),
        ("bcq:q=1,exclude=none", QuantSpec("bcq", 1, 128, exclude=())),
        (" BCQ : q = 4 , g = 32 ", QuantSpec("bcq", 4, 32)),
        ("rtn:q=2,g=ROW", QuantSpec("rtn", 2, None)),
        ("bcq:q=3,rounds=0", QuantSpec("bcq", 3, 128, 0)),
    ],
)
def test_parse(text, spec):
    assert QuantSpec.parse(text) == spec
    assert QuantSpec.parse(spec.text()) == spec  # canonical text round-trips


def test_canonical_text():
    assert QuantSpec.parse("bcq:q=3,g=128").text() == "bcq:q=3,g=128,rounds=15,exclude=lm_head"
    assert QuantSpec.parse("rtn:g=row,q=4,exclude=none").text() == "rtn:q=4,g=row,exclude=none"
    s = QuantSpec("bcq", 2, 64, 3, ("h.1?.mlp.*", "lm_head"))
    assert s.text() == "bcq:q=2,g=64,rounds=3,exclude=h.1?.mlp.*+lm_head"
    assert str(s) == s.text()


def test_quantizes():
    s = QuantSpec.parse("bcq:q=3,exclude=lm_head+h.0.*+h.*.attn.c_proj")
    assert not s.quantizes("lm_head")
    assert not s.quantizes("h.0.mlp.c_fc")
    assert not s.quantizes("h.7.attn.c_proj")
    assert s.quantizes("h.10.mlp.c_fc")  # h.0.* does not match h.10
    assert s.quantizes("h.1.attn.c_attn")
    assert QuantSpec("rtn", 4, 64, exclude=()).quantizes("lm_head")


def test_group():
    assert QuantSpec("bcq", 3, 128).group(768, 32, "h.0.attn.c_attn") == 128
    assert QuantSpec("bcq", 3, None).group(3072, 32, "h.0.mlp.c_proj") == 3072
    assert QuantSpec("rtn", 2, 8).group(64, 8, "h.1.mlp.c_fc") == 8


@pytest.mark.parametrize(
    ("spec", "k", "slice_", "needle"),
    [
        (QuantSpec("bcq", 3, 96), 1600, 32, "does not divide k"),
        (QuantSpec("bcq", 3, 16), 768, 32, "not a multiple of the lane word"),
        (QuantSpec("bcq", 3, None), 1000, 32, "not a multiple of the lane word"),
        (QuantSpec("rtn", 4, None), 16384, 32, "exceeds 8192"),
    ],
)
def test_group_errors(spec, k, slice_, needle):
    with pytest.raises(QuantError) as e:
        spec.group(k, slice_, "h.3.mlp.c_proj")
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    g = k if spec.g is None else spec.g
    for part in ("layer h.3.mlp.c_proj", f"k = {k}", f"g = {g}", f"slice = {slice_}"):
        assert part in msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("int4:q=4", "unknown scheme 'int4'; known schemes: bcq, rtn"),
        ("bcq:q=5", "q must be an integer in 1..4, got 5"),
        ("bcq:q=0,g=64", "q must be an integer in 1..4, got 0"),
        ("bcq:q=x", "q must be an integer, got 'x'"),
        ("bcq:g=64", "q (bits per weight, 1..4) is required"),
        ("bcq", "q (bits per weight, 1..4) is required"),
        ("bcq:q=3,g=0", "g must be a positive integer or 'row', got '0'"),
        ("bcq:q=3,g=-8", "g must be a positive integer or 'row', got '-8'"),
        ("bcq:q=3,g=1.5", "g must be a positive integer or 'row', got '1.5'"),
        ("bcq:q=3,bits=2", "unknown key 'bits'; known keys: q, g, rounds, exclude"),
        ("bcq:q=3,q=2", "q given twice"),
        ("bcq:q=3,,g=64", "expected key=value, got ''"),
        ("bcq:q=3,g", "expected key=value, got 'g'"),
        ("bcq:q=3,g=", "expected key=value, got 'g='"),
        ("q=3,g=64", "expected SCHEME:key=value"),
        (":q=3", "expected SCHEME:key=value"),
        ("", "expected SCHEME:key=value"),
        ("bcq:q=3,rounds=-1", "rounds must be an integer, got '-1'"),
        ("rtn:q=3,rounds=4", "rounds applies to scheme bcq only, not rtn"),
        ("bcq:q=3,exclude=lm_head+", "bad exclude pattern ''"),
        ("bcq:q=3,exclude=h.0.*+a b", "bad exclude pattern 'a b'"),
    ],
)
def test_parse_errors(text, needle):
    with pytest.raises(QuantError) as e:
        QuantSpec.parse(text)
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg
    assert isinstance(e.value, DfxError) and e.value.exit_code == 1  # bad input (README)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"scheme": "gptq", "q": 3, "g": 128}, "unknown scheme 'gptq'"),
        ({"scheme": "bcq", "q": True, "g": 128}, "q must be an integer in 1..4"),
        ({"scheme": "bcq", "q": 3, "g": 0}, "g must be a positive integer or 'row'"),
        ({"scheme": "bcq", "q": 3, "g": 128, "rounds": -2}, "rounds must be a non-negative"),
        ({"scheme": "bcq", "q": 3, "g": 128, "exclude": ["lm_head"]}, "exclude must be a tuple"),
        ({"scheme": "bcq", "q": 3, "g": 128, "exclude": ("a,b",)}, "bad exclude pattern"),
    ],
)
def test_constructor_errors(kwargs, needle):
    with pytest.raises(QuantError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        QuantSpec(**kwargs)


def test_parse_rejects_non_text():
    with pytest.raises(QuantError, match="expected text"):
        QuantSpec.parse(3)  # type: ignore[arg-type]
