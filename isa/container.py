"""The ``.dfx`` binary container: everything a set of cards needs to run one model.

A ``.dfx`` file is a `safetensors <https://github.com/huggingface/safetensors>`_ file: an
8-byte little-endian header length, a JSON header, then raw tensor bytes. Loading it never
executes anything (no pickle). The layout:

``__metadata__["dfx"]``
    One JSON document (``format`` = ``"dfx-binary"``, ``container_version``, ``tool``, ``isa``
    {name, version, hash}, ``core`` and ``board`` configurations, ``model`` (free-form, from the
    compiler), and ``cards``: per card the program (tensor name, bytes, instructions, sha256),
    the memory segment table, the debug map and the symbols).
``__metadata__["dfx.sha256"]``
    sha256 of the ``"dfx"`` string, checked before anything in it is trusted. The envelope
    (these two keys, ``format`` and ``container_version``) never changes between versions.
``card{i}.program``
    uint8, the encoded instruction words of card ``i`` (``word_bytes`` each).
``card{i}.seg{j}``
    uint8, the bytes of segment ``j`` of card ``i``. Segments filled with a constant byte (the
    KV cache, scratch) have a ``fill`` value instead of a tensor, so they cost nothing on disk.

Every segment's and program's sha256 is in the document: :func:`read_binary` checks programs
on load and segments when their bytes are loaded (at once, or on first access with
``lazy=True``). Every problem is a :class:`~dfx.isa.errors.BinaryFormatError` whose message is
one line naming the file. :func:`write_binary` writes a temporary file in the target's
directory and renames it, so a failed write never leaves a partial binary behind.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dfx.isa.config import ConfigError, CoreConfig, core_from_dict, to_dict
from dfx.isa.documents import open_input, parse_json
from dfx.isa.errors import BinaryFormatError, IsaError, indices
from dfx.isa.outputs import open_output

FORMAT = "dfx-binary"
CONTAINER_VERSION = 1
META_KEY = "dfx"
META_SHA_KEY = "dfx.sha256"
SPACES = ("hbm", "ddr")
SUFFIX = ".dfx"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
MAX_DOCUMENT_DEPTH = 32  # nesting of the header document (the compiler's is 6 deep)
_CHUNK = 64 << 20  # bytes hashed / written per step


def tool_version() -> str:
    """``dfx <version>`` of the installed package (stamped into every binary)."""
    try:
        return f"dfx {_metadata.version('dfx')}"
    except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "dfx (unknown version)"


def _spec() -> Any:
    from dfx.isa.spec import load_spec

    return load_spec()


def _isa_name(spec: Any) -> str:
    return str(getattr(spec, "name", "dfx"))


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------------------------
# The in-memory form


class _LazyData:
    """Descriptor for :attr:`Segment.data`: loads the bytes on first access when lazy."""

    def __get__(self, obj: Segment | None, objtype: type | None = None) -> np.ndarray | None:
        if obj is None:
            return None  # the dataclass field's default
        data = obj.__dict__.get("_data")
        if data is None and obj._loader is not None:
            data = obj._loader()
            obj.__dict__["_data"] = data
            obj._loader = None
        return data

    def __set__(self, obj: Segment, value: Any) -> None:
        obj.__dict__["_data"] = None if value is None else as_bytes(value)
        obj.__dict__["_loader"] = None  # explicit bytes replace any pending lazy load


def as_bytes(data: Any) -> np.ndarray:
    """``data`` (bytes, or an array of any dtype) as a flat uint8 array of its raw bytes."""
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(data), dtype=np.uint8)
    arr = np.ascontiguousarray(data)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.reshape(-1).view(np.uint8)


@dataclass(eq=False)
class Segment:
    """A region of a card's HBM or DDR, initialised from ``data`` or with the byte ``fill``.

    ``data`` may be given as bytes or an array of any dtype (stored as its little-endian bytes);
    ``length`` defaults to its size. A fill segment gives ``length`` and ``fill`` (0..255) and
    no data. For a binary read with ``lazy=True`` the bytes are read on first access.
    """

    space: str
    addr: int
    data: np.ndarray | None = _LazyData()  # type: ignore[assignment]
    length: int | None = None
    fill: int | None = None
    _loader: Callable[[], np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.length is None and self.__dict__.get("_data") is not None:
            self.length = int(self.__dict__["_data"].size)

    def __repr__(self) -> str:  # never loads lazy bytes, never prints them
        addr = hex(self.addr) if _is_int(self.addr) else repr(self.addr)
        if self.fill is not None:
            content = f"fill={self.fill!r}"
        else:
            content = "data=<bytes>" if self.loaded else "data=<not loaded>"
        return f"Segment({self.space!r}, {addr}, length={self.length!r}, {content})"

    @property
    def is_fill(self) -> bool:
        return self.fill is not None

    @property
    def end(self) -> int:
        return self.addr + (self.length or 0)

    @property
    def loaded(self) -> bool:
        """False while a lazily read segment's bytes are still on disk only."""
        return self._loader is None

    def to_bytes(self) -> bytes:
        """The segment's full contents (fill segments expanded)."""
        if self.fill is not None:
            return bytes([self.fill]) * (self.length or 0)
        assert self.data is not None
        return self.data.tobytes()


@dataclass(eq=False)
class CardImage:
    """One card's program and initial memory contents.

    ``debug`` maps instruction indices to annotations: ``(first_pc, text)`` pairs sorted by
    ``first_pc``; an entry covers instructions up to the next entry's ``first_pc``. ``symbols``
    names places for the host runtime: ``name -> {"space", "addr", "bytes", ...}``.
    """

    program: bytes
    segments: list[Segment] = field(default_factory=list)
    debug: list[tuple[int, str]] = field(default_factory=list)
    symbols: dict[str, dict[str, Any]] = field(default_factory=dict)

    def annotation(self, pc: int) -> str | None:
        """The debug annotation covering instruction ``pc`` (None before the first entry)."""
        i = bisect.bisect_right([first for first, _ in self.debug], pc) - 1
        return self.debug[i][1] if i >= 0 else None


@dataclass(eq=False)
class Binary:
    """A compiled model: the core it targets, the model description and one image per card.

    ``isa_name``/``isa_version``/``isa_hash`` default to this dfx's ISA when written; ``tool``
    (the dfx that wrote the file), ``path`` and ``container_version`` are set by
    :func:`read_binary`.
    """

    core: CoreConfig
    model: dict[str, Any]
    cards: list[CardImage]
    isa_name: str | None = None
    isa_version: str | None = None
    isa_hash: str | None = None
    tool: str | None = None
    container_version: int = CONTAINER_VERSION
    path: Path | None = None

    @property
    def n_cards(self) -> int:
        return len(self.cards)

    def verify(self) -> None:
        """Load every lazily read segment (checking its sha256)."""
        for card in self.cards:
            for seg in card.segments:
                _ = seg.data


# ---------------------------------------------------------------------------------------------
# Validation shared by writing and reading


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_layout(
    cards: list[CardImage], core: CoreConfig, word_bytes: int, fail: Callable[[str], Exception]
) -> None:
    """Programs, segments, debug maps and symbols are well formed and fit the board."""
    if core.board_config is None:
        raise fail("core configuration has no board (load it with load_core)")
    capacity = {"hbm": core.b.hbm.capacity_bytes, "ddr": core.b.ddr.capacity_bytes}
    if not cards:
        raise fail("no cards")
    for i, card in enumerate(cards):
        where = f"card {i}"
        if not isinstance(card, CardImage):
            raise fail(f"{where}: expected a CardImage, got {type(card).__name__}")
        if not isinstance(card.program, bytes | bytearray | memoryview):
            raise fail(f"{where}: program must be bytes, got {type(card.program).__name__}")
        n_bytes = len(card.program)
        if n_bytes % word_bytes:
            raise fail(
                f"{where}: program is {n_bytes} bytes, not a multiple of the "
                f"{word_bytes}-byte instruction word"
            )
        n_insn = n_bytes // word_bytes
        if n_insn > core.buffers.instruction_words:
            raise fail(
                f"{where}: program of {n_insn} instructions does not fit the instruction buffer "
                f"of core {core.name} ({core.buffers.instruction_words} words, "
                "buffers.instruction_words)"
            )
        _check_segments(card.segments, capacity, where, fail)
        _check_debug(card.debug, n_insn, where, fail)
        _check_symbols(card.symbols, capacity, where, fail)


def _check_segments(
    segments: list[Segment], capacity: dict[str, int], where: str, fail: Callable
) -> None:
    if not isinstance(segments, list):
        raise fail(f"{where}: segments must be a list")
    spans: dict[str, list[tuple[int, int, int]]] = {s: [] for s in SPACES}
    for j, seg in enumerate(segments):
        w = f"{where} segment {j}"
        if not isinstance(seg, Segment):
            raise fail(f"{w}: expected a Segment, got {type(seg).__name__}")
        if seg.space not in SPACES:
            raise fail(f"{w}: space must be one of {', '.join(SPACES)}, got {seg.space!r}")
        if not _is_int(seg.addr) or seg.addr < 0:
            raise fail(f"{w}: addr must be a non-negative integer, got {seg.addr!r}")
        if not _is_int(seg.length) or seg.length < 0:
            raise fail(f"{w}: length must be a non-negative integer, got {seg.length!r}")
        has_data = seg.__dict__.get("_data") is not None or seg._loader is not None
        if has_data == (seg.fill is not None):
            raise fail(f"{w}: give exactly one of data and fill")
        if seg.fill is not None and (not _is_int(seg.fill) or not 0 <= seg.fill <= 255):
            raise fail(f"{w}: fill must be a byte value 0..255, got {seg.fill!r}")
        data = seg.__dict__.get("_data")
        if data is not None and data.size != seg.length:
            raise fail(f"{w}: data is {data.size} bytes but length is {seg.length}")
        if seg.addr + seg.length > capacity[seg.space]:
            raise fail(
                f"{w}: {seg.space}[{seg.addr:#x}:{seg.addr + seg.length:#x}] is beyond the "
                f"board's {capacity[seg.space]} bytes of {seg.space.upper()}"
            )
        if seg.length:
            spans[seg.space].append((seg.addr, seg.addr + seg.length, j))
    for space, items in spans.items():
        items.sort()
        for (_a0, a1, j0), (b0, _b1, j1) in zip(items, items[1:], strict=False):
            if b0 < a1:
                raise fail(
                    f"{where}: segments {j0} and {j1} overlap in {space} at {b0:#x}..{a1:#x}"
                )


def _check_debug(debug: Any, n_insn: int, where: str, fail: Callable) -> None:
    if not isinstance(debug, list | tuple):
        raise fail(f"{where}: debug map must be a list of (first_pc, text)")
    prev = -1
    for k, entry in enumerate(debug):
        w = f"{where} debug entry {k}"
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise fail(f"{w}: expected (first_pc, text), got {entry!r}")
        pc, text = entry
        if not _is_int(pc) or not 0 <= pc < n_insn:
            raise fail(f"{w}: first_pc must be an instruction index {indices(n_insn)}, got {pc!r}")
        if pc <= prev:
            raise fail(f"{w}: first_pc {pc} is not after the previous entry's {prev}")
        if not isinstance(text, str):
            raise fail(f"{w}: text must be a string, got {text!r}")
        prev = pc


def _check_symbols(symbols: Any, capacity: dict[str, int], where: str, fail: Callable) -> None:
    if not isinstance(symbols, dict):
        raise fail(f"{where}: symbols must be a mapping")
    for name, sym in symbols.items():
        w = f"{where} symbol {name!r}"
        if not isinstance(name, str):
            raise fail(f"{where}: symbol names must be strings, got {name!r}")
        if not isinstance(sym, dict):
            raise fail(f"{w}: expected a mapping with space, addr, bytes")
        space, addr, nbytes = sym.get("space"), sym.get("addr"), sym.get("bytes")
        if space not in SPACES:
            raise fail(f"{w}: space must be one of {', '.join(SPACES)}, got {space!r}")
        if not _is_int(addr) or addr < 0 or not _is_int(nbytes) or nbytes < 0:
            raise fail(f"{w}: addr and bytes must be non-negative integers")
        if addr + nbytes > capacity[space]:
            raise fail(f"{w}: {space}[{addr:#x}:{addr + nbytes:#x}] is beyond the board's memory")
        for key, value in sym.items():
            check = _SYMBOL_FIELDS.get(key)
            problem = check(value, sym) if check is not None else None
            if problem:
                raise fail(f"{w}: field {key!r} {problem}")


# The fields of the model description and of the symbols that dfx itself reads (the runtime,
# both simulators, dfx inspect): checked when present, so that a checksum-valid binary with
# odd values is refused on load with one line instead of failing deep inside a command.

#: Ranges of a GPT-2 model's dimensions, for checkpoints (config.json) and binaries alike
#: (docs/limits.md). GPT-2 XL is 48 x 1600 x 25 heads, 1024 positions, 50,257 tokens.
MODEL_LIMITS: dict[str, tuple[int, int]] = {
    "n_layer": (1, 65536),
    "n_embd": (1, 65536),
    "n_head": (1, 4096),
    "n_ctx": (1, 65536),
    "vocab_size": (1, 1 << 24),
}
MAX_CFG_FIELDS = 64


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any, *_: Any) -> str | None:
        if not _is_int(v) or not lo <= v <= hi:
            return f"must be an integer in {lo}..{hi}, got {_short(v)}"
        return None

    return check


def _is(v: Any, types: tuple[type, ...]) -> bool:
    """``isinstance`` where a boolean is not an integer (JSON's view)."""
    if isinstance(v, bool):
        return bool in types
    return isinstance(v, types)


def _kind_is(*types: type, none: bool = False) -> Callable[..., str | None]:
    def check(v: Any, *_: Any) -> str | None:
        if (v is None and none) or _is(v, types):
            return None
        want = " or ".join(t.__name__ for t in types) + (" or null" if none else "")
        return f"must be {want}, got {_short(v)}"

    return check


def _positive_number(v: Any, *_: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0 and v < float("inf")
    return None if ok else f"must be a positive finite number, got {_short(v)}"


def _finite_number(v: Any, *_: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < float("inf")
    return None if ok else f"must be a finite number, got {_short(v)}"


def _str_map(*types: type, none: bool = False) -> Callable[..., str | None]:
    def check(v: Any, *_: Any) -> str | None:
        if not isinstance(v, dict):
            return f"must be an object, got {_short(v)}"
        for k, x in v.items():
            if not ((x is None and none) or _is(x, types)):
                return f"entry {k!r} has an invalid value {_short(x)}"
        return None

    return check


def _str_list(v: Any, *_: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return f"must be a list of strings, got {_short(v)}"
    return None


def _sub(fields: dict[str, Callable]) -> Callable[[Any], str | None]:
    """An optional object (null allowed) whose known fields are checked."""
    def check(v: Any, *_: Any) -> str | None:
        if v is None:
            return None
        if not isinstance(v, dict):
            return f"must be an object or null, got {_short(v)}"
        for key, value in v.items():
            f = fields.get(key)
            problem = f(value) if f is not None else None
            if problem:
                return f"field {key!r} {problem}"
        return None

    return check


_MODEL_FIELDS: dict[str, Callable[..., str | None]] = {
    **{k: _int_in(lo, hi) for k, (lo, hi) in MODEL_LIMITS.items()},
    "layer_norm_epsilon": _positive_number,
    "weights": _kind_is(bool),
    "name": _kind_is(str),
    "arch": _kind_is(str),
    "kind": _kind_is(str),
    "source": _kind_is(str),
    "seed": _kind_is(int),
    "scale": _finite_number,
    "labels": _str_map(int),
    "tokenizer": _sub({"builtin": _kind_is(bool), "dir": _kind_is(str, none=True),
                       "sha256": _str_map(str)}),
    "quant": _sub({"spec": _kind_is(str), "scheme": _kind_is(str), "q": _int_in(1, 64),
                   "groups": _str_map(int, none=True), "slice": _int_in(1, 1 << 20),
                   "fp16_layers": _str_list}),
}


def _weight_bytes(v: Any, n_cards: int) -> str | None:
    if not isinstance(v, list) or len(v) != n_cards or not all(_is_int(x) and x >= 0 for x in v):
        return f"must be a list of {n_cards} byte counts, got {_short(v)}"
    return None


def _check_model(model: Any, n_cards: int, fail: Callable[[str], Exception]) -> None:
    """The well-known fields of the model description have the types and ranges dfx needs."""
    if not isinstance(model, dict):
        raise fail(f"model description must be an object, got {_short(model)}")
    for key, value in model.items():
        check = _MODEL_FIELDS.get(key)
        problem = check(value) if check is not None else None
        if key == "weight_bytes":
            problem = _weight_bytes(value, n_cards)
        if problem:
            raise fail(f"model field {key!r} {problem}")


def _cfg_fields(v: Any, sym: dict[str, Any]) -> str | None:
    if _str_list(v) or not 1 <= len(v) <= MAX_CFG_FIELDS or len(set(v)) != len(v):
        return f"must be a list of 1..{MAX_CFG_FIELDS} distinct field names, got {_short(v)}"
    if 4 * len(v) > sym["bytes"]:
        return f"lists {len(v)} 4-byte fields but the symbol has {sym['bytes']} bytes"
    return None


def _capacity(v: Any, sym: dict[str, Any]) -> str | None:
    if not _is_int(v) or not 0 <= v <= sym["bytes"] // 4:
        return f"must be a token count in 0..bytes / 4 = {sym['bytes'] // 4}, got {_short(v)}"
    return None


def _row_elements(v: Any, sym: dict[str, Any]) -> str | None:
    if not _is_int(v) or not 1 <= v <= 1 << 26:
        return f"must be an integer in 1..{1 << 26}, got {_short(v)}"
    return None


def _vocab(v: Any, sym: dict[str, Any]) -> str | None:
    row = sym.get("row_elements")
    hi = row if _is_int(row) and row >= 1 else MODEL_LIMITS["vocab_size"][1]
    if not _is_int(v) or not 1 <= v <= hi:
        return f"must be an integer in 1..{hi} (row_elements), got {_short(v)}"
    return None


_SYMBOL_FIELDS: dict[str, Callable[[Any, dict[str, Any]], str | None]] = {
    "fields": _cfg_fields,
    "capacity": _capacity,
    "row_elements": _row_elements,
    "vocab": _vocab,
}


def _short(value: Any) -> str:
    """A value for a one-line message: JSON-ish, cut at 60 characters."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Writing


def _sha256(chunks: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _pieces(arr: np.ndarray) -> Iterable[memoryview]:
    view = memoryview(arr).cast("B")
    for start in range(0, len(view), _CHUNK):
        yield view[start : start + _CHUNK]


def _serialize(binary: Binary, path: Path) -> tuple[bytes, list[np.ndarray]]:
    """The safetensors header and the tensors' bytes in file order (validates everything)."""

    def fail(msg: str) -> BinaryFormatError:
        return BinaryFormatError(f"{path}: cannot write: {msg}")

    if not isinstance(binary, Binary):
        raise fail(f"expected a Binary, got {type(binary).__name__}")
    if not isinstance(binary.core, CoreConfig):
        raise fail("core must be a CoreConfig")
    if not isinstance(binary.model, dict):
        raise fail(f"model config must be a mapping, got {type(binary.model).__name__}")
    spec = _spec()
    _check_layout(binary.cards, binary.core, spec.word_bytes, fail)
    _check_model(binary.model, len(binary.cards), fail)

    table: dict[str, dict[str, Any]] = {}
    blobs: list[np.ndarray] = []
    offset = 0

    def add(name: str, arr: np.ndarray) -> None:
        nonlocal offset
        table[name] = {
            "dtype": "U8",
            "shape": [int(arr.size)],
            "data_offsets": [offset, offset + arr.size],
        }
        blobs.append(arr)
        offset += int(arr.size)

    cards_doc = []
    for i, card in enumerate(binary.cards):
        prog = np.frombuffer(bytes(card.program), dtype=np.uint8)
        add(f"card{i}.program", prog)
        segs_doc = []
        for j, seg in enumerate(card.segments):
            entry: dict[str, Any] = {"space": seg.space, "addr": seg.addr, "length": seg.length}
            if seg.fill is not None:
                entry["fill"] = seg.fill
            else:
                data = seg.data
                assert data is not None
                entry["tensor"] = f"card{i}.seg{j}"
                entry["sha256"] = _sha256(_pieces(data))
                add(entry["tensor"], data)
            segs_doc.append(entry)
        cards_doc.append(
            {
                "program": {
                    "tensor": f"card{i}.program",
                    "bytes": int(prog.size),
                    "instructions": int(prog.size) // spec.word_bytes,
                    "sha256": _sha256([prog]),
                },
                "segments": segs_doc,
                "debug": [[int(pc), text] for pc, text in card.debug],
                "symbols": card.symbols,
            }
        )
    doc = {
        "format": FORMAT,
        "container_version": CONTAINER_VERSION,
        "tool": tool_version(),  # the writer, always
        "isa": {
            "name": binary.isa_name or _isa_name(spec),
            "version": binary.isa_version or str(spec.version),
            "hash": binary.isa_hash or str(spec.hash),
        },
        "core": to_dict(binary.core),
        "board": to_dict(binary.core.b),
        "model": binary.model,
        "n_cards": len(binary.cards),
        "cards": cards_doc,
    }
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise fail(f"model config or symbols are not JSON-serialisable ({_one_line(e)})") from None
    header = {
        "__metadata__": {META_KEY: text, META_SHA_KEY: hashlib.sha256(text.encode()).hexdigest()},
        **table,
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
    if len(raw) > MAX_HEADER_BYTES:
        raise fail(f"header is {len(raw)} bytes, more than the {MAX_HEADER_BYTES} allowed")
    return struct.pack("<Q", len(raw)) + raw, blobs


def write_binary(path: str | os.PathLike[str], binary: Binary, *, option: str = "",
                 inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """Write ``binary`` to ``path`` atomically; returns the path.

    Everything is validated and serialised before the file system is touched; the bytes go
    through :func:`dfx.isa.outputs.open_output` (a temporary file in the same directory that
    replaces ``path`` only when complete; special files and ``inputs`` are refused). On any
    error an existing ``path`` is left as it was. ``option`` names the path in messages
    (``-o``).
    """
    target = Path(path)
    head, blobs = _serialize(binary, target)
    with open_output(target, option=option, inputs=inputs) as f:
        f.write(head)
        for blob in blobs:
            for piece in _pieces(blob):
                f.write(piece)
    return target


# ---------------------------------------------------------------------------------------------
# Reading


class _Reader:
    """Reads and validates one file; every problem is one line naming the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def fail(self, msg: str) -> BinaryFormatError:
        return BinaryFormatError(f"{self.path}: {msg}")

    def corrupt(self, msg: str) -> BinaryFormatError:
        return self.fail(f"corrupted binary: {msg}")

    # -- the safetensors envelope -------------------------------------------------------------

    def header(self) -> tuple[dict[str, Any], int]:
        """The parsed safetensors header and the offset of the data area."""
        p = self.path
        try:
            with open_input(p, error=self.fail) as f:
                size = os.fstat(f.fileno()).st_size
                first = f.read(8)
                if len(first) < 8:
                    raise self.fail(
                        f"not a dfx binary: {size} bytes, too short for a safetensors header"
                    )
                (n,) = struct.unpack("<Q", first)
                if n == 0 or n > MAX_HEADER_BYTES:
                    raise self.fail("not a dfx binary (not a safetensors file)")
                if 8 + n > size:
                    raise self.fail(
                        f"truncated binary: the header needs {8 + n} bytes, the file has {size}"
                    )
                raw = f.read(n)
        except OSError as e:
            raise self.fail(f"cannot read: {e.strerror or _one_line(e)}") from None
        if raw[:1] != b"{":
            raise self.fail("not a dfx binary (not a safetensors file)")
        header = parse_json(raw, "the safetensors header", error=self.corrupt,
                            max_bytes=MAX_HEADER_BYTES, max_depth=MAX_DOCUMENT_DEPTH)
        if not isinstance(header, dict):
            raise self.corrupt("the safetensors header is not a JSON object")
        data_start = 8 + n
        end = 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            offs = info.get("data_offsets") if isinstance(info, dict) else None
            if (
                not isinstance(offs, list)
                or len(offs) != 2
                or not all(_is_int(o) for o in offs)
                or not 0 <= offs[0] <= offs[1]
            ):
                raise self.corrupt(f"tensor {name!r} has invalid data offsets")
            end = max(end, offs[1])
        if data_start + end > size:
            raise self.fail(f"truncated binary: {size} bytes, expected {data_start + end}")
        if data_start + end < size:
            raise self.corrupt(f"{size - data_start - end} unexpected bytes after the data")
        return header, data_start

    def document(self, header: dict[str, Any]) -> dict[str, Any]:
        meta = header.get("__metadata__")
        if not isinstance(meta, dict) or META_KEY not in meta:
            raise self.fail("not a dfx binary (a safetensors file without dfx metadata)")
        text, digest = meta.get(META_KEY), meta.get(META_SHA_KEY)
        if not isinstance(text, str) or not isinstance(digest, str):
            raise self.corrupt("the dfx metadata is not a string with its checksum")
        if hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != digest:
            raise self.corrupt("header checksum mismatch")
        doc = parse_json(text, "the dfx metadata", error=self.corrupt,
                         max_bytes=MAX_HEADER_BYTES, max_depth=MAX_DOCUMENT_DEPTH)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise self.fail(f"not a dfx binary (format is not {FORMAT!r})")
        version = doc.get("container_version")
        if not _is_int(version):
            raise self.corrupt("container_version is missing")
        if version != CONTAINER_VERSION:
            newer = "a newer" if version > CONTAINER_VERSION else "an older"
            raise self.fail(
                f"container version {version} was written by {newer} dfx; this dfx "
                f"({tool_version()}) reads version {CONTAINER_VERSION}: recompile the model"
            )
        return doc

    def check_isa(self, doc: dict[str, Any], spec: Any) -> tuple[str, str, str]:
        isa = doc.get("isa")
        if not isinstance(isa, dict) or not all(
            isinstance(isa.get(k), str) for k in ("name", "version", "hash")
        ):
            raise self.corrupt("the ISA identification is missing")
        have = (_isa_name(spec), str(spec.version), str(spec.hash))
        want = (isa["name"], isa["version"], isa["hash"])
        if want != have:
            raise self.fail(
                f"built for ISA {want[0]} {want[1]} (hash {want[2][:12]}) but this dfx "
                f"implements ISA {have[0]} {have[1]} (hash {have[2][:12]}); recompile the "
                "model with this dfx"
            )
        return want

    # -- the dfx document ---------------------------------------------------------------------

    def get(self, obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        v = obj.get(key) if isinstance(obj, dict) else None
        ok = _is_int(v) if kind is int else isinstance(v, kind)
        if not ok or (kind is int and v < 0):
            raise self.corrupt(f"{where}: {key!r} is missing or invalid")
        return v

    def core(self, doc: dict[str, Any]) -> CoreConfig:
        try:
            return core_from_dict(
                self.get(doc, "core", dict, "header"),
                self.get(doc, "board", dict, "header"),
                f"{self.path}: embedded configuration",
            )
        except ConfigError as e:
            raise BinaryFormatError(_one_line(e)) from None

    def cards(
        self, doc: dict[str, Any], table: dict[str, Any], word_bytes: int
    ) -> list[tuple[CardImage, dict[str, Any], list[str | None], list[str | None]]]:
        """Cards without their bytes, with (program doc, segment tensors, segment hashes)."""
        cards_doc = self.get(doc, "cards", list, "header")
        if self.get(doc, "n_cards", int, "header") != len(cards_doc):
            raise self.corrupt(f"n_cards is {doc['n_cards']} but {len(cards_doc)} cards are listed")
        used: set[str] = set()

        def tensor(name: str, length: int, where: str) -> None:
            info = table.get(name)
            if info is None:
                raise self.corrupt(f"{where}: tensor {name!r} is missing")
            if name in used:
                raise self.corrupt(f"{where}: tensor {name!r} is used twice")
            used.add(name)
            shape = info.get("shape")
            if info.get("dtype") != "U8" or shape != [length]:
                raise self.corrupt(
                    f"{where}: tensor {name!r} is {info.get('dtype')} {shape}, expected U8 "
                    f"[{length}]"
                )
            b, e = info["data_offsets"]
            if e - b != length:
                raise self.corrupt(f"{where}: tensor {name!r} size does not match its shape")

        out = []
        for i, c in enumerate(cards_doc):
            w = f"card {i}"
            prog = self.get(c, "program", dict, w)
            pname = self.get(prog, "tensor", str, f"{w} program")
            nbytes = self.get(prog, "bytes", int, f"{w} program")
            self.get(prog, "sha256", str, f"{w} program")
            if nbytes % word_bytes:
                raise self.fail(
                    f"{w}: program is {nbytes} bytes, not a multiple of the {word_bytes}-byte "
                    "instruction word"
                )
            tensor(pname, nbytes, f"{w} program")
            segments, names, hashes = [], [], []
            for j, s in enumerate(self.get(c, "segments", list, w)):
                ws = f"{w} segment {j}"
                space = self.get(s, "space", str, ws)
                addr = self.get(s, "addr", int, ws)
                length = self.get(s, "length", int, ws)
                if ("fill" in s) == ("tensor" in s):
                    raise self.corrupt(f"{ws}: needs exactly one of 'fill' and 'tensor'")
                if "fill" in s:
                    seg = Segment(space, addr, None, length, self.get(s, "fill", int, ws))
                    names.append(None)
                    hashes.append(None)
                else:
                    name = self.get(s, "tensor", str, ws)
                    hashes.append(self.get(s, "sha256", str, ws))
                    tensor(name, length, ws)
                    seg = Segment(space, addr, None, length, None)
                    seg._loader = _never  # placeholder until the bytes are attached
                    names.append(name)
                segments.append(seg)
            debug = self.get(c, "debug", list, w)
            if not all(isinstance(d, list) and len(d) == 2 for d in debug):
                raise self.corrupt(f"{w}: debug map entries must be [first_pc, text]")
            card = CardImage(
                program=b"",
                segments=segments,
                debug=[(d[0], d[1]) for d in debug],
                symbols=self.get(c, "symbols", dict, w),
            )
            out.append((card, prog, names, hashes))
        extra = sorted(set(table) - used)
        if extra:
            raise self.corrupt(f"tensor {extra[0]!r} is not referenced by the segment table")
        return out


def _never() -> np.ndarray:  # pragma: no cover - replaced before anyone can call it
    raise AssertionError("segment bytes not attached")


def _read_span(
    r: _Reader, f: BinaryIO, start: int, length: int, digest: str, what: str
) -> np.ndarray:
    """``length`` bytes at ``start`` of the open file, checked against ``digest``.

    Reads straight into the result (one copy of the data in memory, hashed as it arrives).
    """
    arr = np.empty(length, dtype=np.uint8)
    view = memoryview(arr)
    h = hashlib.sha256()
    f.seek(start)
    pos = 0
    while pos < length:
        n = f.readinto(view[pos : pos + _CHUNK])
        if not n:
            raise r.fail(f"truncated binary: {what} ends at byte {start + pos}")
        h.update(view[pos : pos + n])
        pos += n
    if h.hexdigest() != digest:
        raise r.corrupt(f"{what} checksum mismatch")
    return arr


def _lazy_loader(
    r: _Reader, start: int, length: int, digest: str, what: str
) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            with open(r.path, "rb") as f:
                return _read_span(r, f, start, length, digest, what)
        except FileNotFoundError:
            raise r.fail(f"cannot read {what}: the file is gone") from None
        except OSError as e:
            raise r.fail(f"cannot read {what}: {e.strerror or _one_line(e)}") from None

    return load


def read_binary(path: str | os.PathLike[str], *, lazy: bool = False) -> Binary:
    """Read and validate a ``.dfx`` binary.

    Checks the safetensors structure, the header checksum, the container version, the ISA
    (name, version and hash must be this dfx's), the embedded configurations, the segment and
    symbol tables against the board, and the sha256 of every program. Segment bytes are read
    and checked at once, or with ``lazy=True`` on first access to :attr:`Segment.data` (which
    then raises :class:`BinaryFormatError` if the file has changed since).
    """
    from safetensors import SafetensorError, safe_open

    from dfx.isa.encoding import decode_program

    r = _Reader(path)
    header, data_start = r.header()
    doc = r.document(header)
    spec = _spec()
    isa_name, isa_version, isa_hash = r.check_isa(doc, spec)
    core = r.core(doc)
    model = r.get(doc, "model", dict, "header")
    tool = r.get(doc, "tool", str, "header")
    table = {k: v for k, v in header.items() if k != "__metadata__"}
    parsed = r.cards(doc, table, spec.word_bytes)
    cards = [card for card, *_ in parsed]
    try:
        # the safetensors library checks the structure too (and reads the small programs)
        with safe_open(str(r.path), framework="numpy") as st:
            for i, (card, prog, _names, _hashes) in enumerate(parsed):
                arr = st.get_tensor(prog["tensor"])
                if _sha256([arr]) != prog["sha256"]:
                    raise r.corrupt(f"card {i} program checksum mismatch")
                card.program = arr.tobytes()
                try:
                    decode_program(card.program)
                except IsaError as e:
                    raise r.fail(f"card {i}: the program holds an illegal instruction word: "
                                 f"{_one_line(e)}") from None
        _check_layout(cards, core, spec.word_bytes, r.corrupt)
        _check_model(model, len(cards), r.corrupt)
        with open(r.path, "rb") as f:
            for i, (card, _prog, names, hashes) in enumerate(parsed):
                for j, (seg, name, digest) in enumerate(
                    zip(card.segments, names, hashes, strict=True)
                ):
                    if name is None:
                        continue
                    what = f"card {i} segment {j}"
                    start = data_start + table[name]["data_offsets"][0]
                    assert seg.length is not None
                    if lazy:
                        seg._loader = _lazy_loader(r, start, seg.length, digest, what)
                    else:
                        seg._loader = None
                        seg.data = _read_span(r, f, start, seg.length, digest, what)
    except SafetensorError as e:
        raise r.corrupt(_one_line(e)) from None
    except OSError as e:
        raise r.fail(f"cannot read: {e.strerror or _one_line(e)}") from None

    return Binary(
        core=core,
        model=model,
        cards=cards,
        isa_name=isa_name,
        isa_version=isa_version,
        isa_hash=isa_hash,
        tool=tool,
        container_version=doc["container_version"],
        path=r.path,
    )


# ---------------------------------------------------------------------------------------------
# Summary (``dfx inspect``)


def instruction_mix(program: bytes) -> dict[str, int]:
    """Instruction count per ISA class (control, integer, matrix, ...) of an encoded program.

    Every class of the spec is listed, in spec order; raises IsaError for an illegal word.
    """
    from dfx.isa.encoding import decode_program

    counts = dict.fromkeys(_spec().classes, 0)
    for insn in decode_program(bytes(program)):
        counts[insn.spec.cls] += 1
    return counts


def _memory(card: CardImage) -> dict[str, dict[str, int]]:
    out = {}
    for space in SPACES:
        segs = [s for s in card.segments if s.space == space]
        out[space] = {
            "segments": len(segs),
            "data_bytes": sum(s.length or 0 for s in segs if not s.is_fill),
            "fill_bytes": sum(s.length or 0 for s in segs if s.is_fill),
        }
    return out


def _mix(binary: Binary, i: int) -> dict[str, int]:
    try:
        return instruction_mix(binary.cards[i].program)
    except IsaError as e:
        where = f"{binary.path}: " if binary.path is not None else ""
        raise BinaryFormatError(f"{where}card {i}: {_one_line(e)}") from None


def summary(binary: Binary, *, mix: bool = True) -> dict[str, Any]:
    """Plain-data description of a binary (does not load lazily read segment bytes)."""
    core, board = binary.core, binary.core.b
    spec = _spec()
    cards = []
    for i, card in enumerate(binary.cards):
        cards.append(
            {
                "card": i,
                "instructions": len(card.program) // spec.word_bytes,
                "program_bytes": len(card.program),
                "instruction_mix": _mix(binary, i) if mix else None,
                "memory": _memory(card),
                "segments": [
                    {
                        "index": j,
                        "space": s.space,
                        "addr": s.addr,
                        "length": s.length,
                        **({"fill": s.fill} if s.is_fill else {}),
                    }
                    for j, s in enumerate(card.segments)
                ],
                "debug_entries": len(card.debug),
                "symbols": card.symbols,
            }
        )
    return {
        "file": str(binary.path) if binary.path is not None else None,
        "format": FORMAT,
        "container_version": binary.container_version,
        "tool": binary.tool,
        "isa": {"name": binary.isa_name, "version": binary.isa_version, "hash": binary.isa_hash},
        "core": {
            "name": core.name,
            "d": core.d,
            "l": core.l,
            "clock_mhz": core.clock_mhz,
            "dtype": core.dtype,
        },
        "board": {
            "name": board.name,
            "part": board.part,
            "hbm_bytes": board.hbm.capacity_bytes,
            "hbm_pseudo_channels": board.hbm.pseudo_channels,
            "ddr_bytes": board.ddr.capacity_bytes,
        },
        "model": binary.model,
        "n_cards": binary.n_cards,
        "cards": cards,
    }
