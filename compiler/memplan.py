"""Memory planning: where every tensor lives on each card.

Off-chip (per card, before lowering):

* **HBM** holds the tiled weight matrices, one fixed-stride block per layer (the program adds
  the stride to a base register at the end of each layer iteration), then the LM-head slice,
  then the KV cache (per layer, per local head: K^T tiles and V tiles, DFX §IV-B). HBM
  addresses interleave over all pseudo-channels every ``board.hbm.interleave_bytes``, so each
  contiguous weight stream uses the whole HBM bandwidth. Blocks are tile-aligned.
* **DDR** holds what DFX kept there (§IV-B): the host configuration block, the token buffer,
  the embeddings (WTE rows for look-up, WPE), the per-layer small parameters (LayerNorm γ/β
  and biases, one fixed-stride block per layer) and the logits written for the host.

On-chip: VRF buffers are allocated after lowering by liveness (:func:`allocate_vrf`).
Capacity overflow is a compile-time error naming the tensor, the memory and the sizes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dfx.compiler.partition import Partition
from dfx.isa.config import CoreConfig
from dfx.isa.errors import DfxError


class CapacityError(DfxError):
    """A tensor does not fit in the memory planned for it."""


CFG_FIELDS = ("prompt_len", "gen_len", "write_logits", "card_id", "n_cards")
"""The host configuration block at DDR address 0: little-endian u32 words in this order."""


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


@dataclass(frozen=True)
class Region:
    """A named block of one memory space. Per-layer regions are offsets inside a layer block."""

    name: str
    space: str
    offset: int
    size: int
    per_layer: bool = False


@dataclass
class CardMemory:
    """The off-chip memory map of one card."""

    card: int
    regions: dict[str, Region] = field(default_factory=dict)
    hbm_layer_base: int = 0
    hbm_layer_stride: int = 0
    kv_base: int = 0
    kv_layer_stride: int = 0
    ddr_layer_base: int = 0
    ddr_layer_stride: int = 0
    hbm_used: int = 0
    ddr_used: int = 0

    def addr(self, name: str) -> int:
        return self.regions[name].offset


class _Layout:
    """Bump allocator for one block."""

    def __init__(self, mem: CardMemory, space: str, align: int, per_layer: bool) -> None:
        self.mem, self.space, self.align, self.per_layer = mem, space, align, per_layer
        self.size = 0

    def add(self, name: str, size: int) -> None:
        self.size = _align(self.size, self.align)
        self.mem.regions[name] = Region(name, self.space, self.size, size, self.per_layer)
        self.size += size


def tiles_bytes(k: int, n: int, core: CoreConfig) -> int:
    """Bytes of a K x N matrix in d x l tiles (zero-padded to whole tiles)."""
    d, l = core.mpu.d, core.mpu.l  # noqa: E741
    return -(-k // d) * -(-n // l) * core.tile_bytes


def plan_card(p: Partition, card: int, core: CoreConfig) -> CardMemory:
    """Lay out card ``card``'s HBM and DDR; raises CapacityError when something does not fit."""
    s = p.slices[card]
    e, tile = p.n_embd, core.tile_bytes
    mem = CardMemory(card)
    loc = s.heads[1] * p.head_pad

    # HBM: per-layer weights.
    lw = _Layout(mem, "hbm", tile, per_layer=True)
    for name in ("wv", "wq", "wk"):
        lw.add(name, tiles_bytes(e, loc, core))
    lw.add("wproj", tiles_bytes(p.attn_width, s.proj_cols[1], core))
    lw.add("wfc", tiles_bytes(e, s.fc_cols[1], core))
    lw.add("wfc2", tiles_bytes(4 * e, s.proj_cols[1], core))
    mem.hbm_layer_stride = _align(lw.size, tile)
    mem.hbm_layer_base = 0
    top = mem.hbm_layer_stride * p.n_layer
    mem.regions["lm_head"] = Region("lm_head", "hbm", top, tiles_bytes(e, s.vocab_cols[1], core))
    top = _align(top + mem.regions["lm_head"].size, tile)
    # HBM: KV cache (per layer block, per local head).
    kv = _Layout(mem, "hbm", tile, per_layer=True)
    for hh in range(s.heads[1]):
        kv.add(f"k{hh}", tiles_bytes(p.head_pad, p.ctx_pad, core))
        kv.add(f"v{hh}", tiles_bytes(p.ctx_pad, p.head_pad, core))
    mem.kv_base = top
    mem.kv_layer_stride = _align(kv.size, tile)
    mem.hbm_used = top + mem.kv_layer_stride * p.n_layer
    hbm_cap = core.b.hbm.capacity_bytes
    if mem.hbm_used > hbm_cap:
        biggest = max((r for r in mem.regions.values() if r.space == "hbm"), key=lambda r: r.size)
        raise CapacityError(
            f"card {card}: HBM overflow: the model needs {mem.hbm_used:,} bytes of HBM "
            f"(largest tensor '{biggest.name}' {biggest.size:,} bytes"
            f"{' per layer' if biggest.per_layer else ''}) but board {core.b.name} has "
            f"{hbm_cap:,}; use more cards"
        )

    # DDR.
    g = _Layout(mem, "ddr", 64, per_layer=False)
    g.add("cfg", 4 * len(CFG_FIELDS))
    g.add("tokens", 4 * p.ctx_pad)
    g.add("logits", 2 * p.vocab_pad * p.ctx_pad)
    g.add("wte", 2 * p.vocab * e)
    g.add("wpe", 2 * p.n_ctx * e)
    g.add("ln_f.g", 2 * e)
    g.add("ln_f.b", 2 * e)
    mem.ddr_layer_base = _align(g.size, 64)
    lp = _Layout(mem, "ddr", 64, per_layer=True)
    for name, n in (("ln1.g", e), ("ln1.b", e), ("ln2.g", e), ("ln2.b", e),
                    ("bv", loc), ("bq", loc), ("bk", loc), ("bproj", s.proj_cols[1]),
                    ("bfc", s.fc_cols[1]), ("bfc2", s.proj_cols[1])):
        lp.add(name, 2 * n)
    mem.ddr_layer_stride = _align(lp.size, 64)
    mem.ddr_used = mem.ddr_layer_base + mem.ddr_layer_stride * p.n_layer
    ddr_cap = core.b.ddr.capacity_bytes
    if mem.ddr_used > ddr_cap:
        raise CapacityError(
            f"card {card}: DDR overflow: embeddings, logits and parameters need "
            f"{mem.ddr_used:,} bytes but board {core.b.name} has {ddr_cap:,}"
        )
    return mem


# ---------------------------------------------------------------------------------------------
# VRF allocation by liveness


@dataclass(frozen=True)
class Use:
    """One reference to VRF buffer ``buf`` at instruction ``pc`` (``write`` if it defines it)."""

    buf: str
    pc: int
    write: bool


def allocate_vrf(sizes: dict[str, int], uses: Iterable[Use], loops: Iterable[tuple[int, int]],
                 capacity: int, card: int) -> dict[str, int]:
    """First-fit allocation of VRF buffers (sizes in vectors) by live range.

    A buffer's live range runs from its first to its last use; a buffer that is used inside a
    loop [start, end] and is live across iterations (used outside it, or read before written
    in it) is live for the whole loop.
    """
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    by_buf: dict[str, list[Use]] = {}
    for u in uses:
        first[u.buf] = min(first.get(u.buf, u.pc), u.pc)
        last[u.buf] = max(last.get(u.buf, u.pc), u.pc)
        by_buf.setdefault(u.buf, []).append(u)
    loops = sorted(loops)
    changed = True
    while changed:
        changed = False
        for buf, us in by_buf.items():
            for ls, le in loops:
                inside = [u for u in us if ls <= u.pc <= le]
                if not inside:
                    continue
                outside = first[buf] < ls or last[buf] > le
                first_inside = min(inside, key=lambda u: (u.pc, u.write))
                carried = outside or not first_inside.write
                if carried and (first[buf] > ls or last[buf] < le):
                    first[buf], last[buf] = min(first[buf], ls), max(last[buf], le)
                    changed = True
    order = sorted(first, key=lambda b: (first[b], -sizes[b]))
    placed: list[tuple[int, int, int, int, str]] = []  # (start, end, lo, hi, name)
    addr: dict[str, int] = {}
    for buf in order:
        lo_pc, hi_pc, size = first[buf], last[buf], sizes[buf]
        busy = sorted((a, b) for s, e, a, b, _ in placed if not (e < lo_pc or s > hi_pc))
        at = 0
        for a, b in busy:
            if at + size <= a:
                break
            at = max(at, b)
        if at + size > capacity:
            live = sum(b - a for a, b in busy)
            raise CapacityError(
                f"card {card}: VRF overflow: cannot place '{buf}' ({size} vectors) at "
                f"instruction {lo_pc}: {live} of {capacity} vectors are live there"
            )
        addr[buf] = at
        placed.append((lo_pc, hi_pc, at, at + size, buf))
    return addr
