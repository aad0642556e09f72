"""Built-in presets: architectures, GPT-2-style seeded init, lazy/no-weights modes, resolution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfx.compiler.frontend import (
    PRESETS,
    CheckpointError,
    PresetError,
    get_preset,
    list_presets,
    load_model,
    preset_model,
    save_checkpoint,
)
from dfx.compiler.frontend.presets import init_tensor


def test_preset_table():
    assert list_presets() == [
        "gpt2",
        "gpt2-medium",
        "gpt2-large",
        "gpt2-xl",
        "gpt2-xl-24h",
        "gpt2-tiny",
        "gpt2-mini",
    ]
    dims = {
        n: (c.n_layer, c.n_embd, c.n_head, c.n_ctx, c.vocab_size)
        for n, c in ((n, p.config) for n, p in PRESETS.items())
    }
    assert dims == {
        "gpt2": (12, 768, 12, 1024, 50257),
        "gpt2-medium": (24, 1024, 16, 1024, 50257),
        "gpt2-large": (36, 1280, 20, 1024, 50257),
        "gpt2-xl": (48, 1600, 25, 1024, 50257),
        "gpt2-xl-24h": (48, 1536, 24, 1024, 50257),
        "gpt2-tiny": (2, 64, 4, 128, 50257),
        "gpt2-mini": (4, 256, 4, 256, 50257),
    }
    for name, p in PRESETS.items():
        assert p.name == p.config.name == name and p.description
        assert p.config.head_dim == (16 if name == "gpt2-tiny" else 64)
        assert p.config.activation == "gelu_new" and p.config.layer_norm_epsilon == 1e-5
    assert PRESETS["gpt2-xl"].config.n_params() == 1_557_611_200
    assert PRESETS["gpt2-xl-24h"].config.n_head % 4 == 0  # heads divide over 4 FPGAs


def test_unknown_preset():
    with pytest.raises(PresetError, match="unknown preset 'gpt3'; known presets: gpt2, "):
        get_preset("gpt3")


def test_tiny_weights_follow_gpt2_init():
    m = preset_model("gpt2-tiny")
    c = m.config
    assert m.has_weights and not m.is_lazy and m.tied_lm_head
    assert m.names() == tuple(c.tensor_shapes())
    for name, arr in m.iter_tensors():
        assert arr.dtype == np.float16 and arr.shape == c.tensor_shapes()[name]

    def std(name):
        return float(m[name].astype(np.float64).std())

    assert std("wte.weight") == pytest.approx(0.02, rel=0.01)
    assert std("wpe.weight") == pytest.approx(0.01, rel=0.02)
    assert std("h.1.attn.c_attn.weight") == pytest.approx(0.02, rel=0.03)
    assert std("h.1.mlp.c_fc.weight") == pytest.approx(0.02, rel=0.03)
    resid = 0.02 / math.sqrt(2 * c.n_layer)
    assert std("h.0.attn.c_proj.weight") == pytest.approx(resid, rel=0.05)
    assert std("h.0.mlp.c_proj.weight") == pytest.approx(resid, rel=0.03)
    assert abs(float(m["wte.weight"].astype(np.float64).mean())) < 1e-4
    for name in ("h.0.ln_1.weight", "h.1.ln_2.weight", "ln_f.weight"):
        assert (m[name] == 1).all()
    for name in ("h.0.ln_1.bias", "h.0.attn.c_attn.bias", "h.1.mlp.c_fc.bias", "ln_f.bias"):
        assert (m[name] == 0).all()


def test_seed_determinism_and_independence():
    a = preset_model("gpt2-tiny", seed=1, lazy=True)
    b = preset_model("gpt2-tiny", seed=1)
    c = preset_model("gpt2-tiny", seed=2, lazy=True)
    np.testing.assert_array_equal(a["h.1.mlp.c_fc.weight"], b["h.1.mlp.c_fc.weight"])
    np.testing.assert_array_equal(a["wte.weight"], b["wte.weight"])
    assert not np.array_equal(a["wte.weight"], c["wte.weight"])
    # different tensors of one model are not copies of each other
    assert not np.array_equal(b["h.0.ln_1.weight"], b["h.0.mlp.c_proj.weight"][0, :64] * 0)
    assert not np.array_equal(b["h.0.attn.c_proj.weight"], b["h.1.attn.c_proj.weight"])
    # a tensor does not depend on the order in which tensors are generated
    cfg = a.config
    np.testing.assert_array_equal(
        init_tensor(cfg, "h.1.attn.c_attn.weight", seed=1), b["h.1.attn.c_attn.weight"]
    )


def test_scale_and_bias_std():
    base = preset_model("gpt2-tiny", lazy=True)
    big = preset_model("gpt2-tiny", scale=4.0, lazy=True)
    for name in ("wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.1.mlp.c_proj.weight"):
        np.testing.assert_allclose(
            big[name].astype(np.float32), base[name].astype(np.float32) * 4, rtol=2e-3, atol=1e-6
        )
    assert (big["h.0.ln_1.weight"] == 1).all() and (big["h.0.ln_1.bias"] == 0).all()
    noisy = preset_model("gpt2-tiny", bias_std=0.1, lazy=True)
    np.testing.assert_array_equal(noisy["wte.weight"], base["wte.weight"])
    for name in ("h.0.ln_1.bias", "h.1.attn.c_attn.bias", "ln_f.bias"):
        assert float(noisy[name].astype(np.float64).std()) == pytest.approx(0.1, rel=0.35)
    w = noisy["h.1.ln_2.weight"].astype(np.float64)
    assert abs(w.mean() - 1) < 0.05 and w.std() == pytest.approx(0.1, rel=0.35)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"scale": 0.0}, "scale must be a positive finite number"),
        ({"scale": float("inf")}, "scale must be a positive finite number"),
        ({"bias_std": -0.1}, "bias_std must be a non-negative finite number"),
        ({"scale": 1e7}, "too large: weights would overflow float16"),
    ],
)
def test_bad_generation_parameters(kwargs, expected):
    with pytest.raises(PresetError, match=expected):
        preset_model("gpt2-tiny", weights=False, **kwargs)


def test_big_presets_without_weights_are_instant():
    for name in ("gpt2-xl", "gpt2-xl-24h"):
        m = load_model(name, weights=False)
        assert not m.has_weights and m.config == PRESETS[name].config
        assert m.names() == () and "no weights" in m.source


def test_lazy_big_preset_generates_one_tensor_at_a_time():
    m = load_model("gpt2-xl-24h", lazy=True)  # nothing generated yet
    ln = m["h.47.ln_2.weight"]
    assert ln.shape == (1536,) and (ln == 1).all()
    qkv = m["h.0.attn.c_attn.bias"]
    assert qkv.shape == (4608,) and not qkv.any()


def test_load_model_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = load_model("gpt2-tiny", seed=3)
    assert tiny.config.name == "gpt2-tiny" and "seed 3" in tiny.source
    d = save_checkpoint(tiny, tmp_path / "ck", dtype="float16")
    back = load_model(str(d))
    assert back.config.name == "ck" and back.source == str(d)
    np.testing.assert_array_equal(back["h.1.mlp.c_fc.weight"], tiny["h.1.mlp.c_fc.weight"])
    assert load_model(d, lazy=True).is_lazy
    with pytest.raises(PresetError, match="apply only to presets"):
        load_model(d, scale=2.0)
    # a local directory wins over a preset of the same name
    save_checkpoint(tiny, tmp_path / "gpt2")
    assert load_model("gpt2", weights=False).config.n_embd == 64
    for hub_id in ("openai-community/gpt2-large", "distilgpt2"):
        with pytest.raises(CheckpointError) as exc:
            load_model(hub_id)
        assert str(exc.value).startswith(
            f"'{hub_id}' is not a local directory; dfx never "
            "downloads: pass a local Hugging Face checkpoint"
        )
    with pytest.raises(PresetError, match="empty model name"):
        load_model("")
    with pytest.raises(CheckpointError, match=r"checkpoint directory '\./missing/ck' does not"):
        load_model("./missing/ck")
