"""``dfx run --backend rtl`` through the real CLI: a small GPT-2 (Hugging Face checkpoint made
here, 2 layers, n_embd 32, 4 heads, vocabulary 256) compiled for one tiny card gives the same
output as the functional backend (text form, ``--json`` fields, ``--logits`` bit for bit),
with ``rtl_cycles`` / ``model_cycles``; ``--waves`` writes an FST; the RTL-only options are
refused in one line without ``--backend rtl``. The Verilator model is shared with tests/rtl/core
(disk cache)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hfref
import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.frontend.hf import save_checkpoint
from dfx.isa.container import write_binary

TOKENS = "5,17,200,3"
NEW = "4"
TIMEOUT_S = 4 * 3600  # a first run builds the core model (minutes to an hour on 2 busy cores)


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    d = tmp_path_factory.mktemp("rtl_run")
    ckpt = save_checkpoint(hfref.random_model(2, 32, 4, 16, 256, seed=3, scale=4.0), d / "ckpt")
    out = {}
    for cards in (1, 2):
        out[cards] = d / f"c{cards}.dfx"
        write_binary(out[cards], compile_model(str(ckpt), core="tiny", cards=cards).binary)
    return out


def dfx(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfx.host", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_rtl_options_need_the_rtl_backend(binaries, tmp_path):
    """--waves, --trace and --top belong to --backend rtl (several cards run since issue 11:
    tests/rtl/core/test_ring_run.py)."""
    for option, value in (("--waves", "w.fst"), ("--trace", "t.json"), ("--top", "board")):
        r = dfx("run", str(binaries[1]), "--tokens", TOKENS, option, value, cwd=tmp_path)
        assert r.returncode == 1 and f"{option} needs --backend rtl" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.verilator
@pytest.mark.slow
def test_rtl_run_same_output_as_functional(binaries, tmp_path):
    b = str(binaries[1])
    common = ["run", b, "--tokens", TOKENS, "--max-new-tokens", NEW]
    func = dfx(*common, "--json", "--logits", "f.npy", cwd=tmp_path)
    rtl = dfx(*common, "--json", "--logits", "r.npy", "--backend", "rtl", cwd=tmp_path)
    assert func.returncode == 0, func.stderr
    assert rtl.returncode == 0, rtl.stderr
    fj, rj = json.loads(func.stdout), json.loads(rtl.stdout)
    for key in ("prompt_ids", "generated_ids", "prompt", "text", "modelled"):
        assert rj[key] == fj[key], key
    assert rj["backend"] == "rtl"
    assert len(rj["rtl_cycles"]) == len(rj["model_cycles"]) == 1
    assert rj["rtl_cycles"][0] > 0 and rj["model_cycles"][0] > 0
    f, r = np.load(tmp_path / "f.npy"), np.load(tmp_path / "r.npy")
    assert f.dtype == r.dtype and f.view(np.uint32).tolist() == r.view(np.uint32).tolist()
    # the text form: stdout identical, progress and the summary on stderr
    func = dfx(*common, cwd=tmp_path)
    rtl = dfx(*common, "--backend", "rtl", cwd=tmp_path)
    assert rtl.returncode == 0, rtl.stderr
    assert rtl.stdout == func.stdout
    assert "RTL simulation" in rtl.stderr.splitlines()[-1]


@pytest.mark.verilator
@pytest.mark.slow
@pytest.mark.extended
def test_rtl_run_waves(binaries, tmp_path):
    """--waves: an FST of the run (a second, traced model build, cached like the first; the
    default run checks tracing on a small model: tests/rtl/toolchain/test_toolchain_model.py)."""
    r = dfx("run", str(binaries[1]), "--tokens", "5,17", "--max-new-tokens", "1",
            "--backend", "rtl", "--waves", "run.fst", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "run.fst").read_bytes()
    assert len(data) > 10_000
    assert data[0] == 0  # FST's header block (VCD would start with '$')
    assert r.stderr == ""
