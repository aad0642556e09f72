"""dfx.sim.timing: the cycle-level timing model of the DFX appliance (docs/timing.md).

It runs the same ``.dfx`` binaries as the functional simulator, in core clock cycles, without
computing any FP data: integer and control instructions execute (registers, loops, branches,
``lw``/``sw``), everything else is timed on a model of each card's units (in-order issue with
a scoreboard and chaining, MPU, VPU, DMA over the HBM pseudo-channels and DDR channels, the
router on the QSFP ring) with every parameter from the core and board configuration.

Example::

    from dfx.sim.timing import perf
    report = perf("xl.dfx", prompt_len=64, gen_len=64, trace="xl.trace.json")
    print(report.render())            # or report.to_dict()
"""

from __future__ import annotations

import os

from dfx.isa.container import Binary, read_binary
from dfx.isa.outputs import check_output

from .appliance import Appliance, SimResult
from .errors import TimingError
from .params import Params, derive
from .report import PerfReport, build, write_trace, write_unit_trace

__all__ = [
    "Appliance",
    "Params",
    "PerfReport",
    "SimResult",
    "TimingError",
    "derive",
    "perf",
    "simulate",
    "write_trace",
    "write_unit_trace",
]


def _load(binary: Binary | str | os.PathLike[str]) -> Binary:
    return binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)


def _context(b: Binary) -> int | None:
    n = b.model.get("n_ctx")
    if n is not None:
        return int(n)
    tok = b.cards[0].symbols.get("tokens")
    return int(tok.get("capacity", tok["bytes"] // 4)) if tok else None


def check_request(b: Binary, prompt_len: int, gen_len: int) -> None:
    """Raise :class:`TimingError` (one line) for a request the binary cannot serve."""
    if not isinstance(prompt_len, int) or prompt_len < 1:
        raise TimingError(f"--prompt-len must be at least 1, got {prompt_len}")
    if not isinstance(gen_len, int) or gen_len < 1:
        raise TimingError(f"--gen-len must be at least 1, got {gen_len}")
    ctx = _context(b)
    if ctx is not None and prompt_len + gen_len > ctx:
        raise TimingError(f"prompt of {prompt_len} tokens + {gen_len} new tokens = "
                          f"{prompt_len + gen_len} exceeds the model's context of {ctx} tokens")


def simulate(binary: Binary | str | os.PathLike[str], prompt_len: int | None = None,
             gen_len: int | None = None, *, trace_tokens: int = 0, memo: bool = True,
             max_instructions: int | None = None, write_logits: bool = False) -> SimResult:
    """Time ``binary`` on its cards: a generation request of ``prompt_len`` + ``gen_len``
    tokens (host configuration block and tokens written as the runtime does), or, with no
    lengths, the program as it stands (micro-programs). ``memo=False`` disables the exact
    loop memoisation (for cross-checks). ``max_instructions``: the instruction budget (None:
    derived, :mod:`dfx.sim.limits`). ``write_logits``: the request has the cards store
    every step's logits too (as ``dfx run --logits`` asks)."""
    b = _load(binary)
    app = Appliance(b, memo_loops=memo, max_instructions=max_instructions)
    if prompt_len is not None or gen_len is not None:
        check_request(b, prompt_len or 0, gen_len or 0)
        app.configure(int(prompt_len), int(gen_len),  # type: ignore[arg-type]
                      write_logits=write_logits)
    return app.run(trace_tokens=trace_tokens)


def perf(binary: Binary | str | os.PathLike[str], prompt_len: int, gen_len: int,
         trace: str | os.PathLike[str] | None = None, *, trace_tokens: int = 1,
         memo: bool = True, max_instructions: int | None = None) -> PerfReport:
    """The modelled latency of one request (``dfx perf``). ``trace``: also write a
    Chrome/Perfetto trace of the first ``trace_tokens`` tokens to that file (through
    :mod:`dfx.isa.outputs`: checked before the run, written atomically)."""
    b = _load(binary)
    check_request(b, prompt_len, gen_len)
    if trace is not None:
        check_output(trace, option="--trace", inputs=[b.path])
    if trace is not None and trace_tokens < 1:
        raise TimingError(f"--trace-tokens must be at least 1, got {trace_tokens}")
    result = simulate(b, prompt_len, gen_len, trace_tokens=trace_tokens if trace else 0,
                      memo=memo, max_instructions=max_instructions)
    report = build(result, b, prompt_len, gen_len)
    if trace is not None:
        report.simulation["trace_events"] = write_trace(result, trace, inputs=[b.path])
        report.simulation["trace_file"] = str(trace)
        if result.trace_truncated:
            report.simulation["trace_truncated"] = True
    return report
