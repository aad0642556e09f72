"""Built-in GPT-2 presets: the real architectures with seeded random weights (no downloads).

No package ships real GPT-2 weights, so tests, demos and timing runs use randomly initialised
models of the real shapes; real checkpoints come in as local Hugging Face directories
(:mod:`.hf`). :func:`load_model` resolves either.

===============  ======  ======  =====  ========  ======  =====  ======  =====================
preset           layers  n_embd  heads  head dim  n_ctx   vocab  params  notes
===============  ======  ======  =====  ========  ======  =====  ======  =====================
``gpt2``         12      768     12     64        1024    50257  124 M   GPT-2 small
``gpt2-medium``  24      1024    16     64        1024    50257  355 M   DFX's "345M"
``gpt2-large``   36      1280    20     64        1024    50257  774 M
``gpt2-xl``      48      1600    25     64        1024    50257  1.56 B  OpenAI's 1.5B
``gpt2-xl-24h``  48      1536    24     64        1024    50257  1.44 B  DFX's 1.5B variant
``gpt2-tiny``    2       64      4      16        128     50257  3.3 M   unit tests, fast sims
``gpt2-mini``    4       256     4      64        256     50257  16.1 M  demos; head dim 64
===============  ======  ======  =====  ========  ======  =====  ======  =====================

All presets use the real 50257-token vocabulary, so the real GPT-2 tokenizer works with every
one of them. ``gpt2-mini`` keeps GPT-2's head dimension of 64 and splits into one head per card
on 4 cards (E/4 = 64 columns each), like the real models; ``gpt2-tiny`` is the smallest useful
model. ``gpt2-xl-24h`` is the 1.5B variant DFX evaluated: 24 heads instead of 25 so that the
heads divide over 4 FPGAs, with head dimension 64 and so d_model 1536 (per IANUS, which reuses
DFX's validated model; see ``shared/papers/dfx.md`` §1.2).

Weights follow GPT-2's initialisation (Hugging Face ``GPT2PreTrainedModel._init_weights``):
every matrix and ``wte`` ~ N(0, 0.02²), ``wpe`` ~ N(0, 0.01²), the two residual projections
(``attn.c_proj``, ``mlp.c_proj``) ~ N(0, (0.02/√(2·n_layer))²), biases 0, LayerNorm weight 1
and bias 0. ``scale`` multiplies every matrix and embedding (random GPT-2 has nearly flat
logits; tests that compare arg-maxes use ``scale`` > 1). ``bias_std`` > 0 draws the biases and
LayerNorm biases from N(0, bias_std²) and LayerNorm weights from 1 + N(0, bias_std²), so that a
compiler that drops a bias or a LayerNorm parameter is caught.

``spread="gpt2"`` (opt-in; the default ``"init"`` is the initialisation above, bit for bit) draws
*trained-like* weights for quantization studies (``bench/lutgemm_accuracy.py``): real GPT-2
weights are heavy-tailed with outliers and their scale differs from tensor to tensor, which is
what makes round-to-nearest with large groups lose accuracy. Each Conv1D matrix is Student-t
with 5 degrees of freedom (excess kurtosis 6; an assumption standing in for trained weights'
outliers), scaled to unit variance and then to a per-tensor std of ``0.088 * 2^u``,
``u ~ U(-1, 1)`` drawn per tensor. 0.088 is GPT-2 small's typical matrix std derived from
the average log10 Frobenius norm of its layer matrices, 2.04 (Martin, Peng & Mahoney, Nat.
Commun. 12, 4122 (2021), Table 2), assuming one std for all shapes: 10^(2.04 - mean(log10
sqrt(K N))) = 0.088; the factor-of-two spread is our assumption. ``wte`` (and an untied LM
head) is N(0, (3/sqrt(n_embd))^2), so that logits of the unit-variance final LayerNorm output
spread by about 3 (an assumption: a peaked next-token distribution rather than the flat one of
the initialisation). ``wpe``, biases and LayerNorm parameters are as for ``"init"``. ``scale``
multiplies these as well. Samples use NumPy's ``standard_t`` (slower than the table; meant for
the small presets).

Generation is seeded per tensor (``default_rng([seed, crc32(name)])``), so a tensor does not
depend on the others and lazy models read any tensor in any order. To make gpt2-xl's 1.5 B
parameters in seconds, normal samples come from a 65,536-entry inverse-CDF table of N(0, 1)
indexed by uniform 16-bit integers (the table's quantiles are exact; the tails stop at ±4.3σ).
The table is scaled in float32 and rounded to float16 once, then gathered: no float32 or float64
copy of a tensor is ever made. Measured on the project's 2-core machines (while busy):
``standard_normal(dtype=float32)`` alone would take about 45 s for gpt2-xl, plus the float16
conversion; the table needs about 8 s of CPU time (a third of it page faults for the 3.1 GB
result), and eager presets generate their tensors on all cores in parallel.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from .gpt2 import LM_HEAD, FrontendError, GPT2Config, GPT2Model
from .hf import load_checkpoint

__all__ = [
    "PRESETS",
    "SPREADS",
    "Preset",
    "PresetError",
    "get_preset",
    "init_tensor",
    "list_presets",
    "load_model",
    "preset_model",
]

_FP16_MAX = float(np.finfo(np.float16).max)


class PresetError(FrontendError):
    """An unknown preset name or bad generation parameters."""


@dataclass(frozen=True)
class Preset:
    """A named GPT-2 architecture with a one-line description."""

    config: GPT2Config
    description: str

    @property
    def name(self) -> str:
        return self.config.name


def _preset(name: str, n_layer: int, n_embd: int, n_head: int, n_ctx: int, desc: str) -> Preset:
    config = GPT2Config(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_ctx=n_ctx, vocab_size=50257, name=name
    )
    return Preset(config, desc)


#: Presets by name, in the order of the module docstring's table.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset("gpt2", 12, 768, 12, 1024, "GPT-2 small (124M)"),
        _preset("gpt2-medium", 24, 1024, 16, 1024, "GPT-2 medium (355M; DFX's 345M)"),
        _preset("gpt2-large", 36, 1280, 20, 1024, "GPT-2 large (774M)"),
        _preset("gpt2-xl", 48, 1600, 25, 1024, "GPT-2 XL (1.5B, 25 heads)"),
        _preset("gpt2-xl-24h", 48, 1536, 24, 1024, "DFX's 1.5B variant (24 heads, d_model 1536)"),
        _preset("gpt2-tiny", 2, 64, 4, 128, "tiny GPT-2 for unit tests and fast simulation"),
        _preset("gpt2-mini", 4, 256, 4, 256, "small GPT-2 with head dim 64, for demos"),
    )
}


def list_presets() -> list[str]:
    """Preset names: the real GPT-2 sizes, then the small test models."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


@functools.cache
def _normal_table() -> np.ndarray:
    """N(0, 1) quantiles at the midpoints of 65,536 equal-probability bins (float32)."""
    inv = NormalDist().inv_cdf
    table = np.array([inv((i + 0.5) / 65536) for i in range(65536)], dtype=np.float32)
    table.flags.writeable = False
    return table


_TABLE_MAX = 4.33  # max |quantile| of the table (4.3238...), rounded up

#: Weight spreads: GPT-2's initialisation (default) or trained-like (module docstring).
SPREADS = ("init", "gpt2")
_T_DOF = 5  # Student-t degrees of freedom of the "gpt2" spread
_GPT2_MATRIX_STD = 0.088  # GPT-2 small's typical matrix std (Martin et al. 2021, Table 2)
_GPT2_LOGIT_STD = 3.0  # assumed logit spread: wte std = 3 / sqrt(n_embd)


def _init_std(config: GPT2Config, name: str) -> tuple[str, float]:
    """How tensor ``name`` is initialised: ("normal", std) or ("ones"/"zeros", 0)."""
    if name in ("wte.weight", LM_HEAD):
        return "normal", 0.02
    if name == "wpe.weight":
        return "normal", 0.01
    if name.endswith("c_proj.weight"):
        return "normal", 0.02 / math.sqrt(2 * config.n_layer)
    if name.endswith(".weight") and ".ln_" not in name and not name.startswith("ln_f"):
        return "normal", 0.02
    if name.endswith(".weight"):
        return "ones", 0.0
    return "zeros", 0.0


def _trained_like(config: GPT2Config, name: str, seed: int, scale: float) -> np.ndarray | None:
    """A tensor of the ``"gpt2"`` spread, or None where it equals the initialisation."""
    shape = config.tensor_shapes(lm_head=True)[name]
    if name in ("wte.weight", LM_HEAD):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        return _normal_fp16(rng, shape, _GPT2_LOGIT_STD / math.sqrt(config.n_embd) * scale)
    kind, _ = _init_std(config, name)
    if kind != "normal" or name == "wpe.weight":
        return None
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 1])
    std = _GPT2_MATRIX_STD * 2.0 ** rng.uniform(-1.0, 1.0) * scale
    t = rng.standard_t(_T_DOF, size=shape) * (std / math.sqrt(_T_DOF / (_T_DOF - 2)))
    return np.clip(t, -_FP16_MAX, _FP16_MAX).astype(np.float16)


def _normal_fp16(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    table16 = (_normal_table() * np.float32(std)).astype(np.float16)
    idx = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    return table16[idx]


def init_tensor(
    config: GPT2Config,
    name: str,
    *,
    seed: int = 0,
    scale: float = 1.0,
    bias_std: float = 0.0,
    spread: str = "init",
) -> np.ndarray:
    """The FP16 initial value of tensor ``name`` (deterministic in ``seed`` and ``name``);
    ``spread="gpt2"`` gives trained-like matrices (module docstring)."""
    shape = config.tensor_shapes(lm_head=True).get(name)
    if shape is None:
        raise PresetError(f"model {config.name!r} has no tensor {name!r}")
    if spread not in SPREADS:
        raise PresetError(f"unknown spread {spread!r}; known spreads: {', '.join(SPREADS)}")
    if spread == "gpt2":
        t = _trained_like(config, name, seed, scale)
        if t is not None:
            return t
    kind, std = _init_std(config, name)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if kind == "normal":
        return _normal_fp16(rng, shape, std * scale)
    base = np.ones(shape, np.float16) if kind == "ones" else np.zeros(shape, np.float16)
    if bias_std:
        base += _normal_fp16(rng, shape, bias_std)
    return base


def _check_params(seed: int, scale: float, bias_std: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise PresetError(f"seed must be an integer in 0..2**63-1, got {seed!r}")
    for label, value in (("scale", scale), ("bias_std", bias_std)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | np.floating)
            or not math.isfinite(value)
            or value < 0
            or (label == "scale" and value == 0)
        ):
            want = "a positive" if label == "scale" else "a non-negative"
            raise PresetError(f"{label} must be {want} finite number, got {value!r}")
    # largest value drawn: 4.33 sigma of the widest normal (0.02 * scale, or bias_std + 1)
    if max(0.02 * scale, bias_std) * _TABLE_MAX + 1 > _FP16_MAX:
        raise PresetError(
            f"scale {scale!r} / bias_std {bias_std!r} too large: weights would overflow float16"
        )


def preset_model(
    name: str,
    *,
    seed: int = 0,
    scale: float = 1.0,
    bias_std: float = 0.0,
    weights: bool = True,
    lazy: bool = False,
    spread: str = "init",
) -> GPT2Model:
    """The preset ``name`` with seeded GPT-2-style random weights (see module docstring;
    ``spread="gpt2"`` for trained-like heavy-tailed matrices).

    ``weights=False`` gives the configuration only (e.g. ``--no-weights`` compilation of the
    1.5B presets); ``lazy=True`` generates each tensor when it is accessed (identical values).
    """
    config = get_preset(name).config
    _check_params(seed, scale, bias_std)
    if spread not in SPREADS:
        raise PresetError(f"unknown spread {spread!r}; known spreads: {', '.join(SPREADS)}")
    source = f"preset {name} (seed {seed}, scale {scale:g}" + (
        f", bias_std {bias_std:g}" if bias_std else ""
    ) + (f", spread {spread})" if spread != "init" else ")")
    if not weights:
        return GPT2Model(config, None, source=f"preset {name} (no weights)")

    def loader(tensor: str) -> np.ndarray:
        return init_tensor(config, tensor, seed=int(seed), scale=scale, bias_std=bias_std,
                           spread=spread)

    if not lazy:  # NumPy releases the GIL while generating: use every core
        names = list(config.tensor_shapes())
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            tensors = dict(zip(names, pool.map(loader, names), strict=True))
        loader = tensors.pop
    # The generator cannot produce non-finite values (checked above): skip that scan.
    return GPT2Model.from_loader(config, loader, lazy=lazy, source=source, check_finite=False)


def load_model(
    src: str | os.PathLike[str],
    *,
    seed: int = 0,
    scale: float = 1.0,
    bias_std: float = 0.0,
    weights: bool = True,
    lazy: bool = False,
) -> GPT2Model:
    """Resolve ``src``: an existing path is a Hugging Face checkpoint directory, else a preset.

    ``seed``, ``scale`` and ``bias_std`` apply to presets only (``scale``/``bias_std`` other
    than their defaults with a checkpoint is an error; ``seed`` is ignored). Anything else,
    such as a hub id like ``openai-community/gpt2``, is an error: dfx never downloads.
    """
    text = os.fspath(src)
    if not text:
        raise PresetError("empty model name: pass a checkpoint directory or a preset name")
    if Path(text).exists():
        if scale != 1.0 or bias_std != 0.0:
            raise PresetError(
                f"scale/bias_std apply only to presets, not to the checkpoint {text!r}"
            )
        return load_checkpoint(text, weights=weights, lazy=lazy)
    if text in PRESETS:
        return preset_model(
            text, seed=seed, scale=scale, bias_std=bias_std, weights=weights, lazy=lazy
        )
    return load_checkpoint(text, weights=weights, lazy=lazy)  # raises: missing or hub id
