"""The compiler's graph IR: a small, printable description of one decoder-only transformer.

The frontend turns a checkpoint into a :class:`Graph`; partitioning, lowering and memory
planning read it. A GPT-2 graph is a prologue (token + position embedding), one decoder *layer
template* repeated ``n_layer`` times with per-layer weights (the core runs it in a hardware
loop, DFX §IV-A: "the layer index selects the HBM address region"), and an epilogue (final
LayerNorm, LM head, arg-max). ``dfx compile --emit ir`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Op:
    """One operation: ``outputs = kind(inputs; attrs)``. Weight inputs are named ``@name``."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        attrs = "".join(f", {k}={v}" for k, v in self.attrs.items())
        return f"{', '.join(self.outputs)} = {self.kind}({', '.join(self.inputs)}{attrs})"


@dataclass(frozen=True)
class Graph:
    """A decoder-only transformer as prologue, repeated layer template and epilogue."""

    name: str
    dims: dict[str, int]
    prologue: tuple[Op, ...]
    layer: tuple[Op, ...]
    epilogue: tuple[Op, ...]

    def dump(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items())
        lines = [f"graph {self.name} ({dims})", "prologue:"]
        lines += [f"  {op}" for op in self.prologue]
        lines.append(f"layer l in 0..{self.dims['n_layer'] - 1}:")
        lines += [f"  {op}" for op in self.layer]
        lines.append("epilogue:")
        lines += [f"  {op}" for op in self.epilogue]
        return "\n".join(lines) + "\n"


def gpt2_graph(name: str, n_layer: int, n_embd: int, n_head: int, n_ctx: int, vocab: int,
               eps: float) -> Graph:
    """The GPT-2 graph (Radford et al. 2019; HF ``GPT2LMHeadModel``), weights by HF name."""
    dims = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "n_ctx": n_ctx,
            "vocab": vocab}
    prologue = (
        Op("embed", ("token", "pos", "@wte.weight", "@wpe.weight"), ("x",)),
    )
    p = "@h.{l}."
    layer = (
        Op("layernorm", ("x", p + "ln_1.weight", p + "ln_1.bias"), ("h",), {"eps": eps}),
        Op("linear", ("h", p + "attn.c_attn.weight", p + "attn.c_attn.bias"), ("q", "k", "v"),
           {"split": "heads"}),
        Op("kv_append", ("k", "v"), ("k_cache", "v_cache"), {"v_layout": "transposed"}),
        Op("attention", ("q", "k_cache", "v_cache"), ("a",),
           {"heads": n_head, "causal": True, "scale": f"1/sqrt({n_embd // n_head})"}),
        Op("allgather", ("a",), ("a",)),
        Op("linear", ("a", p + "attn.c_proj.weight", p + "attn.c_proj.bias"), ("o",),
           {"split": "columns"}),
        Op("allgather", ("o",), ("o",)),
        Op("add", ("x", "o"), ("x",)),
        Op("layernorm", ("x", p + "ln_2.weight", p + "ln_2.bias"), ("h",), {"eps": eps}),
        Op("linear", ("h", p + "mlp.c_fc.weight", p + "mlp.c_fc.bias"), ("f",),
           {"split": "columns", "act": "gelu_new"}),
        Op("allgather", ("f",), ("f",)),
        Op("linear", ("f", p + "mlp.c_proj.weight", p + "mlp.c_proj.bias"), ("m",),
           {"split": "columns"}),
        Op("allgather", ("m",), ("m",)),
        Op("add", ("x", "m"), ("x",)),
    )
    epilogue = (
        Op("layernorm", ("x", "@ln_f.weight", "@ln_f.bias"), ("h",), {"eps": eps}),
        Op("linear", ("h", "@wte.weight^T"), ("logits",), {"split": "vocab"}),
        Op("allgather", ("logits",), ("logits",)),
        Op("argmax", ("logits",), ("next_token",)),
    )
    return Graph(name, dims, prologue, layer, epilogue)


def annotate_quant(graph: Graph, groups: dict[str, int], q: int, scheme: str,
                   fp16_layers: dict[str, list[int]]) -> Graph:
    """The graph with each quantized ``linear`` marked ``lutmv=SCHEME q=.. g=..`` (LUT-GEMM;
    ``fp16_layers``: kind -> layers that keep it in FP16), for ``dfx compile --emit ir``."""
    def mark(op: Op) -> Op:
        if op.kind != "linear":
            return op
        w = op.inputs[1]
        kind = "lm_head" if w.startswith("@wte") else w.removeprefix("@h.{l}.").removesuffix(
            ".weight")
        if kind not in groups:
            return op
        attrs = {**op.attrs, "lutmv": f"{scheme} q={q} g={groups[kind]}"}
        if fp16_layers.get(kind):
            attrs["fp16_in"] = ",".join(f"h.{i}" for i in fp16_layers[kind])
        return replace(op, attrs=attrs)

    return replace(graph, layer=tuple(map(mark, graph.layer)),
                   epilogue=tuple(map(mark, graph.epilogue)))
