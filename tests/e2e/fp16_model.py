"""A float64 GPT-2 forward pass that can round to FP16 exactly where dfx stores an activation
(docs/verification.md §2), to test the error model of the tolerance without the simulator.

``forward(model, ids, rounded=ROUNDING_POINTS)`` rounds at every named point;
``rounded=()`` is the exact (float64) reference. The nonlinear functions are exact here (no
tables), so this measures the FP16 storage roundings alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from dfx.compiler.frontend.gpt2 import GPT2Model

ROUNDING_POINTS = ("embed", "ln", "qkv", "score", "sub_max", "exp", "normalise", "pv", "attn_proj",
                   "residual", "fc", "gelu", "mlp_proj")
"""Where the lowering rounds to FP16 (``ln`` stands for LayerNorm's four roundings)."""


def _r16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float64)


def gelu_new(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def forward(model: GPT2Model, ids: list[int], rounded: Iterable[str] = ROUNDING_POINTS
            ) -> tuple[np.ndarray, dict[str, object]]:
    """Final hidden state [T, E] (after ln_f) and activation statistics of the pass
    (``score_rms``: RMS of the causal attention scores; ``gelu_rms``: per layer)."""
    rounded = set(rounded)
    unknown = rounded - set(ROUNDING_POINTS)
    if unknown:
        raise ValueError(f"unknown rounding points {sorted(unknown)}")
    c = model.config
    e, n_head = c.n_embd, c.n_head
    hd, t = e // n_head, len(ids)
    causal = np.tri(t, dtype=bool)

    def rnd(point: str, x: np.ndarray) -> np.ndarray:
        return _r16(x) if point in rounded else x

    def w(name: str) -> np.ndarray:
        return np.asarray(model[name], dtype=np.float64)

    def layernorm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        y = rnd("ln", x - x.mean(-1, keepdims=True))
        y = rnd("ln", y / np.sqrt((y * y).mean(-1, keepdims=True) + c.layer_norm_epsilon))
        return rnd("ln", rnd("ln", y * g) + b)

    scores, gelu_rms = [], []
    x = rnd("embed", w("wte.weight")[ids] + w("wpe.weight")[:t])
    for i in range(c.n_layer):
        p = f"h.{i}."
        h = layernorm(x, w(p + "ln_1.weight"), w(p + "ln_1.bias"))
        qkv = rnd("qkv", h @ w(p + "attn.c_attn.weight") + w(p + "attn.c_attn.bias"))
        a = np.zeros((t, e))
        for hh in range(n_head):
            q, k, v = (qkv[:, part * e + hh * hd: part * e + (hh + 1) * hd] for part in range(3))
            s = rnd("score", q @ k.T / math.sqrt(hd))
            scores.append(s[causal])
            s = np.where(causal, s, -np.inf)
            s = rnd("sub_max", s - s.max(axis=1, keepdims=True))
            ex = rnd("exp", np.exp(s))
            prob = rnd("normalise", ex * (1 / ex.sum(axis=1, keepdims=True)))
            a[:, hh * hd:(hh + 1) * hd] = rnd("pv", prob @ v)
        x = rnd("residual", x + rnd("attn_proj", a @ w(p + "attn.c_proj.weight")
                                    + w(p + "attn.c_proj.bias")))
        h = layernorm(x, w(p + "ln_2.weight"), w(p + "ln_2.bias"))
        f = rnd("gelu", gelu_new(rnd("fc", h @ w(p + "mlp.c_fc.weight")
                                     + w(p + "mlp.c_fc.bias"))))
        gelu_rms.append(float(np.sqrt(np.mean(f**2))))
        x = rnd("residual", x + rnd("mlp_proj", f @ w(p + "mlp.c_proj.weight")
                                    + w(p + "mlp.c_proj.bias")))
    out = layernorm(x, w("ln_f.weight"), w("ln_f.bias"))
    stats = {"score_rms": float(np.sqrt(np.mean(np.concatenate(scores) ** 2))),
             "gelu_rms": np.array(gelu_rms)}
    return out, stats
