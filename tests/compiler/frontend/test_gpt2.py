"""GPT2Config validation and GPT2Model: FP16 conversion, names, shapes, tying, lazy access."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.compiler.frontend import (
    GPT2Config,
    GPT2Model,
    ModelConfigError,
    WeightsError,
)
from dfx.isa.errors import DfxError

TINY = GPT2Config(n_layer=2, n_embd=8, n_head=2, n_ctx=5, vocab_size=11, name="t")


def random_weights(config: GPT2Config, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in config.tensor_shapes().items()}


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------- config
def test_config_derived_values_and_shapes():
    c = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_ctx=1024, vocab_size=50257)
    assert (c.head_dim, c.n_inner, c.activation, c.layer_norm_epsilon) == (
        64,
        3072,
        "gelu_new",
        1e-5,
    )
    shapes = c.tensor_shapes()
    assert len(shapes) == 2 + 12 * 12 + 2
    names = list(shapes)
    assert names[:4] == ["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias"]
    assert names[-2:] == ["ln_f.weight", "ln_f.bias"]
    assert shapes["h.3.attn.c_attn.weight"] == (768, 2304)
    assert shapes["h.3.mlp.c_proj.weight"] == (3072, 768)
    assert "lm_head.weight" not in shapes
    assert c.tensor_shapes(lm_head=True)["lm_head.weight"] == (50257, 768)
    assert c.n_params() == 124_439_808  # GPT-2 small as reported by transformers
    assert c.n_params() == sum(int(np.prod(s)) for s in shapes.values())


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TINY.n_layer = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"activation": "gelu"}, "activation 'gelu' is not supported; DFX implements only"),
        ({"activation": "relu"}, "only 'gelu_new'"),
        ({"n_embd": 10, "n_head": 4}, "n_embd 10 is not divisible by n_head 4"),
        ({"n_layer": 0}, "n_layer must be a positive integer, got 0"),
        ({"n_ctx": 2.0}, "n_ctx must be a positive integer"),
        ({"vocab_size": True}, "vocab_size must be a positive integer, got True"),
        ({"layer_norm_epsilon": 0.0}, "layer_norm_epsilon must be a positive finite number"),
        ({"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon must be"),
        ({"name": ""}, "name must be a non-empty string"),
    ],
)
def test_config_rejects(kwargs, expected):
    base = dict(n_layer=1, n_embd=8, n_head=2, n_ctx=4, vocab_size=10)
    with pytest.raises(ModelConfigError) as exc:
        GPT2Config(**{**base, **kwargs})
    assert expected in one_line(exc)
    assert isinstance(exc.value, DfxError)


# -------------------------------------------------------------------------------- model
def test_weights_become_fp16_with_round_to_nearest_even():
    w = random_weights(TINY)
    # 1 + 2**-11 is halfway between 1 and the next float16: ties go to even (1.0);
    # 1 + 3 * 2**-11 is halfway between 1 + 2**-10 and 1 + 2**-9: ties go to 1 + 2**-9.
    w["ln_f.weight"][:3] = [1 + 2**-11, 1 + 3 * 2**-11, 1e-8]
    m = GPT2Model(TINY, w)
    got = m["ln_f.weight"]
    assert got.dtype == np.float16
    assert list(got[:3].astype(np.float64)) == [1.0, 1 + 2**-9, np.float16(1e-8)]
    for name, arr in m.iter_tensors():
        np.testing.assert_array_equal(arr, w[name].astype(np.float16))
    assert m.has_weights and not m.is_lazy and m.tied_lm_head
    assert m.n_params == TINY.n_params()
    with pytest.raises(ValueError):
        got[0] = 0  # views handed out are read-only


def test_names_order_and_layer_access():
    m = GPT2Model(TINY, random_weights(TINY))
    assert m.names() == tuple(TINY.tensor_shapes())
    assert "h.1.mlp.c_fc.bias" in m
    layer = m.layer(1)
    assert set(layer) == {n.removeprefix("h.1.") for n in TINY.layer_tensor_shapes(1)}
    np.testing.assert_array_equal(layer["attn.c_attn.weight"], m["h.1.attn.c_attn.weight"])


def test_missing_tensor_names_tensor_and_shape():
    w = random_weights(TINY)
    del w["h.1.attn.c_proj.bias"]
    with pytest.raises(WeightsError) as exc:
        GPT2Model(TINY, w)
    assert "missing tensor 'h.1.attn.c_proj.bias'" in one_line(exc)
    assert "[8]" in str(exc.value)


def test_wrong_shape_names_expected_and_actual():
    w = random_weights(TINY)
    w["h.0.attn.c_attn.weight"] = w["h.0.attn.c_attn.weight"].T  # [3E, E]: torch Linear layout
    with pytest.raises(WeightsError) as exc:
        GPT2Model(TINY, w)
    msg = one_line(exc)
    assert "'h.0.attn.c_attn.weight'" in msg and "expected shape [8, 24], got [24, 8]" in msg


def test_unexpected_tensor_and_integer_dtype_and_overflow():
    w = random_weights(TINY)
    with pytest.raises(WeightsError, match="unexpected tensor 'transformer.wte.weight'"):
        GPT2Model(TINY, {**w, "transformer.wte.weight": w["wte.weight"]})
    with pytest.raises(WeightsError, match="dtype int32 is not a floating-point type"):
        GPT2Model(TINY, {**w, "ln_f.bias": np.zeros(8, np.int32)})
    big = w["wpe.weight"].copy()
    big[0, 0] = 1e6
    with pytest.raises(WeightsError, match=r"'wpe.weight': values beyond the float16 range"):
        GPT2Model(TINY, {**w, "wpe.weight": big})
    nan = w["ln_f.bias"].copy()
    nan[2] = np.nan
    with pytest.raises(WeightsError, match="'ln_f.bias': NaN or infinite values"):
        GPT2Model(TINY, {**w, "ln_f.bias": nan})


def test_lm_head_equal_to_wte_is_tied_distinct_is_kept():
    w = random_weights(TINY)
    tied = GPT2Model(TINY, {**w, "lm_head.weight": w["wte.weight"].copy()})
    assert tied.tied_lm_head and "lm_head.weight" not in tied.names()
    np.testing.assert_array_equal(tied.lm_head_weight(), tied["wte.weight"])
    with pytest.raises(WeightsError, match="tied"):
        tied["lm_head.weight"]
    head = -w["wte.weight"]
    untied = GPT2Model(TINY, {**w, "lm_head.weight": head})
    assert not untied.tied_lm_head and untied.names()[-1] == "lm_head.weight"
    np.testing.assert_array_equal(untied.lm_head_weight(), head.astype(np.float16))
    assert untied.n_params == TINY.n_params(lm_head=True)


def test_model_without_weights():
    m = GPT2Model(TINY, None, source="x")
    assert not m.has_weights and m.names() == () and list(m.iter_tensors()) == []
    with pytest.raises(WeightsError) as exc:
        m["wte.weight"]
    assert "without weights" in one_line(exc)
    assert "no weights" in repr(m)


def test_lazy_model_reads_on_each_access_and_matches_eager():
    w = random_weights(TINY)
    calls: list[str] = []

    def loader(name: str) -> np.ndarray:
        calls.append(name)
        return w[name]

    lazy = GPT2Model.from_loader(TINY, loader, lazy=True)
    assert calls == [] and lazy.is_lazy and lazy.has_weights
    assert [n for n, _ in lazy.iter_tensors()] == list(TINY.tensor_shapes())
    lazy["wte.weight"]
    assert calls.count("wte.weight") == 2
    eager = lazy.materialize()
    assert not eager.is_lazy
    ref = GPT2Model(TINY, w)
    for (n1, a1), (n2, a2) in zip(eager.iter_tensors(), ref.iter_tensors(), strict=True):
        assert n1 == n2
        np.testing.assert_array_equal(a1, a2)


def test_lazy_model_validates_when_read():
    w = random_weights(TINY)
    w["ln_f.bias"] = np.zeros(9, np.float32)
    lazy = GPT2Model.from_loader(TINY, w.__getitem__, lazy=True)
    lazy["wte.weight"]
    with pytest.raises(WeightsError, match="'ln_f.bias': expected shape"):
        lazy["ln_f.bias"]
