"""Bad input, as a new user would try it, through the real command line
(``python -m dfx.host ...`` in a subprocess): each must exit non-zero with exactly one line on
stderr starting ``dfx: error:``, no traceback, and leave no output file (``-o``, ``--logits``)
and no temporary file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.frontend.hf import save_checkpoint
from dfx.compiler.frontend.presets import preset_model
from dfx.isa.container import write_binary


def dfx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "dfx.host", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good binary (gpt2-tiny, 2 cards; context 128, vocabulary 50257), broken copies of it,
    a good checkpoint and checkpoints with a bad config.json."""
    d = tmp_path_factory.mktemp("inputs")
    good = write_binary(d / "tiny.dfx", compile_model("gpt2-tiny", cards=2).binary)
    raw = good.read_bytes()
    out = {"binary": good}
    (d / "flipped.dfx").write_bytes(raw[: len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0x40])
                                    + raw[len(raw) // 2 + 1:])
    out["flipped"] = d / "flipped.dfx"
    (d / "truncated.dfx").write_bytes(raw[: len(raw) * 2 // 3])
    out["truncated"] = d / "truncated.dfx"
    (d / "text.dfx").write_text("not a dfx binary\n")
    out["text"] = d / "text.dfx"
    ckpt = save_checkpoint(preset_model("gpt2-tiny"), d / "ckpt")
    out["checkpoint"] = ckpt
    cfg = json.loads((ckpt / "config.json").read_text())
    for name, change in (("bad-type", {"n_head": "4"}), ("bad-divide", {"n_embd": 66}),
                         ("bad-activation", {"activation_function": "relu"}),
                         ("bad-json", None)):
        bad = d / name
        bad.mkdir()
        (bad / "model.safetensors").symlink_to(ckpt / "model.safetensors")
        text = "{ not json" if change is None else json.dumps({**cfg, **change})
        (bad / "config.json").write_text(text)
        out[name] = bad
    return out


@dataclass
class Case:
    args: list[str]  # {binary}, {checkpoint}, ... are replaced by input paths
    message: str  # a substring of the error line
    outputs: list[str] = field(default_factory=list)  # files that must not exist afterwards
    xfail: str | None = None


LONG_PROMPT = ",".join(["464"] * 129)
CASES = {
    # dfx compile
    "compile-missing-dir": Case(["compile", "./no-such-model/", "-o", "out.dfx", "--cards", "4"],
                                "checkpoint directory './no-such-model/' does not exist",
                                ["out.dfx"]),
    "compile-file-not-dir": Case(["compile", "{checkpoint}/model.safetensors", "-o", "out.dfx"],
                                 "is a file; expected a Hugging Face checkpoint directory",
                                 ["out.dfx"]),
    "compile-hub-id": Case(["compile", "openai-community/gpt2", "-o", "out.dfx"],
                           "dfx never downloads", ["out.dfx"]),
    "compile-config-type": Case(["compile", "{bad-type}", "-o", "out.dfx"],
                                "field 'n_head' must be a positive integer, got \"4\" (string)",
                                ["out.dfx"]),
    "compile-config-divide": Case(["compile", "{bad-divide}", "-o", "out.dfx"],
                                  "n_embd 66 is not divisible by n_head 4", ["out.dfx"]),
    "compile-config-activation": Case(["compile", "{bad-activation}", "-o", "out.dfx"],
                                      'activation_function "relu" is not supported',
                                      ["out.dfx"]),
    "compile-config-json": Case(["compile", "{bad-json}", "-o", "out.dfx"],
                                "config.json: invalid JSON at line 1", ["out.dfx"]),
    "compile-cards-5-quiet": Case(["compile", "gpt2-tiny", "-o", "out.dfx", "--cards", "5",
                                   "-q"], "card counts that work: 1 to 4", ["out.dfx"]),
    "compile-cards-64-quiet": Case(["compile", "{checkpoint}", "-o", "out.dfx", "--cards",
                                    "64", "-q"],
                                   "4 attention heads cannot be split over 64 cards",
                                   ["out.dfx"]),
    "compile-cards-5": Case(
        ["compile", "gpt2-tiny", "-o", "out.dfx", "--cards", "5"],
        "card counts that work: 1 to 4", ["out.dfx"]),
    "compile-cards-64": Case(
        ["compile", "{checkpoint}", "-o", "out.dfx", "--cards", "64"],
        "card counts that work: 1 to 4", ["out.dfx"]),
    "compile-out-dir-missing-verbose": Case(
        ["compile", "gpt2-tiny", "-o", "no/such/dir/out.dfx"], "does not exist",
        ["no/such/dir/out.dfx"]),
    "compile-cards-0": Case(["compile", "gpt2-tiny", "-o", "out.dfx", "--cards", "0", "-q"],
                            "--cards must be at least 1", ["out.dfx"]),
    "compile-out-dir-missing": Case(["compile", "gpt2-tiny", "-o", "no/such/dir/out.dfx", "-q"],
                                    "does not exist", ["no/such/dir/out.dfx"]),
    # dfx run
    "run-prompt-too-long": Case(["run", "{binary}", "--tokens", LONG_PROMPT,
                                 "--max-new-tokens", "1", "--logits", "l.npy"],
                                "exceeds the model's context of 128 tokens", ["l.npy"]),
    "run-text-too-long": Case(["run", "{binary}", "--prompt", "hello " * 200,
                               "--logits", "l.npy"],
                              "exceeds the model's context of 128 tokens", ["l.npy"]),
    "run-generate-past-context": Case(["run", "{binary}", "--tokens", "1,2,3",
                                       "--max-new-tokens", "126", "--logits", "l.npy"],
                                      "3 tokens + 126 new tokens exceeds", ["l.npy"]),
    "run-corrupted-binary": Case(["run", "{flipped}", "--tokens", "1,2", "--logits", "l.npy"],
                                 "flipped.dfx: corrupted binary", ["l.npy"]),
    "run-truncated-binary": Case(["run", "{truncated}", "--tokens", "1,2", "--logits", "l.npy"],
                                 "truncated.dfx: truncated binary", ["l.npy"]),
    "run-not-a-binary": Case(["run", "{text}", "--tokens", "1,2", "--logits", "l.npy"],
                             "text.dfx: not a dfx binary", ["l.npy"]),
    "run-missing-binary": Case(["run", "nothing.dfx", "--tokens", "1,2", "--logits", "l.npy"],
                               "nothing.dfx: no such file", ["l.npy"]),
    "run-zero-new-tokens": Case(["run", "{binary}", "--tokens", "1,2", "--max-new-tokens", "0",
                                 "--logits", "l.npy"],
                                "--max-new-tokens must be at least 1, got 0", ["l.npy"]),
    "run-negative-new-tokens": Case(["run", "{binary}", "--tokens", "1,2", "--max-new-tokens=-5",
                                     "--logits", "l.npy"],
                                    "--max-new-tokens must be at least 1, got -5", ["l.npy"]),
    "run-token-too-big": Case(["run", "{binary}", "--tokens", "15496,50257", "--logits",
                               "l.npy"],
                              "token id 50257 is outside the model's vocabulary 0..50256",
                              ["l.npy"]),
    "run-token-negative": Case(["run", "{binary}", "--tokens=5,-3", "--logits", "l.npy"],
                               "token id -3 is outside", ["l.npy"]),
    "run-token-not-a-number": Case(["run", "{binary}", "--tokens", "1,two,3", "--logits",
                                    "l.npy"], "--tokens must be comma-separated integers",
                                   ["l.npy"]),
    "run-logits-dir-missing": Case(["run", "{binary}", "--tokens", "1,2", "--logits",
                                    "nowhere/l.npy"], "does not exist", ["nowhere/l.npy"]),
    "run-empty-prompt": Case(["run", "{binary}", "--prompt", "", "--logits", "l.npy"],
                             "the prompt is empty", ["l.npy"]),
}


def params():
    for name, case in CASES.items():
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        yield pytest.param(name, case, marks=marks, id=name)


@pytest.mark.parametrize("name,case", params())
def test_bad_input_fails_cleanly(name: str, case: Case, inputs: dict[str, Path],
                                 tmp_path: Path) -> None:
    args = [a.format(**{k: str(v) for k, v in inputs.items()}) for a in case.args]
    watched = {tmp_path, inputs["binary"].parent}
    before = {d: set(d.iterdir()) for d in watched}
    proc = dfx(*args, cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dfx: error: "), proc.stderr
    assert case.message in lines[0]
    for out in case.outputs:
        assert not (tmp_path / out).exists(), f"{out} was left behind"
    for d in watched:
        new = set(d.iterdir()) - before[d]
        assert not new, f"left behind in {d}: {sorted(p.name for p in new)}"


def test_good_input_still_works(inputs: dict[str, Path], tmp_path: Path) -> None:
    """The same commands with good arguments succeed (the cases above fail for their reason)."""
    proc = dfx("run", str(inputs["binary"]), "--tokens", "15496,995", "--max-new-tokens", "2",
               "--logits", "l.npy", "--json", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["prompt_ids"] == [15496, 995]
    assert (tmp_path / "l.npy").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.npy"]
