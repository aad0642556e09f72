"""The one JSON/YAML parser (dfx.isa.documents): every hostile document is one DfxError line
naming the file, never a RecursionError, UnicodeDecodeError or ValueError."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dfx.isa.documents import (
    MAX_DEPTH,
    open_input,
    parse_json,
    parse_yaml,
    read_json,
    read_text,
    read_yaml,
)
from dfx.isa.errors import DfxError


class Marked(DfxError):
    """The caller's error class (checked to be the one raised)."""


def refused(fn, *args, match: str, **kw) -> str:
    with pytest.raises(Marked, match=match) as info:
        fn(*args, error=Marked, **kw)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300, msg
    return msg


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 200_000])
def test_json_nesting_is_refused_at_any_depth(depth: int) -> None:
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        text = opener * depth + "1" + closer * depth
        t0 = time.perf_counter()
        refused(parse_json, text, "doc.json", match=r"doc\.json: .*nested deeper than 64")
        assert time.perf_counter() - t0 < 5


def test_json_just_under_the_depth_limit_parses() -> None:
    text = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse_json(text, "ok.json") is not None


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"clock_mhz": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ("1" * 5000, "an integer with too many digits"),
        ("{not json", "invalid JSON at line 1 column 2"),
    ],
)
def test_json_that_is_not_strict_json(text: str, match: str) -> None:
    refused(parse_json, text, "x.json", match=f"x.json: .*{match}")


def test_json_size_and_utf8() -> None:
    refused(parse_json, b"[" + b"1," * 100 + b"1]", "big.json", max_bytes=50,
            match=r"big\.json: 203 bytes, more than the 50 allowed")
    msg = refused(parse_json, b'{"a": "\xff"}', "latin.json", match="not UTF-8")
    assert "byte 7" in msg


def test_node_count_limit() -> None:
    refused(parse_json, "[" + "0," * 999 + "0]", "many.json", max_nodes=500,
            match="more than 500 values")


@pytest.mark.parametrize(
    "text, match",
    [
        ("a: " + "[" * 5000, "nested deeper than 64|not valid YAML"),
        ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 200)), "nested deeper than 64"),
        ("1: 2\n", "key 1 is not a string"),
        ("a: !!python/object:os.system 1\n", "not valid YAML"),
        ("a: [1, 2\n", r"not valid YAML \(line 2"),
        ("a: " + "1" * 5000 + "\n", "too many digits"),
    ],
)
def test_yaml_refusals(text: str, match: str) -> None:
    refused(parse_yaml, text, "core.yaml", match=f"core.yaml: .*(?:{match})")


def test_yaml_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    t0 = time.perf_counter()
    refused(parse_yaml, "\n".join(lines), "laughs.yaml", match="more than 1000000 values")
    assert time.perf_counter() - t0 < 10


def test_yaml_non_utf8_file(tmp_path: Path) -> None:
    f = tmp_path / "core.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    refused(read_yaml, f, match=r"core\.yaml: not UTF-8 text \(byte 9")


def test_files_that_are_not_regular(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    refused(read_json, fifo, match=r"fifo\.json: not a regular file \(FIFO\)")
    assert time.perf_counter() - t0 < 5  # opening never blocks on a FIFO without a writer
    refused(read_text, tmp_path, match="is a directory")
    refused(read_text, tmp_path / "none.json", match="no such file")
    with pytest.raises(Marked, match="FIFO"):
        open_input(fifo, error=Marked)


def test_file_size_limit_reads_no_further(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_text("[" + "0," * 10_000 + "0]")
    refused(read_json, f, max_bytes=1000, match="larger than the 1000 bytes")
    assert read_json(f)[-1] == 0
