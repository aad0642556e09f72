"""The one parser of JSON and YAML that comes from users or from binaries (docs/limits.md).

Every configuration YAML (``--core``, ``--board``), checkpoint JSON (``config.json``, the
shard index, safetensors headers), tokenizer JSON (``vocab.json``, ``tokenizer.json``) and the
``.dfx`` header goes through :func:`parse_json` / :func:`parse_yaml` (or the file forms
:func:`read_json` / :func:`read_yaml`). They refuse, with one line naming the file:

* more than ``max_bytes`` of text, text that is not UTF-8 (with the byte offset);
* nesting deeper than ``max_depth`` or more than ``max_nodes`` values (YAML aliases count each
  time they are used), so later code may walk a document recursively;
* JSON ``NaN`` / ``Infinity`` (not JSON), duplicate keys, integers of more digits than Python
  converts; YAML mapping keys that are not strings, tags other than the safe ones.

The caller chooses the error class (``error=``), so a bad ``.dfx`` header stays a
:class:`~dfx.isa.errors.BinaryFormatError` and a bad core YAML a ``ConfigError``. Type and range
checks of the fields are the caller's (they know the field names); :func:`kind` names a value's
JSON type for those messages.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from dfx.isa.errors import DfxError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "file_type",
    "kind",
    "open_input",
    "parse_json",
    "parse_yaml",
    "read_json",
    "read_text",
    "read_yaml",
]

#: Nesting allowed in any document (the deepest real one, a .dfx header, has 6 levels).
MAX_DEPTH = 64
#: Values allowed in one document (a 50,257-entry vocab.json has 50,258).
MAX_NODES = 20_000_000
#: Default size limit of a user file read with :func:`read_json` / :func:`read_yaml`.
MAX_BYTES = 16 << 20

ErrorType = Callable[[str], Exception]


def kind(value: object) -> str:
    """A value's type in JSON/YAML words: ``string``, ``integer``, ``object``..."""
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _decode(data: bytes | str, origin: str, error: ErrorType, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise error(f"{origin}: {len(data)} bytes, more than the {max_bytes} allowed for it")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{origin}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def _walk(doc: Any, origin: str, error: ErrorType, max_depth: int, max_nodes: int,
          str_keys: bool) -> None:
    """Iterative depth / size / key check of a parsed document."""
    stack: list[tuple[Any, int, str]] = [(doc, 0, "")]
    nodes = 0
    while stack:
        value, depth, where = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise error(f"{origin}: more than {max_nodes} values (aliases count each use)")
        if isinstance(value, dict | list):
            if depth >= max_depth:
                raise error(f"{origin}: {where or 'document'}: nested deeper than {max_depth} "
                            "levels")
            if isinstance(value, dict):
                for k, v in value.items():
                    if str_keys and not isinstance(k, str):
                        raise error(f"{origin}: {where or 'top level'}: key {k!r} is not a "
                                    f"string ({kind(k)})")
                    stack.append((v, depth + 1, f"{where}.{k}" if where else str(k)))
            else:
                stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_json(data: bytes | str, origin: str, *, error: ErrorType = DfxError,
               max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
               max_nodes: int = MAX_NODES) -> Any:
    """Parse JSON text from a user or a binary; every problem is ``error(one line)``."""
    text = _decode(data, origin, error, max_bytes)
    try:
        doc = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise error(f"{origin}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") \
            from None
    except RecursionError:
        raise error(f"{origin}: nested deeper than {max_depth} levels") from None
    except ValueError as e:  # NaN/Infinity, duplicate keys, integers of > 4300 digits
        raise error(f"{origin}: invalid JSON: {_value_error(e)}") from None
    _walk(doc, origin, error, max_depth, max_nodes, str_keys=False)
    return doc


def _value_error(e: ValueError) -> str:
    text = " ".join(str(e).split())
    if "digits" in text and "int" in text:
        return "an integer with too many digits"
    return text


def parse_yaml(data: bytes | str, origin: str, *, error: ErrorType = DfxError,
               max_bytes: int = 1 << 20, max_depth: int = MAX_DEPTH,
               max_nodes: int = 1_000_000) -> Any:
    """Parse YAML text (the safe subset: no Python tags); every problem is ``error(one line)``.

    Mapping keys must be strings.
    """
    import yaml

    text = _decode(data, origin, error, max_bytes)
    try:
        doc = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise error(f"{origin}: not valid YAML{at}" + (f": {problem}" if problem else "")) \
            from None
    except RecursionError:
        raise error(f"{origin}: nested deeper than {max_depth} levels") from None
    except ValueError as e:
        raise error(f"{origin}: not valid YAML: {_value_error(e)}") from None
    _walk(doc, origin, error, max_depth, max_nodes, str_keys=True)
    return doc


def open_input(path: str | os.PathLike[str], *, error: ErrorType = DfxError,
               what: str = "") -> BinaryIO:
    """Open a regular file for reading (binary). A FIFO, device or directory is refused at
    once (opening never blocks); a missing or unreadable file is ``error(one line)``."""
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except IsADirectoryError:
        raise error(f"{label}: is a directory, not a file") from None
    except OSError as e:
        raise error(f"{label}: cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{label}: is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{label}: not a regular file ({file_type(st.st_mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_type(mode: int) -> str:
    """``directory``, ``FIFO``, ``character device``... of an ``st_mode``."""
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link"),
                       (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return "special file"


def read_text(path: str | os.PathLike[str], *, error: ErrorType = DfxError,
              max_bytes: int = MAX_BYTES, what: str = "") -> str:
    """A regular file's UTF-8 text, at most ``max_bytes`` (read no further than that)."""
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    with open_input(p, error=error, what=what) as f:
        try:
            raw = f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"{label}: cannot read: {e.strerror or e}") from None
    if len(raw) > max_bytes:
        raise error(f"{label}: larger than the {max_bytes} bytes allowed for it")
    return _decode(raw, label, error, max_bytes)


def read_json(path: str | os.PathLike[str], *, error: ErrorType = DfxError,
              max_bytes: int = MAX_BYTES, **limits: int) -> Any:
    """:func:`parse_json` of a file (see :func:`read_text`)."""
    return parse_json(read_text(path, error=error, max_bytes=max_bytes), str(path),
                      error=error, max_bytes=max_bytes, **limits)


def read_yaml(path: str | os.PathLike[str], *, error: ErrorType = DfxError,
              max_bytes: int = 1 << 20, **limits: int) -> Any:
    """:func:`parse_yaml` of a file (see :func:`read_text`)."""
    return parse_yaml(read_text(path, error=error, max_bytes=max_bytes), str(path),
                      error=error, max_bytes=max_bytes, **limits)
