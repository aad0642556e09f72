"""The opt-in trained-like weight spread of the presets (``spread="gpt2"``), used by the
LUT-GEMM accuracy bench: heavy tails, per-tensor scales, default weights unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfx.compiler.frontend import PresetError, preset_model
from dfx.compiler.frontend.presets import init_tensor

MATRICES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def test_default_is_the_initialisation():
    a, b = preset_model("gpt2-tiny"), preset_model("gpt2-tiny", spread="init")
    assert all(np.array_equal(a[n], b[n]) for n in a.names())
    assert "spread" not in a.source


def test_trained_like_matrices():
    m = preset_model("gpt2-mini", spread="gpt2", seed=3)
    stds = []
    for i in range(m.config.n_layer):
        for kind in MATRICES:
            w = m[f"h.{i}.{kind}.weight"].astype(np.float64)
            s = w.std()
            assert 0.088 / 2 * 0.95 <= s <= 0.088 * 2 * 1.05
            kurt = ((w - w.mean()) ** 4).mean() / w.var() ** 2 - 3
            assert kurt > 2  # heavy-tailed (normal: 0)
            assert np.abs(w).max() > 8 * s  # outliers
            stds.append(s)
    assert max(stds) / min(stds) > 1.5  # per-tensor scales differ
    wte = m["wte.weight"].astype(np.float64)
    assert wte.std() == pytest.approx(3 / math.sqrt(m.config.n_embd), rel=0.01)
    init = preset_model("gpt2-mini", seed=3)
    for n in ("wpe.weight", "h.0.ln_1.weight", "h.1.mlp.c_fc.bias"):
        assert np.array_equal(m[n], init[n])
    assert "spread gpt2" in m.source


def test_deterministic_and_lazy():
    a = preset_model("gpt2-tiny", spread="gpt2", seed=1)
    b = preset_model("gpt2-tiny", spread="gpt2", seed=1, lazy=True)
    c = preset_model("gpt2-tiny", spread="gpt2", seed=2)
    name = "h.1.mlp.c_proj.weight"
    assert np.array_equal(a[name], b[name])
    assert not np.array_equal(a[name], c[name])
    assert np.array_equal(a[name], init_tensor(a.config, name, seed=1, spread="gpt2"))


def test_unknown_spread():
    with pytest.raises(PresetError, match="unknown spread 'real'; known spreads: init, gpt2"):
        preset_model("gpt2-tiny", spread="real")
    with pytest.raises(PresetError, match="unknown spread"):
        init_tensor(preset_model("gpt2-tiny", weights=False).config, "wte.weight", spread="x")
