"""Issue 14: whole classes of bad input and hostile file systems, each produced from fresh
situations through the real command line (``python -m dfx.host`` in a subprocess).

Every failing case must: exit with the status of the README's table (1 bad input, 2 bad binary
or usage), print exactly one ``dfx: error:`` line on stderr naming what and where, print no
traceback and no ``internal error``, leave every file it should not touch as it was (no new
file, no temporary file, nothing changed), and finish in bounded time, under an address-space
limit (RLIMIT_AS) where the class is about memory.

Classes (the issue's numbering): 1 normal flows, 2 output errors, 3 parsers, 4 numbers,
5 resource bombs, 6 writing over things, 7 smaller ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.frontend.hf import save_checkpoint
from dfx.compiler.frontend.presets import preset_model
from dfx.isa.asm import assemble
from dfx.isa.config import boards_dir, load_core
from dfx.isa.container import Binary, CardImage, Segment, read_binary, write_binary
from dfx.isa.encoding import encode_program

GiB = 1 << 30
PROG = "".join(f"    li rd=r{1 + k % 8}, imm={k}\n" for k in range(100)) + "    halt\n"


# ---------------------------------------------------------------------------------------------
# Running dfx and checking what it left


def dfx(*args: str, cwd: Path, timeout: float = 180, fsize: int | None = None,
        address_space: int | None = None) -> subprocess.CompletedProcess[str]:
    def limits() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dfx.host", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limits)
    proc.elapsed = time.perf_counter() - t0  # type: ignore[attr-defined]
    return proc


def snapshot(*dirs: Path) -> dict[str, tuple]:
    """Every entry under ``dirs``: kind, size, mtime, mode (and the target of links)."""
    out: dict[str, tuple] = {}
    for d in dirs:
        for root, subdirs, files in os.walk(d):
            for name in subdirs + files:
                p = Path(root) / name
                st = os.lstat(p)
                extra = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                out[str(p)] = (stat.S_IFMT(st.st_mode), size, st.st_mtime_ns,
                               stat.S_IMODE(st.st_mode), extra)
    return out


def assert_fails(proc: subprocess.CompletedProcess[str] | Ran, status: int, match: str) -> str:
    """One ``dfx: error:`` line containing ``match`` (a substring), the exit status, no
    traceback; returns the line."""
    err = proc.stderr
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err
    assert "internal error" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dfx: error: "), err
    assert match in lines[0], f"{match!r} not in {lines[0]!r}"
    assert proc.returncode == status, f"exit {proc.returncode}, expected {status}: {err}"
    return lines[0]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float


Runner = Callable[[list[str], Path], Ran]


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``dfx.host.cli.main`` in this process (the cases that need no process limit): the same
    exit status and stderr as the command line, without a Python start-up per case."""
    from dfx.host import cli as cli_module

    def run(args: list[str], cwd: Path) -> Ran:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        t0 = time.perf_counter()
        code = cli_module.main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err, time.perf_counter() - t0)

    return run


def check(args: list[str], status: int, match: str, world: World, cwd: Path, *,
          timeout: float = 120, run: Runner | None = None, **limits: int) -> str:
    """Run a failing case (in a subprocess, or with ``run``); nothing under cwd or the inputs
    may change."""
    before = snapshot(cwd, world.dir)
    if run is not None:
        assert not limits
        proc = run(args, cwd)
    else:
        proc = dfx(*args, cwd=cwd, timeout=timeout, **limits)
    line = assert_fails(proc, status, match)
    after = snapshot(cwd, world.dir)
    assert after == before, {k: (before.get(k), after.get(k))
                             for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert proc.elapsed < timeout  # type: ignore[attr-defined]
    return line


# ---------------------------------------------------------------------------------------------
# A fresh world of inputs


@dataclass
class World:
    dir: Path
    paths: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return str(self.paths[key])

    def fmt(self, args: list[str]) -> list[str]:
        return [a.format(**{k: str(v) for k, v in self.paths.items()}) for a in args]


def forge(src: Path, dst: Path, edit: Callable[[str], str]) -> Path:
    """A copy of a binary whose dfx document text is ``edit(text)``, with a valid checksum."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    text = edit(header["__metadata__"]["dfx"])
    header["__metadata__"] = {"dfx": text,
                              "dfx.sha256": hashlib.sha256(text.encode()).hexdigest()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    dst.write_bytes(struct.pack("<Q", len(head)) + head + raw[8 + n:])
    return dst


def edit_doc(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        doc = json.loads(text)
        change(doc)
        return json.dumps(doc)

    return edit


def program_binary(path: Path, source: str, core: str = "dfx-u280",
                   segments: list[Segment] | None = None, cards: int = 1) -> Path:
    prog = encode_program(assemble(source))
    b = Binary(load_core(core), {"kind": "assembly", "source": "test"},
               [CardImage(program=prog, segments=list(segments or [])) for _ in range(cards)])
    return write_binary(path, b)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    d = tmp_path_factory.mktemp("world")
    w = World(d)
    p = w.paths
    p["tiny"] = write_binary(d / "tiny.dfx", compile_model("gpt2-tiny", cards=2).binary)
    p["prog_s"] = d / "prog.s"
    p["prog_s"].write_text(PROG)
    p["prog"] = program_binary(d / "prog.dfx", PROG)
    p["ckpt"] = save_checkpoint(preset_model("gpt2-tiny"), d / "ckpt", tokenizer=True)
    text = (boards_dir() / "cores" / "tiny.yaml").read_text()
    p["core_yaml"] = d / "core.yaml"
    p["core_yaml"].write_text(text.replace("board: tiny", f"board: {boards_dir() / 'tiny.yaml'}"))
    return w


@pytest.fixture()
def cwd(tmp_path: Path) -> Path:
    """An empty working directory with a few things to trip over."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("a regular file\n")
    os.mkfifo(tmp_path / "afifo")
    (tmp_path / "alink").symlink_to(tmp_path / "afifo")
    return tmp_path


# ---------------------------------------------------------------------------------------------
# 1. Normal flows end in a result or one line, never a traceback


def test_assembled_programs_run_and_print_their_final_state(world: World, cwd: Path) -> None:
    sources = {
        "plain": "li rd=r3, imm=42\nhalt\n",
        "loop": "li rd=r1, imm=0\nloop count=7\naddi rd=r1, rs1=r1, imm=3\nendloop\nhalt\n",
        "branch": "li rd=r2, imm=5\ntop: addi rd=r2, rs1=r2, imm=-1\nbne rs1=r2, rs2=r0, "
                  "target=top\nli rd=r4, imm=9\nhalt\n",
    }
    expect = {"plain": {"r3": 42}, "loop": {"r1": 21}, "branch": {"r4": 9}}
    for name, src in sources.items():
        (cwd / f"{name}.s").write_text(src)
        r = dfx("asm", f"{name}.s", "-o", f"{name}.dfx", cwd=cwd)
        assert r.returncode == 0, r.stderr
        r = dfx("run", f"{name}.dfx", "--json", cwd=cwd)
        assert r.returncode == 0, r.stderr
        card = json.loads(r.stdout)["cards"][0]
        assert card["halted"] and card["registers"] == expect[name]
        r = dfx("run", f"{name}.dfx", cwd=cwd)
        assert r.returncode == 0 and r.stdout.startswith("card 0: halted at pc"), r.stderr
        for cmd in (["inspect", f"{name}.dfx"], ["disasm", f"{name}.dfx"]):
            r = dfx(*cmd, cwd=cwd)
            assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.parametrize("args, match", [
    (["run", "{prog}", "--tokens", "1"], "holds a program without a model"),
    (["run", "{prog}", "--prompt", "Hello"], "--prompt does not apply"),
    (["run", "{prog}", "--logits", "l.npy"], "--logits does not apply"),
    (["perf", "{prog}", "--prompt-len", "1", "--gen-len", "1"], "holds a program without a"),
    (["run", "{tiny}"], "a compiled model: give --prompt TEXT or --tokens IDS"),
])
def test_model_and_program_requests_that_do_not_match(world: World, cwd: Path, cli: Runner,
                                                     args: list[str], match: str) -> None:
    check(world.fmt(args), 1, match, world, cwd, run=cli)


# ---------------------------------------------------------------------------------------------
# 2. Output errors are errors: every command that writes, every place it cannot write

WRITERS = {
    "asm": ["asm", "{prog_s}", "-o", "OUT"],
    "asm-raw": ["asm", "{prog_s}", "--raw", "-o", "OUT"],
    "disasm": ["disasm", "{prog}", "-o", "OUT"],
    "compile": ["compile", "gpt2-tiny", "-o", "OUT", "-q"],
    "run": ["run", "{tiny}", "--tokens", "1,2", "--max-new-tokens", "1", "--logits", "OUT",
            "-q"],
    "perf": ["perf", "{tiny}", "--prompt-len", "1", "--gen-len", "1", "--trace", "OUT"],
    "rtl": ["rtl", "--core", "tiny", "--unit", "fp16_mul", "--out", "OUT", "-q"],
}
PLACES = {  # OUT, expected message; "{cwd}" is the working directory
    "directory": ("adir", "is a directory"),
    "under-a-file": ("afile/out.x", "afile is not a directory"),
    "deep-under-a-file": ("afile/a/b/out.x", "afile is not a directory"),
    "proc": ("/proc/dfx-no-such-dir/out.x", "/proc/dfx-no-such-dir"),
    "missing-parent": ("nope/out.x", "does not exist"),
    "empty": ("", "''"),
    "fifo": ("afifo", "is a FIFO"),
    "link-to-fifo": ("alink", "is a FIFO"),
}


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("writer", list(WRITERS))
def test_outputs_that_cannot_be_written(world: World, cwd: Path, cli: Runner, writer: str,
                                        place: str) -> None:
    out, match = PLACES[place]
    if writer == "rtl" and place == "directory":  # a directory is what rtl wants
        out, match = "afile", "is a regular file, not a directory"
    if writer == "rtl" and place == "missing-parent":  # rtl creates missing parents
        pytest.skip("dfx rtl --out creates the directory and its parents")
    args = [out if a == "OUT" else a for a in world.fmt(WRITERS[writer])]
    line = check(args, 1, match, world, cwd, run=cli)
    option = args[args.index(out) - 1]
    assert option in line  # names the option and the path


@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_disk_leaves_nothing(world: World, cwd: Path, writer: str) -> None:
    """A file-size limit makes every write fail (EFBIG) once the output is large enough."""
    args = [("out" if a == "OUT" else a) for a in world.fmt(WRITERS[writer])]
    # dfx rtl: Yosys (WebAssembly) hits the limit with its own cache files first
    match = "File too large" if writer == "rtl" else "cannot write"
    check(args, 1, match, world, cwd, fsize=1024, timeout=300)


# ---------------------------------------------------------------------------------------------
# 3. Parsers refuse, with the file and the field

DEEP = 100_000


def _deep_model(text: str) -> str:
    return text.replace('"model":{', '"model":{"deep":' + "[" * DEEP + "]" * DEEP + ",", 1)


BINARY_EDITS: dict[str, tuple[Callable[[str], str], str]] = {
    "deep-json": (_deep_model, "nested deeper than"),
    "nan": (lambda t: t.replace('"model":{', '"model":{"x":NaN,', 1), "NaN is not a JSON"),
    "duplicate-key": (lambda t: t.replace('"model":{', '"model":{"n_ctx":1,', 1), "duplicate"),
    "n_ctx-string": (edit_doc(lambda d: d["model"].update(n_ctx="128")), "'n_ctx'"),
    "vocab-zero": (edit_doc(lambda d: d["model"].update(vocab_size=0)), "'vocab_size'"),
    "n_ctx-missing": (edit_doc(lambda d: d["model"].pop("n_ctx")), "no model field 'n_ctx'"),
    "tokenizer-list": (edit_doc(lambda d: d["model"].update(tokenizer=[])), "'tokenizer'"),
    "tokenizer-dir-int": (edit_doc(lambda d: d["model"]["tokenizer"].update(dir=5)),
                          "'tokenizer'"),
    "weights-string": (edit_doc(lambda d: d["model"].update(weights="no")), "'weights'"),
    "quant-string": (edit_doc(lambda d: d["model"].update(quant="bcq")), "'quant'"),
    "weight-bytes": (edit_doc(lambda d: d["model"].update(weight_bytes=[1])), "'weight_bytes'"),
    "model-list": (edit_doc(lambda d: d.update(model=[1])), "'model' is missing or invalid"),
    "capacity-string": (edit_doc(lambda d: d["cards"][1]["symbols"]["tokens"].update(
        capacity="x")), "symbol 'tokens': field 'capacity'"),
    "cfg-fields": (edit_doc(lambda d: d["cards"][0]["symbols"]["cfg"].update(fields=[1, 2])),
                   "symbol 'cfg': field 'fields'"),
    "row-negative": (edit_doc(lambda d: d["cards"][0]["symbols"]["logits"].update(
        row_elements=-3)), "field 'row_elements'"),
    "symbol-addr": (edit_doc(lambda d: d["cards"][0]["symbols"]["cfg"].update(addr="0")),
                    "symbol 'cfg'"),
    "debug-text": (edit_doc(lambda d: d["cards"][0]["debug"].__setitem__(0, [0, 5])),
                   "debug entry 0"),
    "clock-huge": (edit_doc(lambda d: d["core"].update(clock_mhz=1e308)),
                   "clock_mhz: must be in 1..10000"),
    "clock-tiny": (edit_doc(lambda d: d["core"].update(clock_mhz=1e-300)),
                   "clock_mhz: must be in 1..10000"),
    "mpu-d-huge": (edit_doc(lambda d: d["core"]["mpu"].update(d=1 << 40)),
                   "mpu.d: must be in 2..1024"),
    "hbm-huge": (edit_doc(lambda d: d["board"]["hbm"].update(pc_capacity_bytes=1 << 60)),
                 "hbm.pc_capacity_bytes: must be in"),
    "vrf-huge": (edit_doc(lambda d: d["core"]["buffers"].update(vrf_vectors=1 << 30)),
                 "buffers.vrf_vectors: must be in"),
    "latency-zero": (edit_doc(lambda d: d["core"]["vpu"].update(add_latency=0)),
                     "vpu.add_latency"),
}
READERS = {
    "run": ["run", "BIN", "--tokens", "1,2", "--max-new-tokens", "1"],
    "perf": ["perf", "BIN", "--prompt-len", "1", "--gen-len", "1"],
    "inspect": ["inspect", "BIN", "--json"],
    "disasm": ["disasm", "BIN"],
}


@pytest.fixture(scope="module")
def forged(world: World) -> dict[str, Path]:
    d = world.dir / "forged"
    d.mkdir()
    return {name: forge(world.paths["tiny"], d / f"{name}.dfx", edit)
            for name, (edit, _) in BINARY_EDITS.items()}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("edit", list(BINARY_EDITS))
def test_checksum_valid_binaries_with_odd_fields(world: World, forged: dict[str, Path],
                                                 cwd: Path, cli: Runner, edit: str,
                                                 reader: str) -> None:
    match = BINARY_EDITS[edit][1]
    if edit == "n_ctx-missing" and reader in ("inspect", "disasm"):
        pytest.skip("a model without n_ctx is only refused by commands that generate")
    args = [str(forged[edit]) if a == "BIN" else a for a in READERS[reader]]
    line = check(args, 2, match, world, cwd, run=cli)
    assert forged[edit].name in line


SAMPLES = [  # one case of each in-process matrix, through a real process
    (["inspect", "{forged_dir}/deep-json.dfx"], 2, "nested deeper than"),
    (["run", "{forged_dir}/n_ctx-string.dfx", "--tokens", "1"], 2, "'n_ctx'"),
    (["perf", "{forged_dir}/mpu-d-huge.dfx", "--prompt-len", "1", "--gen-len", "1"], 2,
     "mpu.d: must be in 2..1024"),
    (["disasm", "{prog}", "-o", "afifo"], 1, "is a FIFO"),
    (["run", "{tiny}", "--tokens", "1", "--logits", "afile/l.npy"], 1, "afile is not a"),
    (["asm", "{prog_s}", "-o", "{prog_s}"], 1, "is an input of this command"),
    (["run", "{tiny}", "--tokens", "1", "--max-memory", "-5"], 2, "expected a size"),
]


@pytest.mark.parametrize("args, status, match", SAMPLES)
def test_samples_through_the_real_command_line(world: World, forged: dict[str, Path],
                                               cwd: Path, args: list[str], status: int,
                                               match: str) -> None:
    args = [a.replace("{forged_dir}", str(forged["nan"].parent)) for a in args]
    check(world.fmt(args), status, match, world, cwd, address_space=2 * GiB)


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _config(world: World, **change: object) -> str:
    cfg = json.loads((world.paths["ckpt"] / "config.json").read_text())
    return json.dumps({**cfg, **change})


CHECKPOINTS: dict[str, tuple[Callable[[World], dict[str, str | bytes]], str]] = {
    "config-deep": (lambda w: {"config.json": '{"a":' * DEEP + "1" + "}" * DEEP},
                    "config.json: nested deeper than"),
    "config-nan": (lambda w: {"config.json": _config(w).replace('"n_layer": 2',
                                                                '"n_layer": NaN')},
                   "NaN is not a JSON number"),
    "config-latin1": (lambda w: {"config.json": b'{"n_layer": 2, "name": "caf\xe9"}'},
                      "config.json: not UTF-8 text"),
    "config-list": (lambda w: {"config.json": "[1, 2]"}, "expected a JSON object"),
    "config-huge-int": (lambda w: {"config.json": _config(w).replace('"n_layer": 2',
                                                                     '"n_layer": ' + "9" * 5000)},
                        "too many digits"),
    "n_layer-1e9": (lambda w: {"config.json": _config(w, n_layer=10**9)},
                    "n_layer must be in 1..65536"),
    "n_embd-huge": (lambda w: {"config.json": _config(w, n_embd=1 << 20, n_head=4)},
                    "n_embd must be in 1..65536"),
    "n_ctx-huge": (lambda w: {"config.json": _config(w, n_positions=10**9, n_ctx=10**9)},
                   "n_ctx must be in 1..65536"),
    "vocab-huge": (lambda w: {"config.json": _config(w, vocab_size=1 << 30)},
                   "vocab_size must be in 1..16777216"),
    "n_head-string": (lambda w: {"config.json": _config(w, n_head="4")},
                      "field 'n_head' must be a positive integer"),
    "index-deep": (lambda w: {"model.safetensors.index.json": "[" * DEEP + "]" * DEEP,
                              "model.safetensors": None},
                   "nested deeper than"),
}


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_checkpoints_that_cannot_be_read(world: World, cwd: Path, cli: Runner,
                                         case: str) -> None:
    files, match = CHECKPOINTS[case]
    content = files(world)
    d = world.dir / "ckpts" / case
    d.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        if f not in content:
            (d / f).symlink_to(world.paths["ckpt"] / f)
    for f, text in content.items():
        if text is not None:
            _write(d / f, text)
    check(["compile", str(d), "-o", "out.dfx", "-q"], 1, match, world, cwd, run=cli)


def _core_yaml(world: World, old: str, new: str) -> str:
    text = world.paths["core_yaml"].read_text()
    assert old in text
    return text.replace(old, new, 1)


CORES: dict[str, tuple[Callable[[World], str | bytes], str]] = {
    "deep": (lambda w: "name: x\nsources: " + "[" * DEEP + "]" * DEEP + "\n",
             "nested deeper than"),
    "deep-block": (lambda w: "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 300)),
                   "nested deeper than"),
    "latin1": (lambda w: _core_yaml(w, "description: ", "description: caf\xe9 ").encode(
        "latin-1"), "not UTF-8 text"),
    "clock-inf": (lambda w: _core_yaml(w, "clock_mhz: 100", "clock_mhz: .inf"),
                  "clock_mhz: must be a finite number in 1..10000"),
    "clock-tiny": (lambda w: _core_yaml(w, "clock_mhz: 100", "clock_mhz: 1.0e-300"),
                   "clock_mhz: must be in 1..10000"),
    "clock-string": (lambda w: _core_yaml(w, "clock_mhz: 100", "clock_mhz: 1e-3"),
                     "YAML reads an exponent only after a dot"),
    "d-huge": (lambda w: _core_yaml(w, "  d: 8", f"  d: {1 << 40}"), "mpu.d: must be in 2..1024"),
    "vrf-huge": (lambda w: _core_yaml(w, "vrf_vectors: ", "vrf_vectors: 1000000000 #"),
                 "buffers.vrf_vectors: must be in 1..65536"),
    "loop-depth": (lambda w: _core_yaml(w, "loop_depth: ", "loop_depth: 100000 #"),
                   "control.loop_depth: must be in 1..64"),
    "key-int": (lambda w: _core_yaml(w, "name: tiny", "1: tiny"), "key 1 is not a string"),
    "python-tag": (lambda w: "name: !!python/object/apply:os.system ['true']\n",
                   "not valid YAML"),
}
CORE_USERS = {
    "asm": ["asm", "{prog_s}", "-o", "out.dfx", "--core", "CORE"],
    "compile": ["compile", "gpt2-tiny", "-o", "out.dfx", "-q", "--core", "CORE"],
    "rtl": ["rtl", "--core", "CORE", "--unit", "fp16_mul", "--out", "rtl", "-q"],
}


@pytest.mark.parametrize("user", list(CORE_USERS))
@pytest.mark.parametrize("case", list(CORES))
def test_core_configurations_that_cannot_be_used(world: World, cwd: Path, cli: Runner,
                                                 case: str, user: str) -> None:
    make, match = CORES[case]
    core = world.dir / "cores" / f"{case}.yaml"
    if not core.exists():
        _write(core, make(world))
    args = [str(core) if a == "CORE" else a for a in world.fmt(CORE_USERS[user])]
    line = check(args, 1, match, world, cwd, run=cli)
    assert f"{case}.yaml" in line


def test_tokenizer_files_that_cannot_be_read(world: World, cwd: Path, cli: Runner) -> None:
    deep = _write(world.dir / "tok-deep" / "vocab.json", "[" * DEEP + "]" * DEEP)
    (deep.parent / "merges.txt").write_text("#version: 0.2\n")
    base = ["run", world["tiny"], "--prompt", "Hi", "--max-new-tokens", "1", "--tokenizer"]
    check(base + [str(deep.parent)], 1, "vocab.json: nested deeper than", world, cwd, run=cli)
    check(base + [str(world.dir / "nowhere")], 1, "--tokenizer directory", world, cwd, run=cli)
    check(base + [world["prog_s"]], 1, "--tokenizer directory", world, cwd, run=cli)


# ---------------------------------------------------------------------------------------------
# 5. Resource bombs: bounded memory and time, one line naming card, pc and instruction


def test_fill_segments_over_all_memory_cost_nothing(world: World, cwd: Path) -> None:
    core = load_core("dfx-u280")
    segs = [Segment("hbm", 0, None, core.b.hbm.capacity_bytes, 0),
            Segment("ddr", 0, None, core.b.ddr.capacity_bytes, 0xAB)]
    b = program_binary(cwd / "fill.dfx", "lw rd=r1, mem=ddr[r0+0x40000000]\nhalt\n",
                       segments=segs, cards=2)
    assert b.stat().st_size < 64 << 10
    r = dfx("run", "fill.dfx", "--json", cwd=cwd, timeout=120, address_space=1 * GiB)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cards"][1]["registers"] == {"r1": 0xABABABAB}


@pytest.mark.parametrize("space, stride", [("hbm", 1 << 20), ("ddr", 1 << 24), ("hbm", 4096)])
def test_sparse_writes_reach_the_memory_limit(world: World, cwd: Path, space: str,
                                              stride: int) -> None:
    core = load_core("dfx-u280")
    cap = getattr(core.b, space).capacity_bytes
    src = (f"li rd=r2, imm={stride}\nloop count={cap // stride - 1}\n"
           f"sw rs1=r2, mem={space}[r1+0]\nadd rd=r1, rs1=r1, rs2=r2\nendloop\nhalt\n")
    program_binary(cwd / "sparse.dfx", src,
                   segments=[Segment(space, 0, None, cap, 0)])
    before = snapshot(cwd)
    r = dfx("run", "sparse.dfx", "--max-memory", "64M", cwd=cwd, timeout=120,
            address_space=1 * GiB)
    line = assert_fails(r, 1, "memory limit of 64.0 MiB")
    assert "card 0, pc 2" in line and "sw rs1=r2" in line and "--max-memory" in line
    assert snapshot(cwd) == before


def test_many_small_segments_reach_the_memory_limit(world: World, cwd: Path) -> None:
    segs = [Segment("ddr", k << 22, bytes([k % 256])) for k in range(200)]
    program_binary(cwd / "segs.dfx", "halt\n", segments=segs)
    r = dfx("run", "segs.dfx", "--max-memory", "32M", cwd=cwd, timeout=120,
            address_space=1 * GiB)
    line = assert_fails(r, 1, "memory limit")
    assert line.startswith("dfx: error: card 0: DDR segment")


LOOPS = {
    "jmp": "top: jmp target=top\nhalt\n",
    "branch": "top: addi rd=r1, rs1=r1, imm=1\nbne rs1=r1, rs2=r0, target=top\nhalt\n",
    "hw-loop": "loop count=0xffffff\nloop count=0xffffff\nnop\nendloop\nendloop\nhalt\n",
    "nested": "loop count=1000\nloop count=1000\nloop count=1000\nli rd=r1, imm=1\n"
              "endloop\nendloop\nendloop\nhalt\n",
}


@pytest.mark.parametrize("loop", list(LOOPS))
def test_programs_that_never_halt_stop_at_the_budget(world: World, cwd: Path, loop: str) -> None:
    program_binary(cwd / "spin.dfx", LOOPS[loop])
    r = dfx("run", "spin.dfx", "--max-instructions", "200k", cwd=cwd, timeout=60)
    line = assert_fails(r, 1, "instruction budget of 200,000 instructions used up")
    assert "card 0, pc " in line and "--max-instructions" in line


def test_default_budget_of_a_program_ends_in_bounded_time(world: World, cwd: Path) -> None:
    program_binary(cwd / "spin.dfx", LOOPS["jmp"])
    r = dfx("run", "spin.dfx", cwd=cwd, timeout=120)
    line = assert_fails(r, 1, "instruction budget of 10,000,000 instructions used up")
    assert "card 0, pc 0 (" not in line or "jmp" in line
    assert r.elapsed < 90  # type: ignore[attr-defined]


@pytest.mark.parametrize("loop", ["jmp", "hw-loop"])
@pytest.mark.parametrize("command", ["run", "perf"])
def test_compiled_binaries_with_hostile_programs(world: World, cwd: Path, loop: str,
                                                 command: str) -> None:
    """Checksum-valid model binaries whose programs never halt: the derived default budget
    stops both simulators within seconds."""
    words = encode_program(assemble(LOOPS[loop]))
    b = read_binary(world.paths["tiny"])
    for card in b.cards:
        card.program = words
        card.debug = []
    path = write_binary(cwd / "hostile.dfx", b)
    args = (["run", str(path), "--tokens", "1,2", "--max-new-tokens", "1"] if command == "run"
            else ["perf", str(path), "--prompt-len", "1", "--gen-len", "1"])
    r = dfx(*args, cwd=cwd, timeout=120)
    line = assert_fails(r, 1, "instruction budget of")
    assert "card 0, pc " in line and "card 1, pc " in line
    assert r.elapsed < 90  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# 6. Writing over things


@pytest.mark.parametrize("args, match", [
    (["asm", "{prog_s}", "-o", "{prog_s}"], "is an input of this command"),
    (["asm", "{prog_s}", "-o", "{core_yaml}", "--core", "{core_yaml}"], "is an input"),
    (["disasm", "{prog}", "-o", "{prog}"], "is an input of this command"),
    (["compile", "{ckpt}", "-o", "{ckpt}/model.safetensors", "-q"], "is an input"),
    (["compile", "{ckpt}", "-o", "{ckpt}/config.json", "-q"], "is an input"),
    (["compile", "{ckpt}", "-o", "{ckpt}/vocab.json", "-q"], "is an input"),
    (["run", "{tiny}", "--tokens", "1", "--max-new-tokens", "1", "--logits", "{tiny}"],
     "is an input"),
    (["perf", "{tiny}", "--prompt-len", "1", "--gen-len", "1", "--trace", "{tiny}"],
     "is an input"),
])
def test_outputs_that_are_inputs(world: World, cwd: Path, cli: Runner, args: list[str],
                                 match: str) -> None:
    check(world.fmt(args), 1, match, world, cwd, run=cli)


def test_outputs_that_are_inputs_under_other_names(world: World, cwd: Path,
                                                   cli: Runner) -> None:
    os.link(world.paths["prog_s"], cwd / "hard.s")
    (cwd / "soft.dfx").symlink_to(world.paths["prog"])
    check(["asm", world["prog_s"], "-o", "hard.s"], 1, "is an input", world, cwd, run=cli)
    check(["disasm", world["prog"], "-o", "soft.dfx"], 1, "is an input", world, cwd, run=cli)


def test_planted_links_at_temporary_names_are_not_followed(world: World, cwd: Path) -> None:
    victim = cwd / "victim.txt"
    victim.write_text("precious\n")
    for name in (".t.json.tmp", f".t.json.{os.getpid()}.tmp"):
        (cwd / name).symlink_to(victim)
    r = dfx("perf", world["tiny"], "--prompt-len", "1", "--gen-len", "1", "--trace", "t.json",
            cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious\n"
    assert json.loads((cwd / "t.json").read_text())["traceEvents"]


def _temporaries(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_sigterm_while_writing_removes_the_temporary_file(world: World, cwd: Path) -> None:
    """A slow disk (fsync sleeps): SIGTERM arrives while the temporary file exists."""
    script = (
        "import os, sys, time\n"
        "real = os.fsync\n"
        "def slow(fd):\n"
        "    time.sleep(60)\n"
        "    real(fd)\n"
        "os.fsync = slow\n"
        "from dfx.host.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, "compile", "gpt2-tiny", "-o",
                             "out.dfx", "-q"], cwd=cwd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(n.startswith(".out.dfx.") for n in _temporaries(cwd)):
        assert proc.poll() is None and time.monotonic() < deadline, "no temporary file seen"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["dfx: terminated by SIGTERM"]
    assert _temporaries(cwd) == [] and not (cwd / "out.dfx").exists()


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5])
def test_sigterm_at_any_moment_of_a_compile(world: World, cwd: Path, delay: float) -> None:
    before = snapshot(cwd)
    proc = subprocess.Popen([sys.executable, "-m", "dfx.host", "compile", "gpt2-mini", "-o",
                             "out.dfx", "-q"], cwd=cwd, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert "Traceback" not in err
    if proc.returncode == 0:  # it finished first: then the output is complete
        assert (cwd / "out.dfx").is_file()
        return
    assert proc.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), err
    after = snapshot(cwd)
    if after != before:
        # the signal came after the output was committed (atomic rename) and before the
        # process ended: the only change is then the whole, readable binary
        from dfx.isa.container import read_binary

        assert {k: v for k, v in after.items() if not k.endswith("/out.dfx")} == before
        assert read_binary(cwd / "out.dfx").cards


# ---------------------------------------------------------------------------------------------
# 7. Smaller ones


@pytest.mark.parametrize("core, words", [("tiny", 4096), ("dfx-u280", 16384)])
def test_programs_larger_than_the_instruction_buffer(world: World, cwd: Path, cli: Runner,
                                                     core: str, words: int) -> None:
    (cwd / "big.s").write_text("nop\n" * words + "halt\n")
    for extra in ([], ["--raw"], ["--check"]):
        line = check(["asm", "big.s", "-o", "big.out", "--core", core, *extra], 1,
                     f"big.s:{words + 1}: the program does not fit", world, cwd, run=cli)
        assert f"{words} words" in line
    (cwd / "fits.s").write_text("nop\n" * (words - 1) + "halt\n")
    r = dfx("asm", "fits.s", "--core", core, "--check", cwd=cwd)
    assert r.returncode == 0, r.stderr


def _strict_json(text: str) -> object:
    def no(name: str) -> object:
        raise ValueError(name)

    return json.loads(text, parse_constant=no)


def test_inspect_json_is_strict_json(world: World, cwd: Path) -> None:
    for key in ("tiny", "prog"):
        r = dfx("inspect", world[key], "--json", cwd=cwd)
        assert r.returncode == 0, r.stderr
        _strict_json(r.stdout)


def test_text_from_binaries_cannot_drive_the_terminal(world: World, cwd: Path) -> None:
    evil = "\x1b[2J\x1b]0;pwned\x07"

    def change(doc: dict) -> None:
        doc["model"]["name"] = "name" + evil
        doc["model"]["note\x1b[31m"] = "x\ny"
        doc["cards"][0]["debug"][0][1] = "layer\nhalt\n" + evil + "\u202e"
        doc["cards"][0]["symbols"]["sym" + evil] = {"space": "ddr", "addr": 0, "bytes": 4}
        doc["tool"] = "dfx" + evil

    path = forge(world.paths["tiny"], cwd / "evil.dfx", edit_doc(change))
    for args in (["inspect", str(path)], ["disasm", str(path), "--card", "0"]):
        r = dfx(*args, cwd=cwd)
        assert r.returncode == 0, r.stderr
        assert not any(c in r.stdout for c in "\x1b\x07\u202e"), args
    listing = dfx("disasm", str(path), "--card", "0", "--no-pc", cwd=cwd).stdout
    (cwd / "card0.s").write_text(listing)
    r = dfx("asm", "card0.s", "--check", "--core", "dfx-u280", cwd=cwd)
    assert r.returncode == 0, r.stderr
    n = int(r.stdout.split(": ")[1].split()[0])
    ref = dfx("disasm", world["tiny"], "--card", "0", cwd=cwd).stdout
    assert f"# ---- card 0: {n} instructions ----" in ref  # no instruction was injected


def test_error_messages_from_binaries_are_escaped(world: World, cwd: Path) -> None:
    path = forge(world.paths["tiny"], cwd / "evil.dfx",
                 edit_doc(lambda d: d["model"].update(n_ctx="\x1b[2J")))
    r = dfx("run", str(path), "--tokens", "1", cwd=cwd)
    line = assert_fails(r, 2, "'n_ctx'")
    assert "\x1b" not in line


@pytest.mark.parametrize("args, status, match", [
    (["compile", "gpt2-tiny", "-o", "q.dfx", "--quant", "bcq:q=3,g=128", "-q"], 1,
     "the group size does not divide k"),
    (["compile", "gpt2-tiny", "-o", "q.dfx", "--quant", "bcq:q=9"], 1, "q must be"),
    (["compile", "gpt2-tiny", "-o", "q.dfx", "--cards", "three"], 2, "invalid int value"),
    (["run", "{tiny}", "--tokens", "1", "--max-instructions", "lots"], 2,
     "expected a positive count"),
    (["run", "{tiny}", "--tokens", "1", "--max-memory", "-5"], 2, "expected a size"),
    (["nope"], 2, "invalid choice"),
    (["run", "{tiny}", "--tokens", "9" * 5000], 1, "token id of 5000 digits"),
    (["run", "{tiny}", "--tokens", "1,x"], 1, "--tokens must be comma-separated integers"),
    (["rtl", "--core", "tiny", "--out", ""], 1, "--out '': not a directory name"),
    (["disasm", "{prog}", "--card", "3"], 1, "the binary has cards 0..0"),
])
def test_exit_status_and_message_per_kind(world: World, cwd: Path, cli: Runner,
                                          args: list[str], status: int, match: str) -> None:
    line = check(world.fmt(args), status, match, world, cwd, run=cli)
    assert "0..-1" not in line


def test_logits_and_binaries_get_the_same_permissions(world: World, cwd: Path) -> None:
    r = dfx("run", world["tiny"], "--tokens", "1", "--max-new-tokens", "1", "--logits",
            "l.npy", "-q", cwd=cwd)
    assert r.returncode == 0, r.stderr
    r = dfx("asm", world["prog_s"], "-o", "p.dfx", cwd=cwd)
    assert r.returncode == 0, r.stderr
    modes = {stat.S_IMODE((cwd / f).stat().st_mode) for f in ("l.npy", "p.dfx")}
    mask = os.umask(0)
    os.umask(mask)
    assert modes == {0o666 & ~mask}
