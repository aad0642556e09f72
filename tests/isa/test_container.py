"""The .dfx container: round trip, lazy loading, every kind of corruption, atomic writes."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dfx.isa import container
from dfx.isa.config import load_core, to_dict
from dfx.isa.container import (
    Binary,
    CardImage,
    Segment,
    read_binary,
    summary,
    write_binary,
)
from dfx.isa.encoding import Instruction, MemAddr, encode_program
from dfx.isa.errors import BinaryFormatError, DfxError
from dfx.isa.spec import load_spec

SPEC = load_spec()
WORD = SPEC.word_bytes


def program(n_li: int = 3) -> bytes:
    return encode_program(
        [Instruction("li", rd=1 + k, imm=100 * k) for k in range(n_li)]
        + [
            Instruction("load", dst=MemAddr("vrf", 0, 0), src=MemAddr("hbm", 1, 0), n=8),
            Instruction("vadd", y=1, a=0, b=0, n=1),
            Instruction("halt"),
        ]
    )


def make_binary(cards: int = 2) -> Binary:
    core = load_core("tiny")
    images = []
    for i in range(cards):
        weights = (np.arange(512, dtype=np.float16) * (i + 1)).astype(np.float16)
        images.append(
            CardImage(
                program=program(),
                segments=[
                    Segment("hbm", 0x1000, weights),
                    Segment("hbm", 0x8000, None, 64 * 1024, 0),  # KV cache: costs nothing
                    Segment("ddr", 0, bytes(range(16))),
                    Segment("ddr", 0x100, None, 32, 0xAB),
                ],
                debug=[(0, "prologue"), (3, "layer 0 / ln_1 / load"), (4, "layer 0 / ln_1")],
                symbols={
                    "tokens": {"space": "ddr", "addr": 0x2000, "bytes": 4096},
                    "logits": {"space": "hbm", "addr": 0x20000, "bytes": 2 * 50257},
                },
            )
        )
    return Binary(core, {"name": "gpt2-test", "n_layer": 2, "tokenizer": {"eos": 50256}}, images)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_binary(tmp_path_factory.mktemp("bin") / "good.dfx", make_binary())


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    p = tmp_path / "copy.dfx"
    p.write_bytes(good.read_bytes())
    return p


def layout(path: Path) -> tuple[int, dict]:
    """(offset of the data area, parsed safetensors header)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return 8 + n, json.loads(raw[8 : 8 + n])


def rewrite_header(path: Path, edit) -> None:
    """Apply ``edit`` to the raw header bytes (must keep their length)."""
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    new = edit(bytes(raw[8 : 8 + n]))
    assert len(new) == n
    raw[8 : 8 + n] = new
    path.write_bytes(raw)


def flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(raw)


def expect_error(path: Path, *fragments: str, lazy: bool = False) -> str:
    with pytest.raises(BinaryFormatError) as info:
        read_binary(path, lazy=lazy)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    for frag in fragments:
        assert frag in msg, msg
    assert info.value.exit_code == 2
    return msg


# ---------------------------------------------------------------------------------------------
# Round trip


def test_round_trip(good: Path) -> None:
    orig = make_binary()
    b = read_binary(good)
    assert b.path == good
    assert (b.isa_name, b.isa_version, b.isa_hash) == (SPEC.name, SPEC.version, SPEC.hash)
    assert b.container_version == container.CONTAINER_VERSION
    assert b.tool == container.tool_version()
    assert to_dict(b.core) == to_dict(orig.core)
    assert to_dict(b.core.b) == to_dict(orig.core.b)
    assert b.model == orig.model
    assert b.n_cards == 2
    for got, want in zip(b.cards, orig.cards, strict=True):
        assert got.program == want.program
        assert got.debug == want.debug
        assert got.symbols == want.symbols
        assert len(got.segments) == len(want.segments)
        for gs, ws in zip(got.segments, want.segments, strict=True):
            assert (gs.space, gs.addr, gs.length, gs.fill) == (
                ws.space,
                ws.addr,
                ws.length,
                ws.fill,
            )
            assert gs.to_bytes() == ws.to_bytes()
    weights = b.cards[1].segments[0].data.view(np.float16)
    assert np.array_equal(weights, np.arange(512, dtype=np.float16) * 2)


def test_writing_is_deterministic(good: Path, tmp_path: Path) -> None:
    assert write_binary(tmp_path / "again.dfx", make_binary()).read_bytes() == good.read_bytes()


def test_fill_segments_cost_nothing(good: Path) -> None:
    data_start, header = layout(good)
    tensors = sorted(k for k in header if k != "__metadata__")
    assert tensors == [f"card{i}.{t}" for i in range(2) for t in ("program", "seg0", "seg2")]
    payload = sum(e - b for b, e in (header[t]["data_offsets"] for t in tensors))
    assert good.stat().st_size == data_start + payload
    assert payload == 2 * (len(program()) + 1024 + 16)


def test_is_a_plain_safetensors_file(good: Path) -> None:
    from safetensors.numpy import load_file

    tensors = load_file(str(good))
    assert tensors["card0.program"].dtype == np.uint8
    assert tensors["card0.program"].tobytes() == program()
    _, header = layout(good)
    doc = json.loads(header["__metadata__"]["dfx"])
    assert doc["format"] == "dfx-binary" and doc["container_version"] == 1
    assert doc["isa"] == {"name": SPEC.name, "version": SPEC.version, "hash": SPEC.hash}
    assert doc["cards"][0]["segments"][1] == {
        "space": "hbm",
        "addr": 0x8000,
        "length": 65536,
        "fill": 0,
    }
    assert doc["cards"][0]["debug"][1] == [3, "layer 0 / ln_1 / load"]


def test_lazy_load(good: Path) -> None:
    b = read_binary(good, lazy=True)
    segs = b.cards[0].segments
    assert not segs[0].loaded and segs[1].loaded  # fill segments have nothing to load
    assert "not loaded" in repr(segs[0])
    assert segs[0].length == 1024
    s = summary(b)  # summarising never loads segment bytes
    assert not segs[0].loaded
    assert s["cards"][0]["memory"]["hbm"] == {
        "segments": 2,
        "data_bytes": 1024,
        "fill_bytes": 65536,
    }
    assert np.array_equal(segs[0].data.view(np.float16), np.arange(512, dtype=np.float16))
    assert segs[0].loaded
    b.verify()
    assert all(s.loaded for c in b.cards for s in c.segments)


def test_lazy_segment_checked_on_access(copy: Path) -> None:
    b = read_binary(copy, lazy=True)
    data_start, header = layout(copy)
    flip(copy, data_start + header["card1.seg0"]["data_offsets"][0] + 5)
    assert b.cards[0].segments[0].data is not None  # untouched segment still fine
    with pytest.raises(BinaryFormatError, match="card 1 segment 0 checksum mismatch"):
        _ = b.cards[1].segments[0].data
    copy.unlink()
    with pytest.raises(BinaryFormatError, match="card 0 segment 2: the file is gone"):
        _ = b.cards[0].segments[2].data


def test_annotation_lookup() -> None:
    card = make_binary().cards[0]
    assert [card.annotation(pc) for pc in range(6)] == [
        "prologue",
        "prologue",
        "prologue",
        "layer 0 / ln_1 / load",
        "layer 0 / ln_1",
        "layer 0 / ln_1",
    ]
    assert CardImage(program(), debug=[(2, "x")]).annotation(1) is None


def test_segment_data_as_bytes() -> None:
    s = Segment("hbm", 0, np.array([1.0, -2.0], dtype=">f4"))  # stored little-endian
    assert s.length == 8 and s.data.dtype == np.uint8
    assert s.to_bytes() == np.array([1.0, -2.0], dtype="<f4").tobytes()
    assert Segment("ddr", 4, None, 3, 7).to_bytes() == b"\x07\x07\x07"


def test_summary(good: Path) -> None:
    s = summary(read_binary(good))
    assert s["core"] == {"name": "tiny", "d": 8, "l": 4, "clock_mhz": 100.0, "dtype": "fp16"}
    assert s["board"]["name"] == "tiny" and s["n_cards"] == 2
    card = s["cards"][0]
    assert card["instructions"] == 6 and card["program_bytes"] == 6 * WORD
    assert list(card["instruction_mix"]) == list(SPEC.classes)
    assert card["instruction_mix"]["integer"] == 3
    assert card["instruction_mix"]["dma"] == card["instruction_mix"]["vector"] == 1
    assert card["instruction_mix"]["control"] == 1
    assert card["memory"]["ddr"] == {"segments": 2, "data_bytes": 16, "fill_bytes": 32}
    assert card["symbols"]["tokens"] == {"space": "ddr", "addr": 0x2000, "bytes": 4096}
    json.dumps(s)


def test_summary_rejects_illegal_instructions(tmp_path: Path) -> None:
    b = make_binary(1)
    b.cards[0].program = b"\xff" * WORD
    b.cards[0].debug = []
    p = write_binary(tmp_path / "illegal.dfx", b)
    with pytest.raises(BinaryFormatError, match=r"illegal\.dfx: card 0: the program holds an "
                                                r"illegal instruction word"):
        read_binary(p)
    with pytest.raises(BinaryFormatError, match=r"card 0: illegal instruction"):
        summary(b)


# ---------------------------------------------------------------------------------------------
# Corruption: every kind is a one-line BinaryFormatError naming the file


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.dfx", "no such file")


def test_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, "is a directory")


@pytest.mark.parametrize("content", [b"", b"\x01\x02\x03"])
def test_too_short(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "short.dfx"
    p.write_bytes(content)
    expect_error(p, "too short")


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a text file\n",
        b"\x00" * 64,
        b"\x10\x00\x00\x00\x00\x00\x00\x00[1, 2, 3]       ",
    ],
)
def test_not_safetensors(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "text.dfx"
    p.write_bytes(content)
    expect_error(p, "not a dfx binary")


def test_safetensors_without_dfx_metadata(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    p = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(4, np.float16)}, str(p), metadata={"format": "pt"})
    expect_error(p, "not a dfx binary", "without dfx metadata")


def test_truncated(copy: Path) -> None:
    raw = copy.read_bytes()
    data_start, _ = layout(copy)
    for cut in (7, 8, 9, 200, data_start - 1, data_start, data_start + 40, len(raw) - 1):
        copy.write_bytes(raw[:cut])
        expect_error(copy, "too short" if cut < 8 else "truncated")


def test_trailing_bytes(copy: Path) -> None:
    with open(copy, "ab") as f:
        f.write(b"\0" * 8)
    expect_error(copy, "corrupted", "unexpected bytes after the data")


def test_every_flipped_byte_is_detected(copy: Path) -> None:
    raw = copy.read_bytes()
    data_start, _ = layout(copy)
    # every byte of the length field, every 41st header byte, every 17th data byte
    positions = (
        list(range(16)) + list(range(16, data_start, 41)) + list(range(data_start, len(raw), 17))
    )
    positions.append(len(raw) - 1)
    for pos in positions:
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        copy.write_bytes(bad)
        expect_error(copy)


def test_header_checksum(copy: Path) -> None:
    # a change that keeps the JSON valid: only the checksum can tell
    rewrite_header(copy, lambda h: h.replace(b'\\"n_layer\\":2', b'\\"n_layer\\":3'))
    expect_error(copy, "corrupted", "header checksum mismatch")


def test_program_checksum(copy: Path) -> None:
    data_start, header = layout(copy)
    flip(copy, data_start + header["card1.program"]["data_offsets"][0] + 40)
    expect_error(copy, "card 1 program checksum mismatch")


def test_segment_checksum(copy: Path) -> None:
    data_start, header = layout(copy)
    flip(copy, data_start + header["card0.seg2"]["data_offsets"][1] - 1)
    expect_error(copy, "card 0 segment 2 checksum mismatch")
    read_binary(copy, lazy=True)  # lazily: found only when the segment is read


def test_tensor_missing_from_table(copy: Path) -> None:
    rewrite_header(copy, lambda h: h.replace(b'"card0.seg2":', b'"card0.segX":'))
    expect_error(copy, "card 0 segment 2: tensor 'card0.seg2' is missing")


def test_tensor_shape_mismatch(copy: Path) -> None:
    rewrite_header(copy, lambda h: h.replace(b'"shape":[16]', b'"shape":[15]'))
    expect_error(copy, "corrupted")


def test_tensor_not_in_segment_table(tmp_path: Path) -> None:
    b = make_binary(1)
    p = write_binary(tmp_path / "x.dfx", b)
    # move a segment's bytes under a name the table does not know (same length)
    rewrite_header(p, lambda h: h.replace(b'"card0.seg0":{', b'"card0.zzz0":{'))
    expect_error(p, "tensor 'card0.seg0' is missing")


def test_wrong_container_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container, "CONTAINER_VERSION", 2)
    p = write_binary(tmp_path / "v2.dfx", make_binary(1))
    monkeypatch.undo()
    expect_error(p, "container version 2", "newer dfx", "reads version 1")


def test_wrong_isa_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = SimpleNamespace(name=SPEC.name, version="9.9.9", hash="ab" * 32, word_bytes=WORD)
    monkeypatch.setattr(container, "_spec", lambda: other)
    p = write_binary(tmp_path / "other-isa.dfx", make_binary(1))
    monkeypatch.undo()
    msg = expect_error(p, "built for ISA dfx 9.9.9 (hash abababababab)", "recompile")
    assert f"this dfx implements ISA {SPEC.name} {SPEC.version} (hash {SPEC.hash[:12]})" in msg
    # the hash alone differs
    p2 = write_binary(
        tmp_path / "same-version.dfx", Binary(**{**vars(make_binary(1)), "isa_hash": "0" * 64})
    )
    expect_error(p2, "hash 000000000000", "recompile")


def test_program_not_whole_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bytewise = SimpleNamespace(name=SPEC.name, version=SPEC.version, hash=SPEC.hash, word_bytes=1)
    monkeypatch.setattr(container, "_spec", lambda: bytewise)
    b = make_binary(1)
    b.cards[0].program = program() + b"\0" * 5
    b.cards[0].debug = []
    p = write_binary(tmp_path / "odd.dfx", b)
    monkeypatch.undo()
    expect_error(p, f"card 0: program is {6 * WORD + 5} bytes, not a multiple of the {WORD}-byte")


def test_corrupted_embedded_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = make_binary(1)
    real = container.to_dict

    def bad_to_dict(obj):  # a core whose d is not a power of two
        d = real(obj)
        if "mpu" in d:
            d["mpu"] = {**d["mpu"], "d": 12}
        return d

    monkeypatch.setattr(container, "to_dict", bad_to_dict)
    p = write_binary(tmp_path / "cfg.dfx", b)
    monkeypatch.undo()
    expect_error(p, "embedded configuration: mpu.d: must be a power of two")


# ---------------------------------------------------------------------------------------------
# Writing: validated first, atomic always


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_unserialisable_model_leaves_nothing(tmp_path: Path) -> None:
    b = make_binary(1)
    b.model = {"extra": object()}
    with pytest.raises(BinaryFormatError, match="not JSON-serialisable"):
        write_binary(tmp_path / "m.dfx", b)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_failure_midway_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target = tmp_path / "m.dfx"
    target.write_bytes(b"previous contents")

    def boom(*_a, **_k):
        if where == "fsync":
            raise RuntimeError("simulated crash after the data was written")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(container.os, where, boom)
    with pytest.raises(RuntimeError if where == "fsync" else DfxError) as info:
        write_binary(target, make_binary(1))
    monkeypatch.undo()
    if where == "replace":
        assert str(info.value) == f"{target}: cannot write: No space left on device"
        assert info.value.exit_code == 1
    assert _listing(tmp_path) == ["m.dfx"]
    assert target.read_bytes() == b"previous contents"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DfxError, match="directory .*no does not exist"):
        write_binary(tmp_path / "no" / "m.dfx", make_binary(1))


def test_overwrite(copy: Path) -> None:
    b = make_binary(1)
    write_binary(copy, b)
    assert read_binary(copy).n_cards == 1
    assert _listing(copy.parent) == ["copy.dfx"]


def _edit(fn):
    b = make_binary(1)
    fn(b, b.cards[0])
    return b


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda b, c: setattr(c, "program", c.program[:-1]), "not a multiple of the"),
        (
            lambda b, c: c.segments.append(Segment("hbm", 0x1100, b"x")),
            "segments 0 and 4 overlap in hbm",
        ),
        (lambda b, c: c.segments.append(Segment("ddr", 16 << 20, b"x")), "beyond the board's"),
        (lambda b, c: c.segments.append(Segment("vrf", 0, b"x")), "space must be one of hbm, ddr"),
        (lambda b, c: c.segments.append(Segment("hbm", -1, b"x")), "addr must be a non-negative"),
        (lambda b, c: c.segments.append(Segment("hbm", 0, None, 4, 256)), "fill must be a byte"),
        (
            lambda b, c: c.segments.append(Segment("hbm", 0, None, 4)),
            "exactly one of data and fill",
        ),
        (
            lambda b, c: c.segments.append(Segment("hbm", 0, b"abc", 4)),
            "data is 3 bytes but length is 4",
        ),
        (lambda b, c: c.debug.append((2, "back")), "is not after the previous entry"),
        (lambda b, c: c.debug.append((99, "late")), "first_pc must be an instruction index"),
        (lambda b, c: c.symbols.update(x={"space": "hbm", "addr": 0}), "addr and bytes"),
        (lambda b, c: b.cards.clear(), "no cards"),
        (lambda b, c: setattr(b, "model", [1]), "model config must be a mapping"),
    ],
)
def test_invalid_binary_is_not_written(tmp_path: Path, edit, fragment: str) -> None:
    with pytest.raises(BinaryFormatError, match="cannot write") as info:
        write_binary(tmp_path / "bad.dfx", _edit(edit))
    assert fragment in str(info.value)
    assert _listing(tmp_path) == []


def test_empty_program_and_no_segments(tmp_path: Path) -> None:
    b = Binary(load_core("tiny"), {}, [CardImage(b"")])
    r = read_binary(write_binary(tmp_path / "empty.dfx", b))
    assert r.cards[0].program == b"" and r.cards[0].segments == []
    assert os.path.getsize(tmp_path / "empty.dfx") > 8
