"""``dfx perf``: the JSON document, the Chrome trace and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from dfx.host import cli
from dfx.host.commands import perf as perf_cmd
from dfx.isa.container import write_binary


@pytest.fixture
def dfx(monkeypatch):
    """Run the dfx command line (with ``perf`` registered even before cli.py lists it)."""
    if perf_cmd not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + (perf_cmd,))
    return cli.main


@pytest.fixture(scope="module")
def tiny_file(tiny4, tmp_path_factory):
    return write_binary(tmp_path_factory.mktemp("perf") / "tiny.dfx", tiny4)


DOCUMENTED = {
    "model": str, "cards": int, "core": str, "board": str, "clock_mhz": float,
    "prompt_len": int, "gen_len": int, "total_ms": float, "ttft_ms": float,
    "prompt_ms_per_token": float, "gen_ms_per_token": float, "tokens_per_s": float,
    "end_to_end_tokens_per_s": float, "token_times_ms": list, "breakdown": dict,
    "issue_waits": dict, "units": list, "hbm": list, "roofline": dict, "simulation": dict,
    "parameters": dict,
}


def test_json_has_the_documented_fields(dfx, tiny_file, capsys):
    assert dfx(["perf", str(tiny_file), "--prompt-len", "3", "--gen-len", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key, typ in DOCUMENTED.items():
        assert isinstance(doc[key], typ), key
    assert set(doc["breakdown"]) == {"total", "prompt", "generation_per_token"}
    assert set(doc["breakdown"]["total"]) == {"matrix", "attention", "vector", "ring_sync",
                                              "dma_stall", "idle"}
    assert len(doc["units"]) == len(doc["hbm"]) == doc["cards"] == 4
    unit = doc["units"][0]
    assert set(unit["busy"]) == {"mpu", "vpu", "dma", "router_tx", "router_rx", "lut"}
    assert {"mpu_weight_stall_ms", "idle", "breakdown_ms", "issue_waits_ms"} <= set(unit)
    assert {"read_bytes", "written_bytes", "gbs", "utilisation", "utilisation_dma"} <= set(
        doc["hbm"][0])
    assert {"per_token_ms", "total_ms", "board_peak_gbs", "weight_bytes_per_card"} <= set(
        doc["roofline"])
    assert {"wall_s", "steps", "instructions", "memo_iterations"} <= set(doc["simulation"])


def test_text_report(dfx, tiny_file, capsys):
    assert dfx(["perf", str(tiny_file), "--prompt-len", "2", "--gen-len", "2"]) == 0
    out = capsys.readouterr().out
    for needle in ("time to first token", "ms per token", "roofline", "HBM per card", "idle"):
        assert needle in out


def test_trace_is_chrome_trace_event_json(dfx, tiny_file, tmp_path, capsys):
    out = tmp_path / "t.json"
    assert dfx(["perf", str(tiny_file), "--prompt-len", "2", "--gen-len", "2", "--trace",
                str(out), "--trace-tokens", "1"]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) >= {"traceEvents"}
    events = doc["traceEvents"]
    xs = [e for e in events if e["ph"] == "X"]
    assert xs
    for e in xs:
        assert isinstance(e["name"], str) and e["name"]
        assert isinstance(e["pid"], int) and 0 <= e["pid"] < 4
        assert isinstance(e["tid"], int) and 1 <= e["tid"] <= 5
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
        assert isinstance(e["args"]["pc"], int)
        assert e["args"]["end_cycle"] >= e["args"]["start_cycle"]
    names = {(e["pid"], e["args"]["name"]) for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {(c, f"card {c}") for c in range(4)}
    threads = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"mpu", "vpu", "dma", "router_tx", "router_rx"} <= threads
    assert any("layer" in e["name"] for e in xs)  # debug annotations in the names
    # only the first token: no event after the first token finished on that card
    done = {e["pid"]: e["ts"] for e in events if e["ph"] == "i" and e["args"]["token"] == 0}
    assert not [e for e in events if e["ph"] == "i" and e["args"]["token"] > 0]
    assert all(e["ts"] <= done[e["pid"]] + 1e-9 for e in xs)
    assert "trace events" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--prompt-len", "0", "--gen-len", "2"], "--prompt-len must be at least 1, got 0"),
    (["--prompt-len", "2", "--gen-len", "0"], "--gen-len must be at least 1, got 0"),
    (["--prompt-len", "100", "--gen-len", "100"], "exceeds the model's context of 128 tokens"),
])
def test_bad_request_is_one_line(dfx, tiny_file, capsys, args, message):
    assert dfx(["perf", str(tiny_file), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("dfx: error: ")


def test_not_a_binary(dfx, tmp_path, capsys):
    bad = tmp_path / "x.dfx"
    bad.write_text("hello")
    assert dfx(["perf", str(bad), "--prompt-len", "1", "--gen-len", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not" in err


def test_micro_program_without_cfg_is_refused(dfx, tmp_path, capsys):
    from timing_helpers import micro

    f = write_binary(tmp_path / "m.dfx", micro("halt\n"))
    assert dfx(["perf", str(f), "--prompt-len", "1", "--gen-len", "1"]) == 1
    assert "cfg" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_quant_file(tmp_path_factory):
    """gpt2-tiny on 4 cards with lutmv layers (its 16-wide heads keep attn.c_proj in FP16)."""
    from dfx.compiler.driver import compile_model

    b = compile_model("gpt2-tiny", cards=4, weights=False,
                      quant="bcq:q=2,g=32,exclude=lm_head+h.*.attn.c_proj").binary
    return write_binary(tmp_path_factory.mktemp("perfq") / "tinyq.dfx", b)


def test_quantized_binary_reports_the_lut_unit(dfx, tiny_quant_file, capsys):
    assert dfx(["perf", str(tiny_quant_file), "--prompt-len", "3", "--gen-len", "2",
                "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for u in doc["units"]:
        lu = u["lut"]
        assert lu["instructions"] > 0 and lu["stream_bytes"] > 0
        assert 0 < u["busy"]["lut"] == lu["lane_utilisation"] < 1
        assert 0 < lu["lane_fill"] <= 1
        assert u["bytes"]["lut_weights"] == lu["stream_bytes"]
        bound = lu["hbm_bound_ms"] + lu["lane_bound_ms"] + lu["scaler_bound_ms"]
        assert bound > 0
    # the lutmv streams count as weights in the roofline
    assert doc["roofline"]["weight_bytes_per_card_without_kv"] >= max(
        u["lut"]["stream_bytes"] for u in doc["units"])
    assert dfx(["perf", str(tiny_quant_file), "--prompt-len", "2", "--gen-len", "2"]) == 0
    out = capsys.readouterr().out
    assert "LUT-GEMM unit" in out and " lut " in out
