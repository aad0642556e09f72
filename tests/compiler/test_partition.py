"""Partitioning (compiler/partition.py, docs/compiler.md "Partitioning"): heads, column and
vocabulary slices cover everything exactly once, vector-aligned and as evenly as possible (heads
unevenly where they do not divide), and the errors say what works."""

from __future__ import annotations

import pytest

from dfx.compiler.frontend.presets import PRESETS
from dfx.compiler.partition import Partition, PartitionError, even_split, partition
from dfx.isa.config import load_core

U280 = load_core("dfx-u280")
TINY = load_core("tiny")


def dims(n_layer: int, n_embd: int, n_head: int, n_ctx: int, vocab: int) -> dict[str, int]:
    return {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "n_ctx": n_ctx,
            "vocab": vocab}


def preset_dims(name: str) -> dict[str, int]:
    c = PRESETS[name].config
    return dims(c.n_layer, c.n_embd, c.n_head, c.n_ctx, c.vocab_size)


@pytest.mark.parametrize("n", [0, 1, 5, 64, 100, 6283])
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7, 64])
def test_even_split_covers_once(n: int, parts: int) -> None:
    out = even_split(n, parts)
    assert len(out) == parts
    assert [s for s, _ in out] == [sum(c for _, c in out[:i]) for i in range(parts)]
    assert sum(c for _, c in out) == n
    sizes = [c for _, c in out]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first cards take the remainder


def check_cover(ranges: list[tuple[int, int]], total: int, align: int, what: str) -> None:
    """Contiguous ranges (start, count) in card order that tile [0, total) exactly once."""
    pos = 0
    for c, (start, count) in enumerate(ranges):
        assert start == pos, f"{what}: card {c} starts at {start}, expected {pos}"
        assert count >= 0
        assert start % align == 0 and count % align == 0, f"{what}: card {c} not aligned"
        pos += count
    assert pos == total, f"{what}: slices cover {pos} of {total}"


CASES = [
    ("gpt2-tiny", U280, 1), ("gpt2-tiny", U280, 2), ("gpt2-tiny", U280, 4),
    ("gpt2-mini", U280, 4), ("gpt2", U280, 1), ("gpt2", U280, 3), ("gpt2", U280, 4),
    ("gpt2", U280, 12), ("gpt2-medium", U280, 4), ("gpt2-large", U280, 4),
    ("gpt2-xl", U280, 5), ("gpt2-xl", U280, 4), ("gpt2-xl", U280, 3), ("gpt2-xl-24h", U280, 4),
    ("gpt2-xl-24h", U280, 8), ("gpt2-tiny", TINY, 4), ("gpt2-tiny", U280, 3), ("gpt2", TINY, 2),
    ("gpt2", U280, 5), ("gpt2", U280, 8),
]


@pytest.mark.parametrize("name,core,cards", CASES,
                         ids=[f"{n}-{c.name}-{k}" for n, c, k in CASES])
def test_slices_cover_everything_once(name: str, core, cards: int) -> None:
    dm = preset_dims(name)
    p = partition(dm, cards, core)
    d = core.mpu.d
    assert isinstance(p, Partition)
    assert (p.cards, p.d, p.l) == (cards, d, core.mpu.l)
    assert p.head_dim == dm["n_embd"] // dm["n_head"]
    # padding: whole d-vectors, and no more than needed
    for padded, real in ((p.head_pad, p.head_dim), (p.ctx_pad, dm["n_ctx"]),
                         (p.vocab_pad, dm["vocab"])):
        assert padded % d == 0 and real <= padded < real + d
    assert p.ctx_pad % p.l == 0
    assert [s.card for s in p.slices] == list(range(cards))
    check_cover([s.heads for s in p.slices], dm["n_head"], 1, "heads")
    # heads as even as possible, the first n_head % cards cards taking one more
    base, extra = divmod(dm["n_head"], cards)
    assert [s.heads[1] for s in p.slices] == [base + (c < extra) for c in range(cards)]
    assert p.max_heads_per_card == base + (extra > 0)
    check_cover([s.proj_cols for s in p.slices], dm["n_embd"], d, "proj columns")
    check_cover([s.fc_cols for s in p.slices], 4 * dm["n_embd"], d, "fc columns")
    check_cover([s.vocab_cols for s in p.slices], p.vocab_pad, d, "vocabulary")
    for kind in ("proj_cols", "fc_cols", "vocab_cols"):  # as even as whole vectors allow
        counts = [getattr(s, kind)[1] for s in p.slices]
        assert max(counts) - min(counts) <= d
    assert p.attn_width == dm["n_head"] * p.head_pad
    for c, s in enumerate(p.slices):
        assert p.local_attn_width(c) == s.heads[1] * p.head_pad


def test_small_model_may_leave_a_card_without_columns() -> None:
    """gpt2-tiny (E = 64 = one d-vector on dfx-u280): one card computes the projection."""
    p = partition(preset_dims("gpt2-tiny"), 4, U280)
    assert [s.proj_cols for s in p.slices] == [(0, 64), (64, 0), (64, 0), (64, 0)]
    assert [s.fc_cols[1] for s in p.slices] == [64] * 4
    assert p.head_pad == 64 and p.head_dim == 16  # each head padded to a whole vector


@pytest.mark.parametrize("heads,cards,split", [
    (25, 4, [7, 6, 6, 6]),  # the real GPT-2 XL on DFX's four cards
    (5, 4, [2, 1, 1, 1]),
    (5, 2, [3, 2]),
    (4, 3, [2, 1, 1]),
    (12, 5, [3, 3, 2, 2, 2]),
    (7, 7, [1] * 7),
])
def test_uneven_heads(heads: int, cards: int, split: list[int]) -> None:
    """Heads that do not divide by the card count: contiguous, the first cards take one more."""
    p = partition(dims(1, 64 * heads, heads, 64, 1000), cards, U280)
    assert [s.heads[1] for s in p.slices] == split
    assert [s.heads[0] for s in p.slices] == [sum(split[:c]) for c in range(cards)]
    assert p.attn_width == heads * p.head_pad  # the gathered vector is laid out as on one card


@pytest.mark.parametrize("heads,cards,works", [
    (4, 5, "1 to 4"),
    (4, 64, "1 to 4"),  # far too many cards
    (25, 26, "1 to 25"),
    (1, 2, "1"),
])
def test_more_cards_than_heads(heads: int, cards: int, works: str) -> None:
    with pytest.raises(PartitionError) as e:
        partition(dims(1, 64 * heads, heads, 64, 1000), cards, U280)
    msg = str(e.value)
    assert f"{heads} attention heads cannot be split over {cards} cards" in msg
    assert "every card needs at least one head" in msg
    assert msg.endswith(f"card counts that work: {works}")
    assert "\n" not in msg
    partition(dims(1, 64 * heads, heads, 64, 1000), heads, U280)  # the largest count works


@pytest.mark.parametrize("dm,cards,needle", [
    (dims(1, 64, 4, 64, 1000), 0, "--cards must be at least 1, got 0"),
    (dims(1, 64, 4, 64, 1000), -2, "--cards must be at least 1, got -2"),
    (dims(1, 96, 4, 64, 1000), 1, "n_embd=96 must be a multiple of the core's d=64"),
    (dims(1, 100, 3, 64, 1000), 1, "n_embd=100 is not divisible by n_head=3"),
])
def test_bad_dimensions(dm: dict[str, int], cards: int, needle: str) -> None:
    with pytest.raises(PartitionError, match=needle):
        partition(dm, cards, U280)


def test_card_owns_heads_in_order() -> None:
    p = partition(preset_dims("gpt2"), 4, U280)
    assert [s.heads for s in p.slices] == [(0, 3), (3, 3), (6, 3), (9, 3)]
    # 50257 -> 50304 padded = 786 vectors: 197, 197, 196, 196
    assert [s.vocab_cols[1] // 64 for s in p.slices] == [197, 197, 196, 196]
