"""The timing model on compiled GPT-2 binaries: exact memoisation, consistent accounting,
token timing and the parameters derived from the configuration."""

from __future__ import annotations

import pytest
from timing_helpers import cycles

from dfx.sim.timing import derive, perf, simulate
from dfx.sim.timing.card import S_CRIT, S_INSTR, S_OCC


def _same(a, b) -> None:
    assert a.end == b.end
    assert a.token_times == b.token_times
    assert a.stats == b.stats
    assert a.snap == b.snap
    assert a.channels == b.channels


@pytest.mark.parametrize("prompt_len, gen_len", [(2, 2), (15, 3)])
def test_loop_memo_is_exact(medium4_rows, prompt_len, gen_len):
    """Replaying layer iterations gives bit-identical results to simulating every one (15 + 3
    crosses the position where the number of key tiles grows)."""
    a = simulate(medium4_rows, prompt_len, gen_len)
    b = simulate(medium4_rows, prompt_len, gen_len, memo=False)
    assert a.memo_iterations > 0 and b.memo_iterations == 0
    assert a.steps < b.steps
    _same(a, b)


def test_memo_refuses_layers_whose_ddr_ops_split_differently(gpt2_4):
    """GPT-2 124M as compiled (per-layer DDR block 64-byte aligned): a layer's conv1d biases
    and LayerNorm loads cross rows differently from layer to layer, so no layer repeats
    another exactly and the memo replays nothing; the result is still the full run's."""
    a = simulate(gpt2_4, 2, 2)
    b = simulate(gpt2_4, 2, 2, memo=False)
    assert a.memo_iterations == 0
    _same(a, b)


def test_loop_memo_is_exact_on_one_card():
    from dfx.compiler.driver import compile_model

    b1 = compile_model("gpt2", cards=1, weights=False).binary
    a, b = simulate(b1, 3, 2), simulate(b1, 3, 2, memo=False)
    assert a.memo_iterations > 0
    _same(a, b)


def test_accounting_adds_up(tiny4):
    res = simulate(tiny4, 3, 3)
    for c, st in enumerate(res.stats):
        assert sum(st[S_OCC:S_OCC + 6]) == res.end[c]  # every cycle counted once
        assert sum(st[S_CRIT:S_CRIT + 6]) == res.end[c]
        assert sum(st[S_INSTR:S_INSTR + 7]) > 0


def test_token_times_and_report(tiny4):
    p, g = 3, 4
    rep = perf(tiny4, p, g)
    tt = rep.token_times_ms
    assert len(tt) == p + g - 1  # one forward pass per prompt token and per generated token
    assert tt == sorted(tt)
    assert rep.ttft_ms == pytest.approx(tt[p - 1])
    assert rep.prompt_ms_per_token == pytest.approx(tt[p - 1] / p)
    assert rep.gen_ms_per_token == pytest.approx((tt[-1] - tt[p - 1]) / (g - 1))
    assert rep.tokens_per_s == pytest.approx(1000 / rep.gen_ms_per_token)
    assert rep.total_ms >= tt[-1]
    total = rep.breakdown["total"]
    assert sum(total.values()) == pytest.approx(rep.total_ms)
    assert set(total) == {"matrix", "attention", "vector", "ring_sync", "dma_stall", "idle"}
    # the roofline: the bytes of every weight tile at the board's peak HBM bandwidth
    board = tiny4.core.b
    rf = rep.roofline
    assert rf["board_peak_gbs"] == pytest.approx(board.hbm.pseudo_channels
                                                 * board.hbm.pc_bandwidth_gbs)
    assert rf["total_ms"] == pytest.approx(rf["weight_bytes_per_card"]
                                           / (rf["board_peak_gbs"] * 1e9) * 1e3)
    assert rf["per_token_ms"] == pytest.approx(rf["total_ms"] / (p + g - 1))
    assert rep.total_ms > rf["total_ms"]


def test_derived_parameters(u280):
    """The memory and ring figures (the units' latencies: test_rtl_params.py)."""
    p = derive(u280)
    assert p.hbm.latency == cycles(u280.b.hbm.read_latency_ns, u280)
    assert float(p.hbm.bytes_per_cycle) == u280.timing.dma_port_bits / 8  # port-bound
    assert float(p.hbm.bytes_per_cycle) * p.hbm.n * u280.clock_mhz / 1000 == pytest.approx(409.6)
    assert p.ser_num / p.ser_den == pytest.approx(1024 * 200e6 * 66 / (100e9 * 64))
    assert p.fifo == u280.buffers.router_fifo_vectors


def test_timing_sections_are_required_and_sourced(tmp_path):
    """The new configuration fields load like every other one: a missing field or a figure
    without a source is a one-line ConfigError naming it."""
    import yaml

    from dfx.isa.config import ConfigError, boards_dir, load_core

    data = yaml.safe_load((boards_dir() / "cores" / "dfx-u280.yaml").read_text())
    del data["timing"]["unit_queue"]
    f = tmp_path / "core.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="timing.unit_queue: missing required field"):
        load_core(f)
    data = yaml.safe_load((boards_dir() / "cores" / "dfx-u280.yaml").read_text())
    del data["sources"]["timing.router_latency"]
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="no source given for field timing.router_latency"):
        load_core(f)
