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

Quantized layers (``dfx compile --quant``, :class:`QuantPlan`) keep the same regions, but a
region then holds the packed BCQ stream(s) of ``lutmv`` (docs/lutgemm.md; LUT-GEMM §3) instead
of d x l tiles: one stream per chunk of at most ``core.lutgemm.max_rows`` output rows, each
``stream_bytes`` long (a multiple of 32 bytes, so every chunk stays 32-byte aligned).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dfx.compiler.partition import Partition
from dfx.isa.config import CoreConfig
from dfx.isa.errors import DfxError
from dfx.isa.golden.lutgemm import SECTION_ALIGN, stream_bytes

if TYPE_CHECKING:
    from dfx.compiler.quant import QuantSpec


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


# ---------------------------------------------------------------------------------------------
# Quantized (LUT-GEMM) weight regions

#: Quantizable Conv1D kinds of a decoder layer and the HBM regions holding each (c_attn's Q,
#: K and V columns are three regions), plus the LM head.
LAYER_LINEARS = {"attn.c_attn": ("wq", "wk", "wv"), "attn.c_proj": ("wproj",),
                 "mlp.c_fc": ("wfc",), "mlp.c_proj": ("wfc2",)}


@dataclass(frozen=True)
class LutGeom:
    """The ``lutmv`` streams of one region: ``n`` rows (outputs) of ``k`` inputs in groups of
    ``g``, ``q`` planes, lane words of ``slice`` inputs, at most ``rows`` rows per stream."""

    k: int
    n: int
    g: int
    q: int
    slice: int
    rows: int

    @property
    def ng(self) -> int:
        return self.k // self.g

    @property
    def gs(self) -> int:
        return self.g // self.slice

    def chunks(self) -> list[tuple[int, int, int]]:
        """``(first row, rows, byte offset)`` of each stream in the region."""
        out, off = [], 0
        for r0 in range(0, self.n, self.rows):
            cnt = min(self.rows, self.n - r0)
            out.append((r0, cnt, off))
            off += stream_bytes(cnt, self.ng, self.gs, self.q, self.slice)
        return out

    @property
    def bytes(self) -> int:
        return sum(stream_bytes(c, self.ng, self.gs, self.q, self.slice)
                   for _, c, _ in self.chunks())


@dataclass(frozen=True)
class QuantPlan:
    """Which Conv1D layers are quantized and their group sizes.

    ``groups``: kind (a key of :data:`LAYER_LINEARS` or ``lm_head``) -> g, for every kind
    quantized in at least one layer. ``layer_kinds[i]``: the kinds quantized in layer i.
    Layers with the same kinds form one *variant*; consecutive layers of one variant run in
    one hardware loop (DFX §IV-A), each variant with its own layer-block layout."""

    spec: QuantSpec
    groups: dict[str, int]
    slice: int
    rows: int
    layer_kinds: tuple[frozenset[str], ...] = ()

    @property
    def variants(self) -> list[frozenset[str]]:
        """Distinct layer configurations, in order of first appearance."""
        out: list[frozenset[str]] = []
        for kinds in self.layer_kinds:
            if kinds not in out:
                out.append(kinds)
        return out

    def geom(self, kind: str, k: int, n: int, variant: int = 0) -> LutGeom | None:
        g = self.groups.get(kind)
        if g is None or n == 0:
            return None
        if kind != "lm_head" and self.layer_kinds and kind not in self.variants[variant]:
            return None
        return LutGeom(k, n, g, self.spec.q, self.slice, self.rows)


def layer_runs(n_layer: int, quant: QuantPlan | None) -> list[tuple[int, int, int]]:
    """``(variant, first layer, layers)`` of each run of consecutive same-variant layers."""
    if quant is None or not quant.layer_kinds:
        return [(0, 0, n_layer)]
    variants = quant.variants
    runs: list[tuple[int, int, int]] = []
    for i, kinds in enumerate(quant.layer_kinds):
        v = variants.index(kinds)
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((v, i, 1))
    return runs


def region_name(name: str, variant: int) -> str:
    """A layer region's name in layer variant ``variant`` (variant 0: the plain name)."""
    return name if variant == 0 else f"{name}.v{variant}"


def quant_plan(spec: QuantSpec, p: Partition, core: CoreConfig) -> QuantPlan:
    """Check ``spec`` against the model and the core's LUT-GEMM unit; one-line QuantErrors
    name the layer (docs/compiler.md, quantized compilation)."""
    from dfx.compiler.quant import QuantError

    lc = core.lutgemm
    if lc is None:
        raise QuantError(f"quant {spec.text()}: core {core.name} has no LUT-GEMM unit")
    if spec.q > lc.max_q:
        raise QuantError(f"quant {spec.text()}: q = {spec.q} exceeds the {lc.max_q} bit-planes "
                         f"of core {core.name}'s LUT-GEMM unit (core.lutgemm.max_q)")
    if core.tile_bytes % SECTION_ALIGN:
        raise QuantError(f"quant: core {core.name}: weight regions are aligned to tiles of "
                         f"{core.tile_bytes} bytes, not to the {SECTION_ALIGN} bytes of lutmv")
    rows = (lc.max_rows // p.d) * p.d
    if rows < 1:
        raise QuantError(f"quant: core {core.name}: core.lutgemm.max_rows = {lc.max_rows} is "
                         f"less than one {p.d}-element vector")
    e = p.n_embd
    ks = {"attn.c_attn": e, "attn.c_proj": p.attn_width, "mlp.c_fc": e, "mlp.c_proj": 4 * e}
    groups: dict[str, int] = {}
    layer_kinds = tuple(frozenset(kind for kind in LAYER_LINEARS
                                  if spec.quantizes(f"h.{i}.{kind}"))
                        for i in range(p.n_layer))
    for kind in LAYER_LINEARS:
        on = [i for i in range(p.n_layer) if kind in layer_kinds[i]]
        if not on:
            continue
        layer = f"h.{on[0]}.{kind}"
        if kind == "attn.c_proj" and p.head_pad != p.head_dim:
            raise QuantError(
                f"quant {spec.text()}: layer {layer}: heads of {p.head_dim} are padded to "
                f"{p.head_pad} inputs on core {core.name}; exclude=h.*.attn.c_proj keeps it "
                "in FP16")
        groups[kind] = _group(spec, ks[kind], layer, core)
    if spec.quantizes("lm_head"):
        groups["lm_head"] = _group(spec, e, "lm_head", core)
    return QuantPlan(spec, groups, lc.slice, rows, layer_kinds)


def _group(spec: QuantSpec, k: int, layer: str, core: CoreConfig) -> int:
    from dfx.compiler.quant import QuantError

    lc = core.lutgemm
    g = spec.group(k, lc.slice, layer)
    if g > lc.max_group:
        raise QuantError(f"quant {spec.text()}: layer {layer}: group of {g} inputs exceeds "
                         f"core {core.name}'s core.lutgemm.max_group = {lc.max_group}")
    return g


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
    lut: dict[str, LutGeom] = field(default_factory=dict)  # region -> lutmv streams
    variant_strides: list[int] = field(default_factory=list)  # HBM layer block per variant
    layer_offsets: list[int] = field(default_factory=list)  # layer block i - hbm_layer_base
    layer_variant: list[int] = field(default_factory=list)  # variant of layer i

    def layer_addr(self, layer: int) -> int:
        """HBM address of layer ``layer``'s weight block."""
        return self.hbm_layer_base + self.layer_offsets[layer]

    @property
    def weight_bytes(self) -> int:
        """HBM bytes of this card's weights (all layers and the LM head; no KV cache)."""
        return self.kv_base

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


def plan_card(p: Partition, card: int, core: CoreConfig, quant: QuantPlan | None = None
              ) -> CardMemory:
    """Lay out card ``card``'s HBM and DDR; raises CapacityError when something does not fit.
    With ``quant``, quantized regions are sized for their ``lutmv`` streams."""
    s = p.slices[card]
    e, tile = p.n_embd, core.tile_bytes
    mem = CardMemory(card)
    loc = s.heads[1] * p.head_pad

    def weight(name: str, kind: str, k: int, n: int, variant: int = 0) -> int:
        geom = quant.geom(kind, k, n, variant) if quant is not None else None
        if geom is None:
            return tiles_bytes(k, n, core)
        mem.lut[name] = geom
        return geom.bytes

    # HBM: per-layer weights, one block layout per layer variant (docs/compiler.md).
    n_var = len(quant.variants) if quant is not None and quant.layer_kinds else 1
    for v in range(n_var):
        lw = _Layout(mem, "hbm", tile, per_layer=True)
        for name, kind, k, n in (("wv", "attn.c_attn", e, loc), ("wq", "attn.c_attn", e, loc),
                                 ("wk", "attn.c_attn", e, loc),
                                 ("wproj", "attn.c_proj", p.attn_width, s.proj_cols[1]),
                                 ("wfc", "mlp.c_fc", e, s.fc_cols[1]),
                                 ("wfc2", "mlp.c_proj", 4 * e, s.proj_cols[1])):
            rn = region_name(name, v)
            lw.add(rn, weight(rn, kind, k, n, v))
        mem.variant_strides.append(_align(lw.size, tile))
    mem.hbm_layer_stride = mem.variant_strides[0]
    mem.hbm_layer_base = 0
    for v, first, count in layer_runs(p.n_layer, quant):
        mem.layer_offsets += [sum(mem.variant_strides[mem.layer_variant[i]]
                                  for i in range(first)) + j * mem.variant_strides[v]
                              for j in range(count)]
        mem.layer_variant += [v] * count
    top = sum(mem.variant_strides[v] for v in mem.layer_variant)
    mem.regions["lm_head"] = Region("lm_head", "hbm", top,
                                    weight("lm_head", "lm_head", e, s.vocab_cols[1]))
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
