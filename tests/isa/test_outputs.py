"""The one output writer (dfx.isa.outputs): atomic, unpredictable temporary names, special
files and inputs refused, every OS error one line, nothing left behind."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dfx.isa.outputs import (
    OutputError,
    check_output,
    check_output_dir,
    open_output,
    output_directory,
    write_output,
)


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def refused(path, match: str, **kw) -> None:
    with pytest.raises(OutputError, match=match) as info:
        write_output(path, b"data", **kw)
    assert "\n" not in str(info.value)


def test_writes_and_replaces(tmp_path: Path) -> None:
    out = write_output(tmp_path / "a.bin", b"one")
    assert out.read_bytes() == b"one"
    write_output(tmp_path / "a.bin", "two")
    assert (tmp_path / "a.bin").read_text() == "two"
    assert listing(tmp_path) == ["a.bin"]


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        f = write_output(tmp_path / "new.npy", b"x")
        assert stat.S_IMODE(f.stat().st_mode) == 0o644  # not mkstemp's 0600
        f.chmod(0o640)
        write_output(f, b"y")
        assert stat.S_IMODE(f.stat().st_mode) == 0o640
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", ["", " ", "dir/", ".", ".."])
def test_not_a_file_name(tmp_path: Path, name: str) -> None:
    refused(name, "not a file name|names a directory", option="-o")


def test_places_that_cannot_hold_the_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("regular")
    refused(tmp_path / "d", "is a directory")
    refused(tmp_path / "f" / "x.dfx", r"f is not a directory")
    refused(tmp_path / "f" / "g" / "x.dfx", r"f is not a directory")
    refused(tmp_path / "none" / "x.dfx", "directory .*none does not exist")
    refused("/proc/dfx-test-output.dfx", "cannot write")
    assert listing(tmp_path) == ["d", "f"]
    assert (tmp_path / "f").read_text() == "regular"


def test_special_files_are_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    refused(fifo, r"is a FIFO; dfx writes only regular files", option="-o")
    refused(link, "is a FIFO")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    # a device through a symbolic link (never the real /dev/null: this machine is shared)
    dev = tmp_path / "null"
    dev.symlink_to(os.devnull)
    refused(dev, "is a character device")
    assert dev.is_symlink()


def test_inputs_are_refused_through_any_name(tmp_path: Path) -> None:
    src = tmp_path / "prog.s"
    src.write_text("halt\n")
    hard = tmp_path / "hard.s"
    os.link(src, hard)
    soft = tmp_path / "soft.s"
    soft.symlink_to(src)
    for target in (src, hard, soft, tmp_path / "." / "prog.s"):
        refused(target, "is an input of this command", inputs=[src])
    assert src.read_text() == "halt\n"
    write_output(tmp_path / "other.bin", b"ok", inputs=[src, None, "no-such-name"])


def test_planted_temporary_names_are_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for planted in (".out.json.tmp", ".out.json.1.tmp"):
        (tmp_path / planted).symlink_to(victim)
    write_output(tmp_path / "out.json", b"{}")
    assert victim.read_text() == "keep"
    assert (tmp_path / "out.json").read_bytes() == b"{}"


def test_failure_midway_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "m.dfx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with open_output(target) as f:
            f.write(b"partial")
            raise RuntimeError("crash while writing")
    assert listing(tmp_path) == ["m.dfx"] and target.read_bytes() == b"old"


def test_file_size_limit_is_a_one_line_error(tmp_path: Path) -> None:
    """A full disk, as a file-size limit (EFBIG) in a child process."""
    script = textwrap.dedent(f"""
        import resource
        from dfx.isa.outputs import OutputError, write_output
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_output({str(tmp_path / "big.bin")!r}, b"x" * 100_000, option="-o")
        except OutputError as e:
            print(e)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"-o {tmp_path / 'big.bin'}: cannot write: File too large")
    assert listing(tmp_path) == []
    assert resource.getrlimit(resource.RLIMIT_FSIZE)  # the parent's limit is untouched


def test_output_directory_is_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "rtl"
    with pytest.raises(RuntimeError):
        with output_directory(out) as stage:
            (stage / "x.v").write_text("module x;")
            raise RuntimeError("generation failed")
    assert listing(tmp_path) == []
    with output_directory(out) as stage:
        (stage / "x.v").write_text("module x;")
    assert listing(out) == ["x.v"] and listing(tmp_path) == ["a"]


@pytest.mark.parametrize("bad, match", [("", "not a directory name"),
                                        ("f", "is a regular file, not a directory"),
                                        ("f/sub", "f is not a directory"),
                                        ("fifo", "is a FIFO, not a directory")])
def test_output_directory_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   bad: str, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("f").write_text("x")
    os.mkfifo("fifo")
    with pytest.raises(OutputError, match=match):
        check_output_dir(bad, option="--out")
    assert listing(tmp_path) == ["f", "fifo"]


def test_check_output_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"^--logits .*l\.npy: directory .* does not exist$"):
        check_output(tmp_path / "no" / "l.npy", option="--logits")
