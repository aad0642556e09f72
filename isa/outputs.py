"""The one writer of output files: every file a dfx command writes goes through here
(binaries, ``--raw`` words, listings, logits, traces, Verilog; docs/limits.md).

:func:`check_output` validates a path before any work is done; :func:`open_output` (a context
manager) / :func:`write_output` then write it:

* the bytes go to a temporary file with an unpredictable name (``mkstemp``: created with
  ``O_EXCL``, so a planted file or symlink is never followed) in the target's directory, which
  replaces the target only when complete, flushed and synced: a failed write leaves the old
  file as it was;
* the temporary file is removed on every way out: an error, Ctrl-C, and SIGTERM / SIGHUP (the
  CLI turns those into exceptions; :func:`remove_temporaries` also runs at exit);
* refused up front, with one line: an empty path or one ending in ``/``, a directory, a special
  file (device, FIFO, socket: replacing ``/dev/null`` with a regular file, or a FIFO, is never
  what was meant), a path that is one of the command's inputs (same file, also through links),
  a missing parent directory or a parent that is not a directory;
* a new file gets the permissions ``0666 & ~umask`` (like any file the user creates); a
  replaced file keeps its permissions;
* every ``OSError`` (read-only file system, no permission, full disk, ``/proc``...) becomes an
  :class:`OutputError`: ``OPTION PATH: cannot write: REASON``, exit status 1.

:func:`output_directory` does the same for a directory of files (``dfx rtl --out``): they are
written into a temporary directory beside it and moved in when all are complete.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from dfx.isa.documents import file_type
from dfx.isa.errors import DfxError

__all__ = [
    "OutputError",
    "check_output",
    "check_output_dir",
    "open_output",
    "output_directory",
    "remove_temporaries",
    "write_output",
]

PathLike = str | os.PathLike[str]

#: Temporary files and directories that exist right now (removed on any exit).
_LIVE: set[str] = set()


class OutputError(DfxError):
    """An output that cannot or must not be written (one line: option, path, reason)."""


def remove_temporaries() -> None:
    """Remove every temporary output still present (called at exit and by the CLI)."""
    for p in list(_LIVE):
        with contextlib.suppress(OSError):
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        _LIVE.discard(p)


atexit.register(remove_temporaries)


def _label(option: str, path: PathLike) -> str:
    text = os.fspath(path)
    return f"{option} {text}" if option else text


def _reason(e: OSError) -> str:
    if e.errno is None and "requested and" in str(e):  # numpy's short write (tofile)
        return "the write was cut short (the disk is full or the file too large)"
    return " ".join(str(e.strerror or e).split())


def _same(a: Path, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_inputs(target: Path, inputs: Iterable[PathLike | None], label: str) -> None:
    """Refuse a target that is one of the input files (the same file, also through a
    symbolic or hard link)."""
    if not target.exists():
        return
    for inp in inputs:
        if inp is None:
            continue
        if _same(target, inp):
            raise OutputError(f"{label}: is an input of this command ({os.fspath(inp)}); "
                              "choose another output file")


def check_output(path: PathLike | None, *, option: str = "-o",
                 inputs: Iterable[PathLike | None] = ()) -> Path:
    """Validate an output file path (before any work); returns it as a Path."""
    if path is None:
        raise OutputError(f"{option}: no output file given")
    text = os.fspath(path)
    label = _label(option, text)
    if not text.strip():
        raise OutputError(f"{option} {text!r}: not a file name")
    if text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise OutputError(f"{label}: names a directory; give a file name")
    target = Path(text)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise OutputError(f"{label}: {_first_non_dir(target)} is not a directory") from None
    except OSError as e:
        raise OutputError(f"{label}: cannot write: {_reason(e)}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{label}: is a directory; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{label}: is a {file_type(st.st_mode)}; dfx writes only "
                              "regular files")
    _check_inputs(target, inputs, label)
    parent = target.parent
    if not parent.exists():
        raise OutputError(f"{label}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{label}: {_first_non_dir(target)} is not a directory")
    return target


def _first_non_dir(target: Path) -> Path:
    """The first ancestor of ``target`` that exists but is not a directory."""
    for p in reversed(target.parents):
        if p.exists() and not p.is_dir():
            return p
    return target.parent


def _new_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def open_output(path: PathLike, *, option: str = "-o",
                inputs: Iterable[PathLike | None] = ()) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` when the block ends normally."""
    target = check_output(path, option=option, inputs=inputs)
    label = _label(option, path)
    try:
        st = os.stat(target)
        mode = stat.S_IMODE(st.st_mode)
    except OSError:
        mode = _new_mode()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        _LIVE.add(tmp)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        # the target may have changed while we worked: never replace a special file
        check_output(path, option=option, inputs=inputs)
        os.replace(tmp, target)
    except OSError as e:
        raise OutputError(f"{label}: cannot write: {_reason(e)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            _LIVE.discard(tmp)


def write_output(path: PathLike, data: bytes | str | Callable[[BinaryIO], None], *,
                 option: str = "-o", inputs: Iterable[PathLike | None] = ()) -> Path:
    """Write ``data`` (bytes, UTF-8 text, or a function that writes to the file) to ``path``
    atomically; returns the path."""
    with open_output(path, option=option, inputs=inputs) as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def check_output_dir(path: PathLike | None, *, option: str = "--out") -> Path:
    """Validate an output directory path: not empty, not an existing non-directory, and the
    nearest existing ancestor is a directory."""
    if path is None:
        raise OutputError(f"{option}: no output directory given")
    text = os.fspath(path)
    label = _label(option, text)
    if not text.strip():
        raise OutputError(f"{option} {text!r}: not a directory name")
    target = Path(text)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise OutputError(f"{label}: {_first_non_dir(target)} is not a directory") from None
    except OSError as e:
        raise OutputError(f"{label}: cannot write: {_reason(e)}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{label}: is a {file_type(st.st_mode)}, not a directory")
    anc = _existing_ancestor(target)
    if not anc.is_dir():
        raise OutputError(f"{label}: {anc} is not a directory")
    return target


def _existing_ancestor(target: Path) -> Path:
    for p in (target, *target.parents):
        if p.exists():
            return p
    return Path(".")


@contextlib.contextmanager
def output_directory(path: PathLike, *, option: str = "--out") -> Iterator[Path]:
    """A fresh temporary directory to write files into; when the block ends normally, each
    file replaces its namesake in ``path`` (created with its parents if needed). On any error
    nothing in ``path`` changes and directories created for it are removed."""
    target = check_output_dir(path, option=option)
    label = _label(option, path)
    stage = None
    created: list[Path] = []
    try:
        base = _existing_ancestor(target.parent)
        stage = tempfile.mkdtemp(dir=base, prefix=f".{target.name or 'out'}.", suffix=".tmp")
        _LIVE.add(stage)
        yield Path(stage)
        for p in reversed([target, *target.parents]):
            if not p.exists():
                p.mkdir()
                created.append(p)
        mode = _new_mode()
        for f in sorted(Path(stage).iterdir()):
            if f.is_file():
                os.chmod(f, mode)
                dest = target / f.name
                if dest.exists() and not dest.is_file():
                    raise OutputError(f"{label}: {dest} is a {file_type(os.stat(dest).st_mode)}"
                                      "; dfx writes only regular files")
                os.replace(f, dest)
        created.clear()
    except OSError as e:
        raise OutputError(f"{label}: cannot write: {_reason(e)}") from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
            _LIVE.discard(stage)
        for p in reversed(created):
            with contextlib.suppress(OSError):
                p.rmdir()
