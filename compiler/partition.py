"""Partitioning across cards, as DFX does it (§I-B "intra-layer model parallelism").

* Attention is split by heads, contiguously and as evenly as possible: card c owns
  ``H // N + (1 if c < H % N else 0)`` heads (25 heads on 4 cards: 7/6/6/6; DFX itself
  retrained GPT-2 1.5B with 24 heads to split it evenly, the real checkpoint has 25). Every
  card must own at least one head.
* FC layers (attention output projection, both FFN layers) are split by output columns, in
  whole d-element vectors (as evenly as possible; a small model may leave a card without
  columns), so every card's slice is vector-aligned and the all-gathered vector is laid out
  exactly as on one card.
* The LM head is split by vocabulary the same way; every card all-gathers the logits and takes
  the arg-max itself, so all cards agree on the next token.

Each head is padded to a whole number of d-element vectors (``head_pad``); the padding columns
carry zero weights, so they do not change any result. Because every output element is computed
by the same instruction sequence whatever N is, results on 1, 2 and 4 cards are bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfx.isa.config import CoreConfig
from dfx.isa.errors import DfxError


class PartitionError(DfxError):
    """The model cannot be split across the requested cards on this core."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def even_split(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``n`` units into ``parts`` contiguous (start, count) ranges, sizes differing by ≤ 1."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        count = base + (1 if p < extra else 0)
        out.append((start, count))
        start += count
    return out


@dataclass(frozen=True)
class CardSlices:
    """What card ``card`` owns. Column ranges are in elements and multiples of d."""

    card: int
    heads: tuple[int, int]  # (first head, number of heads)
    proj_cols: tuple[int, int]  # attention c_proj and FFN c_proj output columns
    fc_cols: tuple[int, int]  # FFN c_fc output columns
    vocab_cols: tuple[int, int]  # LM head output columns (padded vocabulary)


@dataclass(frozen=True)
class Partition:
    """The split of one model over ``cards`` cards of core ``core``."""

    cards: int
    d: int
    l: int  # noqa: E741 - the paper's name
    n_layer: int
    n_embd: int
    n_head: int
    head_dim: int
    head_pad: int  # head_dim rounded up to a multiple of d
    n_ctx: int
    ctx_pad: int  # n_ctx rounded up to a multiple of d (and of l)
    vocab: int
    vocab_pad: int  # vocab rounded up to a multiple of d
    slices: tuple[CardSlices, ...]

    @property
    def attn_width(self) -> int:
        """Length of the all-gathered attention output (all heads, padded)."""
        return self.n_head * self.head_pad

    @property
    def max_heads_per_card(self) -> int:
        """Heads of the busiest card (the first ``n_head % cards`` cards own one more)."""
        return max(s.heads[1] for s in self.slices)

    def local_attn_width(self, card: int) -> int:
        """Length of card ``card``'s part of the attention vector (its heads, padded)."""
        return self.slices[card].heads[1] * self.head_pad

    def vec(self, elements: int) -> int:
        """Number of d-wide vectors holding ``elements`` FP16 values."""
        return _ceil_div(elements, self.d)


def partition(dims: dict[str, int], cards: int, core: CoreConfig) -> Partition:
    """Split a GPT-2 graph's dimensions over ``cards`` cards; errors explain what would work."""
    d, l = core.mpu.d, core.mpu.l  # noqa: E741
    n_layer, e, h = dims["n_layer"], dims["n_embd"], dims["n_head"]
    n_ctx, vocab = dims["n_ctx"], dims["vocab"]
    if cards < 1:
        raise PartitionError(f"--cards must be at least 1, got {cards}")
    if d % l:
        raise PartitionError(f"core {core.name}: l={l} must divide d={d} (the vectorizer packs "
                             "l lanes into d-wide vectors)")
    if e % h:
        raise PartitionError(f"n_embd={e} is not divisible by n_head={h}")
    if e % d:
        raise PartitionError(f"n_embd={e} must be a multiple of the core's d={d} "
                             f"(core {core.name})")
    if cards > h:
        raise PartitionError(
            f"{h} attention heads cannot be split over {cards} cards (every card needs at "
            f"least one head; heads are split across cards as in DFX): card counts that work: "
            f"{'1' if h == 1 else f'1 to {h}'}"
        )
    e_vec = e // d
    head_dim = e // h
    head_pad = _ceil_div(head_dim, d) * d
    ctx_pad = _ceil_div(n_ctx, d) * d
    vocab_pad = _ceil_div(vocab, d) * d
    heads = even_split(h, cards)
    proj = even_split(e_vec, cards)
    fc = even_split(4 * e_vec, cards)
    voc = even_split(vocab_pad // d, cards)
    slices = tuple(
        CardSlices(
            card=c,
            heads=heads[c],
            proj_cols=(proj[c][0] * d, proj[c][1] * d),
            fc_cols=(fc[c][0] * d, fc[c][1] * d),
            vocab_cols=(voc[c][0] * d, voc[c][1] * d),
        )
        for c in range(cards)
    )
    return Partition(cards, d, l, n_layer, e, h, head_dim, head_pad, n_ctx, ctx_pad, vocab,
                     vocab_pad, slices)
