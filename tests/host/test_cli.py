"""The ``dfx`` front door: --version, --help, inspect, and one-line errors for bad binaries."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dfx.host import cli
from dfx.host.commands import inspect as inspect_cmd
from dfx.isa.config import load_core
from dfx.isa.container import Binary, CardImage, Segment, read_binary, write_binary
from dfx.isa.encoding import Instruction, encode_program
from dfx.isa.errors import BinaryFormatError
from dfx.isa.spec import load_spec

SPEC = load_spec()


def make_binary(n_symbols: int = 2) -> Binary:
    prog = encode_program(
        [Instruction("li", rd=1, imm=7), Instruction("vadd", y=1, a=0, b=0, n=1)] * 3
        + [Instruction("halt")]
    )
    symbols = {f"sym{k}": {"space": "ddr", "addr": 16 * k, "bytes": 16} for k in range(n_symbols)}
    cards = [
        CardImage(
            program=prog,
            segments=[
                Segment("hbm", 0, np.arange(64, dtype=np.float16)),
                Segment("hbm", 4096, None, 8192, 0),
            ],
            debug=[(0, "layer 0 / attn.c_attn / conv1d"), (6, "end")],
            symbols=symbols,
        )
        for _ in range(2)
    ]
    return Binary(load_core("tiny"), {"name": "gpt2-test", "n_layer": 1}, cards)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    good = write_binary(d / "good.dfx", make_binary())
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    out = {"good": good, "missing": d / "missing.dfx"}

    def variant(name: str, content: bytes) -> None:
        out[name] = d / f"{name}.dfx"
        out[name].write_bytes(content)

    variant("empty", b"")
    variant("text", b"this is not a binary at all\n")
    variant("cut-header", raw[: 8 + n // 2])
    variant("cut-data", raw[:-10])
    bad = bytearray(raw)
    bad[8 + n // 2] ^= 0xFF
    variant("flip-header", bytes(bad))
    bad = bytearray(raw)
    bad[8 + n + 5] ^= 0x01  # inside card 0's program
    variant("flip-program", bytes(bad))
    b = make_binary()
    b.isa_hash = "0" * 64
    out["other-isa"] = write_binary(d / "other-isa.dfx", b)
    out["big"] = write_binary(d / "big.dfx", make_binary(n_symbols=5000))
    return out


# ---------------------------------------------------------------------------------------------
# In-process


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dfx ")
    assert f"ISA {SPEC.name} {SPEC.version}, hash {SPEC.hash[:12]}" in out


def test_help_teaches_the_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("compile", ".dfx", "run / perf", "rtl / regress", "examples:", "exit status"):
        assert word in out
    for command in ("asm", "disasm", "inspect"):
        assert f"    {command} " in out


def test_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "dfx: error: give a command" in capsys.readouterr().err


def test_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect"]) == 2
    assert "the following arguments are required: FILE" in capsys.readouterr().err


def test_inspect(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(files["good"])]) == 0
    out = capsys.readouterr().out
    assert f"isa         {SPEC.name} {SPEC.version} (hash {SPEC.hash[:12]})" in out
    assert "core        tiny: d x l = 8 x 4, 100 MHz, fp16" in out
    assert "card 1: 7 instructions (224 B), 2 debug annotations" in out
    assert "    integer      3  42.9%" in out
    assert "    hbm           2  128 B  8.0 KiB      0.2%" in out
    assert "    name     gpt2-test" in out


def test_inspect_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", "--verify", str(files["good"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_cards"] == 2 and info["isa"]["hash"] == SPEC.hash
    assert info["cards"][0]["instruction_mix"]["vector"] == 3
    assert info["cards"][0]["memory"]["hbm"]["fill_bytes"] == 8192
    assert info["model"] == {"name": "gpt2-test", "n_layer": 1}


def test_error_is_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(files["cut-data"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dfx: error: {files['cut-data']}: truncated binary")
    assert err.count("\n") == 1


def test_debug_reraises(files: dict[str, Path]) -> None:
    with pytest.raises(BinaryFormatError):
        cli.main(["inspect", str(files["missing"]), "--debug"])
    with pytest.raises(BinaryFormatError):
        cli.main(["--debug", "inspect", str(files["missing"])])


def test_interrupt(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_cmd, "read_binary", lambda *a, **k: interrupted(None))
    assert cli.main(["inspect", "x.dfx"]) == 130
    assert capsys.readouterr().err == "dfx: interrupted\n"


def test_size() -> None:
    assert [inspect_cmd.size(n) for n in (0, 1023, 1536, 3 << 30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "3.0 GiB",
    ]


# ---------------------------------------------------------------------------------------------
# Bad binaries: exit status 2, one line on stderr naming the file, never a traceback

BAD = ["missing", "empty", "text", "cut-header", "cut-data", "flip-header", "flip-program"]
BAD += ["other-isa"]


@pytest.mark.parametrize("cmd", ["inspect", "disasm"])
@pytest.mark.parametrize("name", BAD)
def test_bad_binary(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], cmd: str, name: str
) -> None:
    assert cli.main([cmd, str(files[name])]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"dfx: error: {files[name]}: ") and err.count("\n") == 1, err
    if name == "other-isa":
        assert "recompile" in err


# the same through a real process (each start costs a few hundred ms: a sample)
CASES = [("inspect", k) for k in ("empty", "cut-header", "flip-header", "other-isa")]
CASES += [("disasm", k) for k in ("missing", "cut-data", "flip-program", "other-isa")]


@pytest.fixture(scope="module")
def runs(files: dict[str, Path]) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    """All subprocess runs at once (each start costs a few hundred ms)."""
    procs = {
        (cmd, name): subprocess.Popen(
            [sys.executable, "-m", "dfx.host", cmd, str(files[name])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd, name in CASES
    }
    done = {}
    for key, p in procs.items():
        out, err = p.communicate(timeout=60)
        done[key] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return done


@pytest.mark.parametrize(("cmd", "name"), CASES, ids=[f"{c}-{n}" for c, n in CASES])
def test_bad_binary_from_the_shell(
    runs: dict[tuple[str, str], subprocess.CompletedProcess],
    files: dict[str, Path],
    cmd: str,
    name: str,
) -> None:
    r = runs[(cmd, name)]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"dfx: error: {files[name]}: ")
    assert r.stdout == ""
    if name == "other-isa":
        assert "recompile" in lines[0]


def test_installed_entry_point_and_module(files: dict[str, Path]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "dfx.host", "inspect", "--json", str(files["good"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["cards"][1]["instructions"] == 7
    exe = Path(sys.executable).parent / "dfx"
    if exe.exists():
        r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("dfx ")


def test_closed_pipe_is_quiet(files: dict[str, Path]) -> None:
    assert len(read_binary(files["big"]).cards[0].symbols) == 5000
    p = subprocess.Popen(
        [sys.executable, "-m", "dfx.host", "inspect", "--json", str(files["big"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()  # like `dfx inspect --json big.dfx | head -0`
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert err == ""
