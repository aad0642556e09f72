"""Smoke test of bench/lutgemm_accuracy.py on the smallest preset: the FP16 row is exact, the
quantized row has a finite, non-zero error, and the table is printed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "lutgemm_accuracy.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("dfx_bench_lutgemm_accuracy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_compare(bench):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((6, 50))
    m = bench.compare(ref, ref, 3)
    assert m["max"] == 0 and m["kl"] == pytest.approx(0, abs=1e-12)
    assert m["top1_p"] == m["top1_g"] == m["top5"] == 1.0
    got = ref.copy()
    got[0, ref[0].argmax()] -= 100  # position 0 (prompt) flips its arg-max
    m = bench.compare(ref, got, 3)
    assert m["top1_p"] == pytest.approx(2 / 3) and m["top1_g"] == 1.0
    assert m["max"] == pytest.approx(100 / ref[0].std())


def test_runs_on_gpt2_tiny(bench, capsys):
    assert bench.main(["--model", "gpt2-tiny", "--cards", "2", "--prompt", "3", "--steps", "5",
                       "--q", "3", "--g", "32", "--schemes", "bcq,rtn",
                       "--exclude", "lm_head+h.*.attn.c_proj"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(rows) == 4  # header + fp16 + bcq + rtn
    assert rows[1].startswith("| fp16 | - | - | 16.00 |")
    assert rows[2].startswith("| bcq | 3 | 32 | 5.00 |")  # 3 + 16 * 4 / 32
    werr = float(rows[2].split("|")[7])
    assert 0 < werr < 0.5
