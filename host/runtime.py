"""The host runtime: start the (simulated) appliance once per request, as DFX does (§IV-A).

The host writes the system configuration (prompt length, tokens to generate) and the prompt
tokens into every card's DDR, starts the cards, and after the single *done* reads back the
generated tokens (greedy arg-max, computed on the cards) and, on request, the logits of every
step. :func:`generate` is the Python API behind ``dfx run`` for a compiled model.

A binary without a model (``dfx asm``: no ``cfg``/``tokens`` symbols) is a program:
:func:`execute` runs it on its cards until every card halts and returns each card's final
state (:class:`ProgramResult`). :func:`is_model` tells the two apart.

Both stop at an instruction budget and a host-memory limit (``max_instructions``,
``memory_limit``; None: the defaults of :mod:`dfx.sim.limits`, docs/limits.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfx.host.tokenizer import Tokenizer, gpt2_tokenizer, load_tokenizer
from dfx.isa.container import Binary, read_binary
from dfx.isa.errors import BinaryFormatError, DfxError, indices

TOKENIZER_FILES = ("vocab.json", "merges.txt")
#: How messages describe a binary without a model.
PROGRAM_ONLY = "holds a program without a model (no 'cfg'/'tokens' symbols; from dfx asm)"


@dataclass
class GenerationResult:
    """What one request produced."""

    prompt_ids: list[int]
    new_ids: list[int]
    text: str | None  # decoded new tokens (None without a tokenizer)
    prompt_text: str | None
    logits: np.ndarray | None  # float32 [P + G - 1, vocab], row t predicts token t + 1
    stats: dict = field(default_factory=dict)


@dataclass
class ProgramResult:
    """The final state of a program run (a binary without a model): per card ``card``,
    ``halted``, ``pc``, ``instructions`` and the non-zero integer ``registers``."""

    cards: list[dict]
    instructions: int


def is_model(binary: Binary) -> bool:
    """True if ``binary`` is a compiled model that serves generation requests (every card has
    the host's ``cfg`` and ``tokens`` symbols), False for a program. A binary that has the
    symbols but lacks the model's context or vocabulary size is refused as malformed."""
    if not all("cfg" in c.symbols and "tokens" in c.symbols for c in binary.cards):
        return False
    for key in ("n_ctx", "vocab_size"):
        if key not in binary.model:
            where = f"{binary.path}: " if binary.path is not None else ""
            raise BinaryFormatError(f"{where}corrupted binary: it has the host symbols of a "
                                    f"compiled model but no model field {key!r}")
    return True


def execute(binary: str | Path | Binary, *, max_instructions: int | None = None,
            memory_limit: int | None = None) -> ProgramResult:
    """Run ``binary``'s program on its simulated cards until all halt (no host request)."""
    from dfx.sim.functional import Appliance

    b = binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)
    app = Appliance(b, memory_limit=memory_limit)
    app.run(max_instructions=max_instructions)
    cards = []
    for c in app.cards:
        regs = {f"r{i}": int(v) for i, v in enumerate(c.r) if i and v}
        cards.append({"card": c.index, "halted": c.halted, "pc": c.pc,
                      "instructions": int(sum(c.op_counts)), "registers": regs})
    return ProgramResult(cards, app.instructions)


def tokenizer_files(checkpoint: Path) -> dict[str, str] | None:
    """sha256 of a checkpoint's own tokenizer files, if it has them (recorded at compile)."""
    if not all((checkpoint / f).is_file() for f in TOKENIZER_FILES):
        return None
    return {f: hashlib.sha256((checkpoint / f).read_bytes()).hexdigest() for f in TOKENIZER_FILES}


def binary_tokenizer(binary: Binary, override: str | Path | None = None) -> Tokenizer:
    """The tokenizer a binary was compiled with: ``override``, the checkpoint's own files
    (if still present and unchanged), else the original GPT-2 files shipped with dfx."""
    if override is not None:
        return load_tokenizer(override, what="--tokenizer directory")
    info = binary.model.get("tokenizer") or {}
    src = info.get("dir")
    if src:
        d = Path(src)
        if tokenizer_files(d) == info.get("sha256"):
            return load_tokenizer(d)
        if not info.get("builtin"):
            raise DfxError(
                f"the tokenizer files of checkpoint {src} are gone or changed since it was "
                "compiled; pass --tokenizer DIR (a directory with vocab.json and merges.txt)"
            )
    return gpt2_tokenizer()


def generate(binary: str | Path | Binary, *, prompt: str | None = None,
             tokens: Sequence[int] | None = None, max_new_tokens: int = 16,
             logits: bool = False, tokenizer: str | Path | None = None,
             progress: Callable[[int, int], None] | None = None,
             modelled: bool = True, max_instructions: int | None = None,
             memory_limit: int | None = None, backend: str = "functional",
             rtl_options: dict | None = None) -> GenerationResult:
    """Run one request on the simulated cards of ``binary``: greedy generation.

    Give exactly one of ``prompt`` (text, encoded with the binary's GPT-2 tokenizer) or
    ``tokens`` (ids). ``progress(done, total)`` is called as tokens are processed. With
    ``modelled``, ``stats["modelled"]`` holds the timing model's latency of the same request
    on the binary's cards (:func:`dfx.sim.timing.perf`).

    ``backend``: ``"functional"`` (the simulator) or ``"rtl"`` (the core's RTL on Verilator,
    one card: :func:`dfx.host.rtl_backend.generate` with ``rtl_options``; then
    ``stats["rtl_cycles"]`` and ``stats["model_cycles"]`` hold the cycles per card).
    """
    from dfx.sim.functional import generate as sim_generate

    b = binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)
    if not is_model(b):
        where = f"{b.path}: " if b.path is not None else ""
        raise DfxError(f"{where}{PROGRAM_ONLY}: it cannot take a prompt; run it without "
                       "--prompt/--tokens to execute it")
    if (prompt is None) == (tokens is None):
        raise DfxError("give exactly one of --prompt TEXT or --tokens 1,2,3")
    if max_new_tokens < 1:
        raise DfxError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    tok: Tokenizer | None = None
    if prompt is not None:
        tok = binary_tokenizer(b, tokenizer)
        ids = tok.encode(prompt)
        if not ids:
            raise DfxError("the prompt is empty: it encodes to no tokens")
    else:
        ids = [int(t) for t in tokens or []]
        if not ids:
            raise DfxError("--tokens is empty")
        try:
            tok = binary_tokenizer(b, tokenizer)
        except DfxError:
            tok = None
    n_ctx, vocab = int(b.model["n_ctx"]), int(b.model["vocab_size"])
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        text = str(bad[0]) if len(str(bad[0])) <= 20 else f"of {len(str(bad[0]))} digits"
        raise DfxError(f"token id {text} is outside the model's vocabulary {indices(vocab)}")
    if len(ids) + max_new_tokens > n_ctx:
        raise DfxError(
            f"prompt of {len(ids)} tokens + {max_new_tokens} new tokens exceeds the model's "
            f"context of {n_ctx} tokens"
        )
    rtl = None
    if backend == "rtl":
        from dfx.host.rtl_backend import generate as rtl_generate

        all_ids, lg, rtl = rtl_generate(b, ids, max_new_tokens, write_logits=logits,
                                        progress=progress, **(rtl_options or {}))
    elif backend == "xrt":
        from dfx.host.xrt_backend import xrt_generate

        all_ids, lg, _st = xrt_generate(b, ids, max_new_tokens, write_logits=logits,
                                        progress=progress, **(rtl_options or {}))
    elif backend != "functional":
        raise DfxError(f"backend must be 'functional', 'rtl' or 'xrt', not {backend!r}")
    else:
        all_ids, lg = sim_generate(b, ids, max_new_tokens, write_logits=logits,
                                   progress=progress, max_instructions=max_instructions,
                                   memory_limit=memory_limit)
    new = [int(t) for t in all_ids[len(ids):]]
    text = prompt_text = None
    if tok is not None and all(t < 50257 for t in all_ids):
        text, prompt_text = tok.decode(new), tok.decode(ids)
    result = GenerationResult(ids, new, text, prompt_text,
                              None if lg is None else np.asarray(lg, dtype=np.float32))
    if rtl is not None:
        result.stats.update(rtl_cycles=rtl.cycles, model_cycles=rtl.model_cycles, rtl=rtl)
    if modelled:
        from dfx.sim.timing import perf

        try:
            rep = perf(b, len(ids), max_new_tokens, max_instructions=max_instructions)
        except Exception as e:  # noqa: BLE001 - the latency estimate is an extra of dfx run
            # e.g. a core the timing model cannot time: the functional result stands alone
            result.stats["modelled_error"] = " ".join(str(e).split()) or type(e).__name__
            return result
        result.stats["modelled"] = {
            "cards": rep.cards, "core": rep.core, "board": rep.board,
            "clock_mhz": rep.clock_mhz, "total_ms": rep.total_ms, "ttft_ms": rep.ttft_ms,
            "gen_ms_per_token": rep.gen_ms_per_token, "tokens_per_s": rep.tokens_per_s,
        }
    return result

