"""The compiler driver: checkpoint -> graph IR -> partition -> memory plan -> lowering ->
VRF allocation -> emission -> ``.dfx`` binary. Each stage's result is kept on
:class:`Compilation` so it can be inspected (``dfx compile --emit ir|asm``) and tested.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfx.compiler import emit
from dfx.compiler.frontend.presets import load_model
from dfx.compiler.ir import Graph, annotate_quant, gpt2_graph
from dfx.compiler.lower import Lowering
from dfx.compiler.memplan import CardMemory, QuantPlan, allocate_vrf, plan_card, quant_plan
from dfx.compiler.partition import Partition, partition
from dfx.compiler.program import Program
from dfx.isa.config import CoreConfig, load_core
from dfx.isa.container import Binary, CardImage
from dfx.isa.encoding import Instruction, encode_program

if TYPE_CHECKING:
    from dfx.compiler.quant import QuantSpec


@dataclass
class Compilation:
    """Everything the compiler produced, stage by stage."""

    graph: Graph
    partition: Partition
    memory: list[CardMemory]
    programs: list[Program]
    instructions: list[list[Instruction]]
    debug: list[list[tuple[int, str]]]
    vrf: list[dict[str, int]]
    binary: Binary
    timings: dict[str, float] = field(default_factory=dict)
    quant: QuantPlan | None = None


def compile_model(src: str, *, cards: int = 1, core: str | CoreConfig = "dfx-u280",
                  board: str | None = None, weights: bool = True, seed: int = 0,
                  scale: float = 1.0, progress: Callable[[str], None] | None = None,
                  quant: QuantSpec | str | None = None) -> Compilation:
    """Compile checkpoint directory or preset ``src`` for ``cards`` cards of ``core``.

    ``quant`` (a :class:`~dfx.compiler.quant.QuantSpec` or its text, e.g. ``bcq:q=3,g=128``):
    the Conv1D layers it selects run as ``lutmv`` on BCQ weights (LUT-GEMM; docs/compiler.md,
    quantized compilation). Without weights nothing is quantized, but the regions have their
    quantized sizes (for the timing model)."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = now - t0
        t0 = now
        if progress:
            progress(name)

    core_cfg = core if isinstance(core, CoreConfig) else load_core(core, board)
    model = load_model(src, seed=seed, scale=scale, weights=weights, lazy=True)
    cfg = model.config
    graph = gpt2_graph(cfg.name, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_ctx,
                       cfg.vocab_size, cfg.layer_norm_epsilon)
    stage("frontend")
    part = partition(graph.dims, cards, core_cfg)
    qplan = None
    if quant is not None:
        from dfx.compiler.quant import QuantSpec

        spec = QuantSpec.parse(quant) if isinstance(quant, str) else quant
        qplan = quant_plan(spec, part, core_cfg)
        fp16 = {k: [i for i, kinds in enumerate(qplan.layer_kinds) if k not in kinds]
                for k in qplan.groups if k != "lm_head"}
        graph = annotate_quant(graph, qplan.groups, spec.q, spec.scheme, fp16)
    stage("partition")
    memory = [plan_card(part, c, core_cfg, qplan) for c in range(cards)]
    stage("memory plan")
    programs = [Lowering(part, memory[c], core_cfg, c, cfg.layer_norm_epsilon).build()
                for c in range(cards)]
    stage("lowering")
    vrf = [allocate_vrf(prog.buffers, prog.uses(), prog.loops, core_cfg.buffers.vrf_vectors, c)
           for c, prog in enumerate(programs)]
    stage("vrf allocation")
    instructions, debug = [], []
    for c, prog in enumerate(programs):
        ins, dbg = prog.resolve(vrf[c], memory[c].addr)
        instructions.append(ins)
        debug.append(dbg)
    stage("resolution")

    get = _weights(model) if weights else None
    segments = emit.card_segments(part, memory, get, qplan)
    images = [CardImage(program=encode_program(instructions[c]), segments=segments[c],
                        debug=debug[c], symbols=emit.card_symbols(part, memory[c]))
              for c in range(cards)]
    stage("emission")
    model_info: dict[str, Any] = {
        "arch": "gpt2", "name": cfg.name, "source": str(src), "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd, "n_head": cfg.n_head, "n_ctx": cfg.n_ctx,
        "vocab_size": cfg.vocab_size, "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "weights": weights, "seed": seed, "scale": scale,
        "tokenizer": _tokenizer_info(src),
        "quant": _quant_info(qplan),
        "weight_bytes": [m.weight_bytes for m in memory],
    }
    binary = Binary(core=core_cfg, model=model_info, cards=images)
    return Compilation(graph, part, memory, programs, instructions, debug, vrf, binary, timings,
                       qplan)


def _quant_info(plan: QuantPlan | None) -> dict[str, Any] | None:
    """The model info's record of quantization: spec text, bits, groups per layer kind."""
    if plan is None:
        return None
    fp16 = [f"h.{i}.{kind}" for i, kinds in enumerate(plan.layer_kinds)
            for kind in plan.groups if kind != "lm_head" and kind not in kinds]
    return {"spec": plan.spec.text(), "scheme": plan.spec.scheme, "q": plan.spec.q,
            "groups": dict(plan.groups), "slice": plan.slice, "fp16_layers": fp16}


def _tokenizer_info(src: str) -> dict[str, Any]:
    """Which GPT-2 BPE files the runtime should use (docs: host runtime, tokenizer)."""
    from dfx.host.runtime import TOKENIZER_FILES, tokenizer_files
    from dfx.host.tokenizer import gpt2_tokenizer_files

    d = Path(src)
    own = tokenizer_files(d) if d.is_dir() else None
    if own is None:
        return {"builtin": True}
    builtin = dict(zip(TOKENIZER_FILES, (hashlib.sha256(f.read_bytes()).hexdigest()
                                         for f in gpt2_tokenizer_files()), strict=True))
    return {"dir": str(d.resolve()), "sha256": own, "builtin": own == builtin}


def _weights(model: Any) -> Callable[[str], np.ndarray]:
    """Tensor by name; the embedding (read twice: DDR rows and the tied LM head) is kept."""
    kept: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name == "lm_head.weight" and model.tied_lm_head:
            name = "wte.weight"
        if name == "lm_head.weight":
            return model.lm_head_weight()
        if name == "wte.weight":
            if name not in kept:
                kept[name] = model[name]
            return kept[name]
        return model[name]

    return get
