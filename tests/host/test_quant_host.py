"""Host side of quantized binaries: ``dfx compile --help`` teaches --quant, ``dfx inspect``
renders the weight format, ``dfx run`` still answers when the timing model cannot time a
binary (the functional result stands on its own)."""

from __future__ import annotations

import pytest

from dfx.compiler.driver import compile_model
from dfx.host import cli
from dfx.host.commands.inspect import _quant_text
from dfx.host.runtime import generate


def test_compile_help_teaches_quant(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compile", "--help"]) == 0
    out = capsys.readouterr().out
    for needle in ("--quant SPEC", "bcq:q=3,g=128", "rtn:q=4,g=128", "exclude=", "g=row",
                   "lm_head", "h.{i}.mlp.c_fc"):
        assert needle in out, needle


def test_quant_text() -> None:
    assert _quant_text(None).startswith("fp16")
    q = {"spec": "bcq:q=3,g=128,rounds=15,exclude=lm_head", "groups": {"mlp.c_fc": 128},
         "fp16_layers": ["h.0.mlp.c_fc"]}
    assert _quant_text(q) == ("quantized bcq:q=3,g=128,rounds=15,exclude=lm_head (lutmv: "
                              "mlp.c_fc g=128, except 1 layer(s) kept fp16; the rest fp16)")


def test_run_without_a_timing_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    import dfx.sim.timing as timing

    def fail(*a, **k):  # noqa: ANN002, ANN003
        raise NotImplementedError("no timing for this instruction")

    binary = compile_model("gpt2-tiny", cards=1, quant="rtn:q=2,g=64,exclude=lm_head+"
                           "h.*.attn.c_proj").binary
    monkeypatch.setattr(timing, "perf", fail)
    res = generate(binary, tokens=[1, 2], max_new_tokens=2)
    assert len(res.new_ids) == 2
    assert "modelled" not in res.stats
    assert res.stats["modelled_error"] == "no timing for this instruction"
