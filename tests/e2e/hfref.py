"""Hugging Face ``transformers`` as the reference for dfx's GPT-2 (docs/verification.md).

* :func:`random_model`: a seeded GPT-2 of any shape with the presets' initialisation
  (``init_tensor``), optionally scaled and with random biases;
* :func:`hf_reference`: ``GPT2LMHeadModel`` (float32, eager attention) loaded from a checkpoint
  written by ``save_checkpoint``, run on a token sequence: logits, final hidden state (after
  ``ln_f``), and the activation statistics the tolerance needs (attention scores, GELU outputs);
* :func:`tolerance`: the per-step, per-vocabulary-entry tolerance derived in
  docs/verification.md, and :func:`check_logits` / :func:`check_top1` that apply it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfx.compiler.frontend.gpt2 import GPT2Config, GPT2Model
from dfx.compiler.frontend.presets import init_tensor
from dfx.isa.config import CoreConfig

U = 2.0**-11
"""Unit roundoff of FP16 (round to nearest: |RN16(x) - x| <= U |x|)."""

ROUNDINGS_PER_LAYER = 20
"""FP16 roundings on the longest path through one decoder layer (docs/verification.md §2):
LayerNorm 4 + Q/K/V 1 + score 1 + (s - max) 1 + exp 1 + (x 1/sum) 1 + P·V 1 + c_proj 1 +
residual 1 + LayerNorm 4 + c_fc 1 + GELU 1 + c_proj 1 + residual 1."""

ROUNDINGS_FIXED = 5
"""Roundings outside the layers before the LM head: embedding add 1, ln_f 4. (The LM head's
own output rounding is accounted for exactly, as U |z|.)"""

LAMBDA = 1.0
"""Safety factor on the modelled RMS error of the final hidden state (docs/verification.md §4)."""


def random_model(n_layer: int, n_embd: int, n_head: int, n_ctx: int, vocab: int, *,
                 seed: int = 0, scale: float = 1.0, bias_std: float = 0.0) -> GPT2Model:
    """A GPT-2 of this shape with the presets' seeded initialisation (in memory)."""
    cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_ctx=n_ctx,
                     vocab_size=vocab, name=f"l{n_layer}e{n_embd}h{n_head}c{n_ctx}v{vocab}")

    def load(name: str) -> np.ndarray:
        return init_tensor(cfg, name, seed=seed, scale=scale, bias_std=bias_std)

    return GPT2Model.from_loader(cfg, load)


# ---------------------------------------------------------------------------------------------
# The reference


@dataclass
class Reference:
    """What ``transformers`` computes for one token sequence (float64 copies of float32)."""

    logits: np.ndarray  # [T, V]
    hidden: np.ndarray  # [T, E], after ln_f (the LM head's input)
    score_rms: float  # RMS of all causal attention scores q·k/sqrt(hd), all layers and heads
    gelu_rms: np.ndarray  # [L], RMS of each layer's GELU output

    @property
    def argmax(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def load_hf(checkpoint: str | Path):  # -> transformers.GPT2LMHeadModel
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(str(checkpoint), dtype=torch.float32,
                                            attn_implementation="eager")
    return model.eval()


def hf_reference(hf, ids: list[int]) -> Reference:
    """Run ``hf`` (a float32 ``GPT2LMHeadModel``) on ``ids`` in one forward pass."""
    import torch

    cfg = hf.config
    n_head, e = cfg.n_head, cfg.n_embd
    hd = e // n_head
    qkv: list[np.ndarray] = []
    act: list[np.ndarray] = []
    hooks = []
    for block in hf.transformer.h:
        hooks.append(block.attn.c_attn.register_forward_hook(
            lambda _m, _i, out: qkv.append(out[0].double().numpy())))
        hooks.append(block.mlp.act.register_forward_hook(
            lambda _m, _i, out: act.append(out[0].double().numpy())))
    try:
        with torch.no_grad():
            hidden = hf.transformer(torch.tensor([ids])).last_hidden_state
            logits = hf.lm_head(hidden)
    finally:
        for h in hooks:
            h.remove()
    t = len(ids)
    causal = np.tri(t, dtype=bool)
    sq = []
    for a in qkv:
        q = a[:, :e].reshape(t, n_head, hd)
        k = a[:, e:2 * e].reshape(t, n_head, hd)
        s = np.einsum("thd,jhd->htj", q, k) / math.sqrt(hd)
        sq.append(s[:, causal] ** 2)
    score_rms = float(np.sqrt(np.mean(np.concatenate([x.ravel() for x in sq]))))
    gelu_rms = np.array([np.sqrt(np.mean(a**2)) for a in act])
    return Reference(logits[0].double().numpy(), hidden[0].double().numpy(), score_rms, gelu_rms)


# ---------------------------------------------------------------------------------------------
# The tolerance (docs/verification.md)


def table_errors(core: CoreConfig) -> dict[str, float]:
    """Interpolation error bounds of the core's tables (docs/numerics.md §6.2): relative for
    exp (h²/8), recip (h²/4 on [1, 2)), rsqrt (3h²/32 on [1, 4)); absolute for gelu
    (h²/8 · max|gelu''| = h²/8 · sqrt(2/pi))."""
    def h(fn: str) -> float:
        spec = getattr(core.tables, fn)
        return (spec.hi - spec.lo) / spec.points

    return {
        "exp": h("exp") ** 2 / 8,
        "recip": h("recip") ** 2 / 4,
        "rsqrt": 3 * h("rsqrt") ** 2 / 32,
        "gelu": h("gelu") ** 2 / 8 * math.sqrt(2 / math.pi),
    }


def effective_roundings(n_layer: int, core: CoreConfig, gelu_rms: np.ndarray) -> float:
    """n_r(L) plus the tables' errors in units of one rounding's variance (U²/3)."""
    eps = table_errors(core)
    per_layer = 3 * ((eps["exp"] / U) ** 2 + (eps["recip"] / U) ** 2 + 2 * (eps["rsqrt"] / U) ** 2)
    gelu = 3 * np.sum((eps["gelu"] / (U * np.asarray(gelu_rms))) ** 2)
    fixed = 3 * (eps["rsqrt"] / U) ** 2  # ln_f
    return (ROUNDINGS_PER_LAYER * n_layer + ROUNDINGS_FIXED + n_layer * per_layer + gelu
            + fixed)


def hidden_error_bound(ref: Reference, n_layer: int, core: CoreConfig) -> float:
    """K: modelled RMS relative error of the final hidden state, in units of U."""
    n_eff = effective_roundings(n_layer, core, ref.gelu_rms)
    return (1.0 + ref.score_rms) * math.sqrt(n_eff / 3.0)


def tolerance(ref: Reference, lm_head: np.ndarray, n_layer: int, core: CoreConfig
              ) -> tuple[np.ndarray, float]:
    """``tol[t, v] = U (LAMBDA K ||h_t|| ||w_v|| + |z_tv|)`` and K."""
    k = hidden_error_bound(ref, n_layer, core)
    h_norm = np.linalg.norm(ref.hidden, axis=1)
    w_norm = np.linalg.norm(np.asarray(lm_head, dtype=np.float64), axis=1)
    tol = U * (LAMBDA * k * h_norm[:, None] * w_norm[None, :] + np.abs(ref.logits))
    return tol, k


def error_ratio(dfx_logits: np.ndarray, ref: Reference, tol: np.ndarray) -> float:
    """max |z_dfx - z_hf| / tol over all steps and vocabulary entries."""
    err = np.abs(np.asarray(dfx_logits, dtype=np.float64) - ref.logits)
    return float((err / tol).max())


def top1_checked(ref: Reference, tol: np.ndarray) -> np.ndarray:
    """Steps whose HF top-2 margin exceeds twice the largest tolerance of that step: there
    the dfx arg-max must equal HF's."""
    top2 = np.sort(ref.logits, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    return margin > 2 * tol.max(axis=1)
