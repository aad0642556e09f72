"""The offline GPT-2 tokenizer: real ids, round trips, checkpoint files, errors, no network."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
import tiktoken.load

from dfx.host import tokenizer as tk
from dfx.host.tokenizer import Tokenizer, TokenizerError, gpt2_tokenizer_files, load_tokenizer


@pytest.fixture(scope="module")
def gpt2() -> Tokenizer:
    return load_tokenizer(None)


def test_hello_world(gpt2):
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.decode([15496, 995]) == "Hello world"
    assert (gpt2.n_vocab, gpt2.eot_id) == (50257, 50256)


def test_known_ids(gpt2):
    assert gpt2.encode(" the") == [262]
    assert gpt2.encode("<|endoftext|>") == [50256]
    assert gpt2.encode("a<|endoftext|>", allow_special=False) == [
        64,
        27,
        91,
        437,
        1659,
        5239,
        91,
        29,
    ]
    assert gpt2.encode("") == []
    assert gpt2.decode([]) == ""


def test_unicode_round_trip(gpt2):
    text = "naïve café — 東京 🙂🚀 ﬁ\tZ\n\n  it's 12345 ok!"
    ids = gpt2.encode(text)
    assert all(0 <= i < 50257 for i in ids)
    assert gpt2.decode(ids) == text
    assert gpt2.decode_bytes(ids) == text.encode()
    # a lone token inside a multi-byte character: bytes for streaming, U+FFFD as text
    emoji = gpt2.encode("🙂")
    assert len(emoji) > 1
    assert gpt2.decode(emoji[:1]) == "\ufffd"
    assert gpt2.decode_bytes(emoji[:1]) == "🙂".encode()[: len(gpt2.decode_bytes(emoji[:1]))]


def test_matches_tiktokens_own_conversion(monkeypatch, tmp_path):
    """Same ranks as tiktoken.load.data_gym_to_mergeable_bpe_ranks on the same local files."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache writes
    vocab, merges = gpt2_tokenizer_files()
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(merges), encoder_json_file=str(vocab)
    )
    assert load_tokenizer(None).encoding._mergeable_ranks == ranks


def test_decode_rejects_bad_ids(gpt2):
    with pytest.raises(
        TokenizerError, match=r"token id 50257 is outside the vocabulary 0\.\.50256"
    ):
        gpt2.decode([1, 50257])
    with pytest.raises(TokenizerError, match="token id -1 is outside"):
        gpt2.decode([-1])
    with pytest.raises(TokenizerError, match="is not an integer"):
        gpt2.decode([1.0])


def test_builds_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the tokenizer tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tk.gpt2_tokenizer.cache_clear()
    try:
        assert load_tokenizer(None).encode("Hello world") == [15496, 995]
    finally:
        tk.gpt2_tokenizer.cache_clear()


def test_checkpoint_files_are_used(tmp_path, gpt2):
    vocab, merges = gpt2_tokenizer_files()
    d = tmp_path / "ck"
    d.mkdir()
    assert load_tokenizer(d) is load_tokenizer(None)  # no tokenizer files: GPT-2's
    shutil.copyfile(vocab, d / "vocab.json")
    shutil.copyfile(merges, d / "merges.txt")
    tok = load_tokenizer(d)
    assert str(d / "vocab.json") in tok.source
    text = "Checkpoint tokenizers: ünïcödé 🙂"
    assert tok.encode(text) == gpt2.encode(text)


def _byte_vocab() -> dict[str, int]:
    return {ch: i for i, ch in enumerate(tk._bytes_to_unicode().values())}


def test_custom_vocabulary_from_checkpoint(tmp_path):
    """A tiny byte-level BPE of its own: 256 bytes, 3 merges, <|endoftext|>."""
    vocab = _byte_vocab()
    merges = ["h e", "l l", "he ll"]
    for i, m in enumerate(merges):
        vocab[m.replace(" ", "")] = 256 + i
    vocab["<|endoftext|>"] = 259
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = load_tokenizer(tmp_path)
    assert tok.n_vocab == 260 and tok.eot_id == 259
    ids = tok.encode("hello<|endoftext|>")
    assert ids == [258, vocab["o"], 259]
    assert tok.decode(ids) == "hello<|endoftext|>"
    # the same model as a tokenizer.json (merges as "a b" strings and as pairs)
    (tmp_path / "vocab.json").unlink()
    (tmp_path / "merges.txt").unlink()
    del vocab["<|endoftext|>"]
    for form in (merges, [m.split(" ") for m in merges]):
        (tmp_path / "tokenizer.json").write_text(
            json.dumps(
                {
                    "added_tokens": [{"id": 259, "content": "<|endoftext|>", "special": True}],
                    "model": {"type": "BPE", "vocab": vocab, "merges": form},
                }
            )
        )
        assert load_tokenizer(tmp_path).encode("hello<|endoftext|>") == ids


@pytest.mark.parametrize(
    ("vocab_edit", "merges", "expected"),
    [
        ({"<|endoftext|>": None}, ["h e"], "vocabulary has no <|endoftext|> token"),
        ({}, ["h e", "x y"], "merge 2 (x y) makes a token missing from the vocabulary"),
        ({}, ["h e", "l l", "he ll", "x"], "merges.txt:5: expected two space-separated tokens"),
        ({"bad\u3042": 300}, ["h e"], "is not byte-level BPE (GPT-2) text"),
        ({"h": None}, ["h e"], "vocabulary lacks the single byte 0x68"),
    ],
)
def test_inconsistent_checkpoint_files(tmp_path, vocab_edit, merges, expected):
    vocab = _byte_vocab()
    for i, m in enumerate(["h e", "l l", "he ll"]):
        vocab[m.replace(" ", "")] = 256 + i
    vocab["<|endoftext|>"] = 259
    for k, v in vocab_edit.items():
        if v is None:
            vocab.pop(k)
        else:
            vocab[k] = v
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    with pytest.raises(TokenizerError) as exc:
        load_tokenizer(tmp_path)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


def test_missing_files(tmp_path):
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(TokenizerError, match="has vocab.json but no merges.txt; the GPT-2 "):
        load_tokenizer(tmp_path)
    (tmp_path / "merges.txt").write_text("")
    (tmp_path / "vocab.json").write_text("{oops")
    with pytest.raises(TokenizerError, match=r"vocab.json: invalid JSON at line 1 column 2"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerError, match="does not exist"):
        load_tokenizer(tmp_path / "nope")
