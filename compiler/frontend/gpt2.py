"""GPT-2 model description for the DFX compiler: a configuration plus FP16 weights.

DFX computes in FP16 end to end, so :class:`GPT2Model` holds every tensor as ``np.float16``
(converted from wider floats with NumPy's round-to-nearest-even ``astype``). Tensors use the
Hugging Face GPT-2 names *without* the ``transformer.`` prefix and HF's orientation: ``Conv1D``
weights are ``[in, out]``.

=============================  ===============  =========================================
name                           shape            meaning
=============================  ===============  =========================================
``wte.weight``                 ``[V, E]``       token embedding (also the LM head, tied)
``wpe.weight``                 ``[ctx, E]``     position embedding
``h.{i}.ln_1.weight/bias``     ``[E]``          LayerNorm before attention
``h.{i}.attn.c_attn.weight``   ``[E, 3E]``      fused Q|K|V projection (``[in, out]``)
``h.{i}.attn.c_attn.bias``     ``[3E]``
``h.{i}.attn.c_proj.weight``   ``[E, E]``       attention output projection
``h.{i}.attn.c_proj.bias``     ``[E]``
``h.{i}.ln_2.weight/bias``     ``[E]``          LayerNorm before the MLP
``h.{i}.mlp.c_fc.weight``      ``[E, 4E]``      MLP up projection, then ``gelu_new``
``h.{i}.mlp.c_fc.bias``        ``[4E]``
``h.{i}.mlp.c_proj.weight``    ``[4E, E]``      MLP down projection
``h.{i}.mlp.c_proj.bias``      ``[E]``
``ln_f.weight/bias``           ``[E]``          final LayerNorm
``lm_head.weight``             ``[V, E]``       only when it is *not* tied to ``wte``
=============================  ===============  =========================================

A model either holds its tensors (``GPT2Model(config, weights)``), produces them on demand
(:meth:`GPT2Model.from_loader` with ``lazy=True``: nothing is kept in memory), or has
none at all (``GPT2Model(config, None)``, for ``--no-weights`` compilation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from dfx.isa.container import MODEL_LIMITS
from dfx.isa.errors import DfxError

__all__ = [
    "ACTIVATION",
    "CheckpointError",
    "FrontendError",
    "GPT2Config",
    "GPT2Model",
    "ModelConfigError",
    "WeightsError",
]

#: The only activation DFX implements (GPT-2's tanh approximation of GELU).
ACTIVATION = "gelu_new"
LM_HEAD = "lm_head.weight"
_FP16_MAX = float(np.finfo(np.float16).max)


class FrontendError(DfxError):
    """A model, checkpoint or preset that the compiler front end cannot use."""


class ModelConfigError(FrontendError):
    """A GPT-2 configuration that is inconsistent or not supported by DFX."""


class CheckpointError(FrontendError):
    """A checkpoint directory or file that cannot be read."""


class WeightsError(FrontendError):
    """A tensor that is missing, unexpected, of the wrong shape or dtype, or not finite."""


def _positive_int(owner: str, field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ModelConfigError(f"{owner}: {field} must be a positive integer, got {value!r}")
    lo, hi = MODEL_LIMITS[field]
    if not lo <= value <= hi:
        raise ModelConfigError(f"{owner}: {field} must be in {lo}..{hi} (docs/limits.md), "
                               f"got {value}")
    return int(value)


@dataclass(frozen=True)
class GPT2Config:
    """Hyper-parameters of a GPT-2 decoder (Hugging Face ``GPT2Config`` subset).

    ``n_ctx`` is the number of positions (HF ``n_positions``). The MLP inner width is always
    ``4 * n_embd`` and the activation always ``gelu_new``.
    """

    n_layer: int
    n_embd: int
    n_head: int
    n_ctx: int
    vocab_size: int
    layer_norm_epsilon: float = 1e-5
    activation: str = ACTIVATION
    name: str = "gpt2-custom"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ModelConfigError(
                f"GPT2Config: name must be a non-empty string, got {self.name!r}"
            )
        owner = f"model {self.name!r}"
        for field in ("n_layer", "n_embd", "n_head", "n_ctx", "vocab_size"):
            object.__setattr__(self, field, _positive_int(owner, field, getattr(self, field)))
        if self.n_embd % self.n_head:
            raise ModelConfigError(
                f"{owner}: n_embd {self.n_embd} is not divisible by n_head {self.n_head}"
            )
        eps = self.layer_norm_epsilon
        if (
            isinstance(eps, bool)
            or not isinstance(eps, int | float | np.floating)
            or not math.isfinite(eps)
            or eps <= 0
        ):
            raise ModelConfigError(
                f"{owner}: layer_norm_epsilon must be a positive finite number, got {eps!r}"
            )
        object.__setattr__(self, "layer_norm_epsilon", float(eps))
        if self.activation != ACTIVATION:
            raise ModelConfigError(
                f"{owner}: activation {self.activation!r} is not supported; "
                f"DFX implements only {ACTIVATION!r} (GELU, tanh approximation)"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def n_inner(self) -> int:
        """Width of the MLP hidden layer (always ``4 * n_embd`` for GPT-2)."""
        return 4 * self.n_embd

    def layer_tensor_shapes(self, i: int) -> dict[str, tuple[int, ...]]:
        """Names and shapes of decoder layer ``i``'s tensors, in canonical order."""
        if not 0 <= i < self.n_layer:
            raise ModelConfigError(
                f"model {self.name!r}: layer {i} out of range 0..{self.n_layer - 1}"
            )
        e, p = self.n_embd, f"h.{i}."
        return {
            p + "ln_1.weight": (e,),
            p + "ln_1.bias": (e,),
            p + "attn.c_attn.weight": (e, 3 * e),
            p + "attn.c_attn.bias": (3 * e,),
            p + "attn.c_proj.weight": (e, e),
            p + "attn.c_proj.bias": (e,),
            p + "ln_2.weight": (e,),
            p + "ln_2.bias": (e,),
            p + "mlp.c_fc.weight": (e, 4 * e),
            p + "mlp.c_fc.bias": (4 * e,),
            p + "mlp.c_proj.weight": (4 * e, e),
            p + "mlp.c_proj.bias": (e,),
        }

    def tensor_shapes(self, *, lm_head: bool = False) -> dict[str, tuple[int, ...]]:
        """All tensor names and shapes in canonical order (``lm_head.weight`` last if asked)."""
        shapes: dict[str, tuple[int, ...]] = {
            "wte.weight": (self.vocab_size, self.n_embd),
            "wpe.weight": (self.n_ctx, self.n_embd),
        }
        for i in range(self.n_layer):
            shapes.update(self.layer_tensor_shapes(i))
        shapes["ln_f.weight"] = (self.n_embd,)
        shapes["ln_f.bias"] = (self.n_embd,)
        if lm_head:
            shapes[LM_HEAD] = (self.vocab_size, self.n_embd)
        return shapes

    def n_params(self, *, lm_head: bool = False) -> int:
        """Number of parameters (a tied LM head counts once, as ``wte``)."""
        e, v = self.n_embd, self.vocab_size
        per_layer = 12 * e * e + 13 * e
        return v * e + self.n_ctx * e + self.n_layer * per_layer + 2 * e + (v * e if lm_head else 0)


def to_fp16(
    name: str, array: object, shape: tuple[int, ...], *, check_finite: bool = True
) -> np.ndarray:
    """Validate one tensor and convert it to a C-contiguous ``np.float16`` array (RNE)."""
    a = np.asarray(array)
    if a.dtype.kind != "f":
        raise WeightsError(
            f"tensor {name!r}: dtype {a.dtype} is not a floating-point type "
            "(allowed: float16, bfloat16, float32, float64)"
        )
    if a.shape != shape:
        raise WeightsError(f"tensor {name!r}: expected shape {list(shape)}, got {list(a.shape)}")
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, by name
        out = np.ascontiguousarray(a.astype(np.float16, copy=False))
    if check_finite and not np.isfinite(out).all():
        src_finite = bool(np.isfinite(a).all())
        if src_finite:
            big = float(np.abs(a).max())
            why = f"values beyond the float16 range (max |x| {big:.6g} > {_FP16_MAX:g})"
        else:
            why = "NaN or infinite values"
        raise WeightsError(f"tensor {name!r}: {why}; DFX computes in float16")
    return out


class GPT2Model:
    """A GPT-2 configuration with FP16 weights under canonical names (see module docstring).

    ``GPT2Model(config, weights)`` converts and validates ``weights`` (a mapping from canonical
    name to array) at once; ``weights=None`` gives a model without weights. A ``lm_head.weight``
    equal to ``wte.weight`` (after FP16 conversion) is dropped: the head is then tied.
    """

    def __init__(
        self,
        config: GPT2Config,
        weights: Mapping[str, np.ndarray] | None,
        *,
        source: str = "",
    ) -> None:
        if not isinstance(config, GPT2Config):
            raise TypeError(f"config must be a GPT2Config, got {type(config).__name__}")
        self.config = config
        self.source = source or config.name
        self._loader: Callable[[str], np.ndarray] | None = None
        self._tensors: dict[str, np.ndarray] | None = None
        self._names: tuple[str, ...] = ()
        if weights is None:
            return
        expected = config.tensor_shapes(lm_head=True)
        _check_names(config, weights.keys(), expected, lm_head=LM_HEAD in weights)
        tensors = {
            name: to_fp16(name, weights[name], shape)
            for name, shape in expected.items()
            if name in weights
        }
        if LM_HEAD in tensors and np.array_equal(tensors[LM_HEAD], tensors["wte.weight"]):
            del tensors[LM_HEAD]
        self._tensors = tensors
        self._names = tuple(tensors)

    @classmethod
    def from_loader(
        cls,
        config: GPT2Config,
        loader: Callable[[str], np.ndarray],
        *,
        lm_head: bool = False,
        lazy: bool = False,
        source: str = "",
        check_finite: bool = True,
    ) -> GPT2Model:
        """A model whose tensors come from ``loader(name)``, one canonical name at a time.

        Every tensor is validated and converted to FP16 as it is read, so at most one
        wide-float tensor exists at a time. ``lm_head=True`` says that the model has an untied
        ``lm_head.weight`` (the loader must then produce it; the caller has decided that it
        differs from ``wte``). With ``lazy=True`` nothing is read now: each access calls the
        loader again and nothing is cached (for models too big to hold, or to stream).
        """
        model = cls(config, None, source=source)
        shapes = config.tensor_shapes(lm_head=lm_head)
        model._names = tuple(shapes)

        def load(name: str) -> np.ndarray:
            try:
                return to_fp16(name, loader(name), shapes[name], check_finite=check_finite)
            except WeightsError as e:
                raise WeightsError(f"{model.source}: {e}") from None

        if lazy:
            model._loader = load
        else:
            model._tensors = {name: load(name) for name in shapes}
        return model

    # ---------------------------------------------------------------- queries
    @property
    def has_weights(self) -> bool:
        return bool(self._names)

    @property
    def is_lazy(self) -> bool:
        return self._loader is not None

    @property
    def tied_lm_head(self) -> bool:
        """True when the LM head is ``wte.weight`` (GPT-2's default)."""
        return LM_HEAD not in self._names

    def names(self) -> tuple[str, ...]:
        """Canonical tensor names in canonical order (empty for a model without weights)."""
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> np.ndarray:
        """The FP16 tensor ``name`` (read-only view for in-memory models)."""
        if not self._names:
            raise WeightsError(
                f"model {self.config.name!r} was loaded without weights (--no-weights); "
                f"tensor {name!r} is not available"
            )
        if name not in self._names:
            hint = " (the LM head is tied: use wte.weight)" if name == LM_HEAD else ""
            raise WeightsError(f"model {self.config.name!r} has no tensor {name!r}{hint}")
        if self._loader is not None:
            return self._loader(name)
        assert self._tensors is not None
        view = self._tensors[name].view()
        view.flags.writeable = False
        return view

    def lm_head_weight(self) -> np.ndarray:
        """The ``[V, E]`` LM head: ``lm_head.weight`` if untied, else ``wte.weight``."""
        return self[LM_HEAD] if LM_HEAD in self._names else self["wte.weight"]

    def iter_tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, fp16 array)`` in canonical order; lazy models read one tensor at a time."""
        for name in self._names:
            yield name, self[name]

    def layer(self, i: int) -> dict[str, np.ndarray]:
        """The tensors of decoder layer ``i`` keyed by their name without ``h.{i}.``."""
        prefix = f"h.{i}."
        return {n[len(prefix) :]: self[n] for n in self.config.layer_tensor_shapes(i)}

    def materialize(self) -> GPT2Model:
        """An in-memory copy of a lazy model (``self`` if it is not lazy)."""
        if self._loader is None:
            return self
        return GPT2Model(self.config, dict(self.iter_tensors()), source=self.source)

    @property
    def n_params(self) -> int:
        return self.config.n_params(lm_head=not self.tied_lm_head)

    def __repr__(self) -> str:
        c = self.config
        kind = "lazy" if self.is_lazy else ("fp16" if self.has_weights else "no weights")
        head = "tied" if self.tied_lm_head else "untied"
        return (
            f"GPT2Model({c.name!r}, L={c.n_layer}, E={c.n_embd}, H={c.n_head}, ctx={c.n_ctx}, "
            f"V={c.vocab_size}, {kind}, lm_head {head}, source={self.source!r})"
        )


def _check_names(
    config: GPT2Config,
    given: Iterable[str],
    expected: Mapping[str, tuple[int, ...]],
    *,
    lm_head: bool,
) -> None:
    given = set(given)
    unexpected = sorted(given - set(expected))
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise WeightsError(
            f"model {config.name!r}: unexpected tensor {unexpected[0]!r}{more}; "
            "expected canonical GPT-2 names such as 'h.0.attn.c_attn.weight'"
        )
    missing = [n for n in expected if n not in given and not (n == LM_HEAD and not lm_head)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightsError(
            f"model {config.name!r}: missing tensor {missing[0]!r}{more} "
            f"(expected shape {list(expected[missing[0]])})"
        )
