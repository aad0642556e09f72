"""Quantized GPT-2 end to end (LUT-GEMM, docs/compiler.md): ``dfx compile --quant`` then
``dfx run`` generates text on 4 simulated cards; logits are bit-identical on 1, 2 and 4 cards
and between the simulator's fast lutmv and the golden function; bad ``--quant`` arguments are
one-line errors (exit 2) that write nothing; ``dfx inspect`` shows the spec and weight bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.sim.functional import Appliance

SPEC = "bcq:q=3,g=64"
PROMPT = [464, 2068, 7586, 21831]


def dfx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "dfx.host", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("quant-e2e")
    r = dfx("compile", "gpt2-mini", "--cards", "4", "--quant", SPEC, "-o", "x.dfx", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "quant bcq:q=3,g=64" in r.stderr
    return d / "x.dfx"


def test_cli_compile_and_run_generates_text(compiled: Path) -> None:
    r = dfx("run", str(compiled), "--prompt", "Hello, I am", "--max-new-tokens", "4", "--json",
            cwd=compiled.parent)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["generated_ids"]) == 4 and isinstance(out["text"], str)
    assert out["prompt"] == "Hello, I am"


def test_cli_inspect_shows_the_quantization(compiled: Path) -> None:
    r = dfx("inspect", str(compiled), cwd=compiled.parent)
    assert r.returncode == 0, r.stderr
    assert "weights     quantized bcq:q=3,g=64,rounds=15,exclude=lm_head (lutmv: " in r.stdout
    assert "MiB of weights in HBM" in r.stdout
    js = json.loads(dfx("inspect", str(compiled), "--json", cwd=compiled.parent).stdout)
    assert js["model"]["quant"]["q"] == 3 and len(js["model"]["weight_bytes"]) == 4


def _logits(cards: int, new: int = 3, spec: str = "rtn:q=3,g=64", **kw: object
            ) -> tuple[list[int], np.ndarray]:
    comp = compile_model("gpt2-mini", cards=cards, quant=spec, scale=4.0)
    toks, lg = Appliance(comp.binary, **kw).generate(PROMPT[:2], new, write_logits=True)
    assert lg is not None
    return toks, lg


def test_logits_bit_identical_on_1_2_4_cards() -> None:
    t4, l4 = _logits(4)
    for cards in (1, 2):
        t, lg = _logits(cards)
        assert t == t4
        assert (lg.view(np.uint16) == l4.view(np.uint16)).all(), cards
    assert np.isfinite(l4).all()


def test_fast_lutmv_equals_golden_on_the_compiled_model() -> None:
    """Two steps of the 4-card BCQ model with the golden lutmv and matvec (slow) vs fast."""
    t, lg = _logits(4, new=1, spec=SPEC)
    tg, lgg = _logits(4, new=1, spec=SPEC, golden_matvec=True)
    assert tg == t and (lgg.view(np.uint16) == lg.view(np.uint16)).all()


@pytest.mark.parametrize("spec, needle", [
    ("bcq:q=5,g=64", "q must be an integer in 1..4, got 5"),
    ("bcq:q=3,g=96", "layer h.0.attn.c_attn (k = 256, g = 96, slice = 32): the group size "
                     "does not divide k"),
    ("lut:q=3", "unknown scheme 'lut'"),
    ("bcq:q=3,exclude=h.1.*+h.0.a(", "bad exclude pattern 'h.0.a('"),
    ("bcq:q=3,g=64,bits=2", "unknown key 'bits'"),
])
def test_bad_quant_is_one_line_and_writes_nothing(tmp_path: Path, spec: str, needle: str
                                                  ) -> None:
    r = dfx("compile", "gpt2-mini", "--cards", "4", "--quant", spec, "-o", "x.dfx",
            cwd=tmp_path)
    assert r.returncode == 1  # bad input (cli.EXIT_STATUS)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dfx: error: "), r.stderr
    assert needle in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_no_weights_quantized_binary_for_the_timing_model(tmp_path: Path) -> None:
    r = dfx("compile", "gpt2-xl-24h", "--cards", "4", "--no-weights", "--quant",
            "bcq:q=3,g=128", "-o", "xl.dfx", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    js = json.loads(dfx("inspect", "xl.dfx", "--json", cwd=tmp_path).stdout)
    assert js["model"]["weights"] is False
    assert js["model"]["quant"]["spec"].startswith("bcq:q=3,g=128")


@pytest.mark.slow
def test_gpt2_124m_quantized_bit_identical_on_1_and_4_cards() -> None:
    spec = "rtn:q=3,g=128"
    runs = []
    for cards in (4, 1):
        comp = compile_model("gpt2", cards=cards, quant=spec, scale=4.0)
        assert sum(comp.binary.model["weight_bytes"]) < 120 << 20  # FP16: 248 MB
        runs.append(Appliance(comp.binary).generate(PROMPT[:2], 2, write_logits=True))
    (t4, l4), (t1, l1) = runs
    assert t4 == t1 and (l4.view(np.uint16) == l1.view(np.uint16)).all()
