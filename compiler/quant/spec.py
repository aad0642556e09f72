"""Quantization specification: scheme, bits q, group size g (LUT-GEMM §3.3-§3.4,
shared/papers/lutgemm.md §1).

Text form (``dfx compile --quant``)::

    SCHEME:key=value,...        e.g.  bcq:q=3,g=128    rtn:q=4,g=64
                                      bcq:q=2,g=row,rounds=5,exclude=lm_head+h.0.*

keys: ``q`` (1..4, required), ``g`` (a positive integer or ``row``; default 128),
``rounds`` (bcq only; default 15), ``exclude`` (``+``-separated fnmatch patterns of layer
names kept in FP16, or ``none``; default ``lm_head``). Layer names are ``h.{i}.attn.c_attn``,
``h.{i}.attn.c_proj``, ``h.{i}.mlp.c_fc``, ``h.{i}.mlp.c_proj`` and ``lm_head``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from dfx.isa.errors import DfxError
from dfx.isa.golden.lutgemm import MAX_GROUP

__all__ = ["SCHEMES", "QuantError", "QuantSpec"]

#: Known schemes: non-uniform BCQ (greedy + alternating least squares) and uniform RTN int-q.
SCHEMES = ("bcq", "rtn")
MAX_Q = 4
DEFAULT_G = 128
DEFAULT_ROUNDS = 15
DEFAULT_EXCLUDE = ("lm_head",)
_KEYS = ("q", "g", "rounds", "exclude")
_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


class QuantError(DfxError):
    """A quantization spec that cannot be parsed or does not fit a layer."""


def _int(key: str, value: str, text: str) -> int:
    if not re.fullmatch(r"[0-9]+", value):
        raise QuantError(f"quant spec {text!r}: {key} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class QuantSpec:
    """How the compiler quantizes the Conv1D weights to BCQ for ``lutmv``.

    ``scheme`` is ``bcq`` (non-uniform: greedy residual binarisation plus ``rounds`` alternating
    least-squares refinements, LUT-GEMM §1.4 of the digest) or ``rtn`` (uniform asymmetric
    int-q round-to-nearest, converted exactly to BCQ, §1.3). ``g`` is the group size along
    the input dimension (None = the whole row); ``exclude`` holds fnmatch patterns of layer
    names kept in FP16.
    """

    scheme: str
    q: int
    g: int | None
    rounds: int = DEFAULT_ROUNDS
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise QuantError(
                f"quant spec: unknown scheme {self.scheme!r}; known schemes: {', '.join(SCHEMES)}"
            )
        if isinstance(self.q, bool) or not isinstance(self.q, int) or not 1 <= self.q <= MAX_Q:
            raise QuantError(f"quant spec: q must be an integer in 1..{MAX_Q}, got {self.q!r}")
        if self.g is not None and (
            isinstance(self.g, bool) or not isinstance(self.g, int) or self.g < 1
        ):
            raise QuantError(
                f"quant spec: g must be a positive integer or 'row', got {self.g!r}"
            )
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 0:
            raise QuantError(
                f"quant spec: rounds must be a non-negative integer, got {self.rounds!r}"
            )
        if self.scheme != "bcq" and self.rounds != DEFAULT_ROUNDS:
            raise QuantError(f"quant spec: rounds applies to scheme bcq only, not {self.scheme}")
        if not isinstance(self.exclude, tuple):
            raise QuantError("quant spec: exclude must be a tuple of layer-name patterns")
        for p in self.exclude:
            if not isinstance(p, str) or not _PATTERN.match(p):
                raise QuantError(
                    f"quant spec: bad exclude pattern {p!r} (letters, digits, _ . - and the "
                    "fnmatch wildcards * ? [ ] !)"
                )

    @classmethod
    def parse(cls, text: str) -> QuantSpec:
        """The spec written as ``SCHEME:key=value,...`` (module docstring)."""
        if not isinstance(text, str):
            raise QuantError(f"quant spec: expected text, got {type(text).__name__}")
        src = text.strip()
        scheme, sep, rest = src.partition(":")
        scheme = scheme.strip().lower()
        if not scheme or "=" in scheme:
            raise QuantError(
                f"quant spec {text!r}: expected SCHEME:key=value,... (e.g. bcq:q=3,g=128)"
            )
        if scheme not in SCHEMES:
            raise QuantError(
                f"quant spec {text!r}: unknown scheme {scheme!r}; known schemes: "
                f"{', '.join(SCHEMES)}"
            )
        vals: dict[str, str] = {}
        for item in rest.split(",") if sep and rest.strip() else []:
            key, eq, value = (s.strip() for s in item.partition("="))
            if not eq or not key or not value:
                raise QuantError(
                    f"quant spec {text!r}: expected key=value, got {item.strip()!r}"
                )
            if key not in _KEYS:
                raise QuantError(
                    f"quant spec {text!r}: unknown key {key!r}; known keys: {', '.join(_KEYS)}"
                )
            if key in vals:
                raise QuantError(f"quant spec {text!r}: {key} given twice")
            vals[key] = value
        if "q" not in vals:
            raise QuantError(f"quant spec {text!r}: q (bits per weight, 1..{MAX_Q}) is required")
        q = _int("q", vals["q"], text)
        g: int | None = DEFAULT_G
        if "g" in vals:
            if vals["g"].lower() == "row":
                g = None
            elif re.fullmatch(r"[0-9]+", vals["g"]) and int(vals["g"]) > 0:
                g = int(vals["g"])
            else:
                raise QuantError(
                    f"quant spec {text!r}: g must be a positive integer or 'row', "
                    f"got {vals['g']!r}"
                )
        rounds = _int("rounds", vals["rounds"], text) if "rounds" in vals else DEFAULT_ROUNDS
        exclude = DEFAULT_EXCLUDE
        if "exclude" in vals:
            e = vals["exclude"]
            exclude = () if e.lower() == "none" else tuple(p.strip() for p in e.split("+"))
        try:
            return cls(scheme, q, g, rounds, exclude)
        except QuantError as err:
            raise QuantError(f"quant spec {text!r}: {str(err).removeprefix('quant spec: ')}") \
                from None

    def text(self) -> str:
        """The canonical text form (``QuantSpec.parse(s.text()) == s``)."""
        parts = [f"q={self.q}", f"g={'row' if self.g is None else self.g}"]
        if self.scheme == "bcq":
            parts.append(f"rounds={self.rounds}")
        parts.append(f"exclude={'+'.join(self.exclude) if self.exclude else 'none'}")
        return f"{self.scheme}:{','.join(parts)}"

    def __str__(self) -> str:
        return self.text()

    def quantizes(self, layer: str) -> bool:
        """Whether ``layer`` (e.g. ``h.3.mlp.c_fc``) is quantized (not matched by exclude)."""
        return not any(fnmatch.fnmatchcase(layer, p) for p in self.exclude)

    def group(self, k: int, slice_: int, layer: str) -> int:
        """The group size of ``layer`` with ``k`` inputs for lane words of ``slice_`` inputs:
        ``g`` (or ``k`` for g=row); it must divide k, be a multiple of slice_ and be at most
        MAX_GROUP (exact float64 group sums, docs/lutgemm.md)."""
        g = k if self.g is None else self.g
        where = f"quant {self.text()}: layer {layer} (k = {k}, g = {g}, slice = {slice_})"
        if k % g:
            raise QuantError(f"{where}: the group size does not divide k")
        if g % slice_:
            raise QuantError(f"{where}: the group size is not a multiple of the lane word")
        if g > MAX_GROUP:
            raise QuantError(f"{where}: the group size exceeds {MAX_GROUP} inputs")
        return g
