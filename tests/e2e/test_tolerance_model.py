"""The error model behind the dfx-vs-Hugging-Face tolerance (docs/verification.md §3), tested
without the simulator: a float64 GPT-2 that rounds to FP16 exactly where dfx stores an
activation (fp16_model.py) stays within ``K u ||h||`` of the exact pass, over many shapes,
weight scales and prompts, and the bound is not vacuous (the tightest case uses most of it).

``pytest -s -k tolerance_model`` prints eta / (K u) per shape.
"""

from __future__ import annotations

import functools

import fp16_model
import hfref
import numpy as np
import pytest

from dfx.isa.config import load_core

CORE = load_core("dfx-u280")

# (n_layer, n_embd, n_head, scale): widths, depths, head dims 8..64 and weight scales 1..12
SHAPES = [(2, 64, 4, 1.0), (2, 64, 4, 4.0), (2, 64, 4, 8.0), (2, 64, 4, 12.0), (4, 64, 4, 8.0),
          (8, 64, 4, 8.0), (12, 64, 4, 8.0), (2, 128, 2, 8.0), (2, 128, 8, 8.0),
          (2, 128, 16, 8.0), (2, 256, 4, 4.0), (4, 256, 4, 8.0), (2, 256, 4, 10.0),
          (2, 32, 2, 8.0), (6, 128, 4, 6.0), (3, 192, 12, 6.0), (1, 64, 1, 8.0)]


@functools.cache
def worst_ratio(shape: tuple) -> float:
    """max over 3 prompts of 24 tokens and their positions of ||dh|| / (LAMBDA K u ||h||)."""
    n_layer, n_embd, n_head, scale = shape
    model = hfref.random_model(n_layer, n_embd, n_head, 64, 1000, seed=1, scale=scale,
                               bias_std=0.1)
    worst = 0.0
    for seed in range(3):
        ids = np.random.default_rng(seed).integers(0, 1000, 24).tolist()
        exact, stats = fp16_model.forward(model, ids, rounded=())
        approx, _ = fp16_model.forward(model, ids)
        ref = hfref.Reference(np.zeros((len(ids), 0)), exact, stats["score_rms"],
                              stats["gelu_rms"])
        k = hfref.hidden_error_bound(ref, n_layer, CORE)
        eta = np.linalg.norm(approx - exact, axis=1) / np.linalg.norm(exact, axis=1)
        worst = max(worst, float(eta.max() / (hfref.LAMBDA * k * hfref.U)))
    return worst


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "l{}-e{}-h{}-x{:g}".format(*s))
def test_fp16_roundings_stay_within_the_modelled_bound(shape: tuple) -> None:
    worst = worst_ratio(shape)
    print("\nl{} e{} h{} scale {:g}: max eta / (lambda K u) = {:.3f}".format(*shape, worst))
    assert worst <= 1.0


def test_bound_is_not_vacuous() -> None:
    """The tightest shape (one layer, one head) uses more than half of the bound."""
    assert worst_ratio((1, 64, 1, 8.0)) > 0.5


def test_rounding_points_are_the_lowering_count() -> None:
    """The emulator rounds at 20 points per layer on the longest path plus 5 outside, as
    hfref counts: LayerNorm is 4 of them."""
    per_layer = (2 * 4 + len([p for p in fp16_model.ROUNDING_POINTS
                              if p not in ("embed", "ln")]) + 1)  # two residual adds
    assert per_layer == hfref.ROUNDINGS_PER_LAYER
    assert 1 + 4 == hfref.ROUNDINGS_FIXED  # embedding add, ln_f
