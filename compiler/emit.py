"""Emission: per-card weight images in the memory plan's layout, programs and the binary.

Weight matrices are cut to the card's partition (heads / columns / vocabulary), padded (each
head to a whole number of d-vectors, with zero weights) and tiled into d x l tiles
(docs/numerics.md, tile layout). Biases and LayerNorm parameters go into the per-layer DDR
block, the embeddings into DDR, the KV cache is a zero-filled HBM region.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dfx.compiler.memplan import CFG_FIELDS, CardMemory
from dfx.compiler.partition import Partition
from dfx.isa.container import CardImage, Segment
from dfx.isa.golden.ops import tile_matrix

Weights = Callable[[str], np.ndarray]


def _heads_cols(p: Partition, first: int, count: int, part: int) -> np.ndarray:
    """Column indices of c_attn (Q/K/V part ``part``) for heads first..first+count, padded.

    Padding positions get index -1 (a zero column)."""
    cols = np.full(count * p.head_pad, -1, dtype=np.int64)
    for i in range(count):
        h = first + i
        cols[i * p.head_pad: i * p.head_pad + p.head_dim] = (
            part * p.n_embd + h * p.head_dim + np.arange(p.head_dim))
    return cols


def _take_cols(w: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.zeros(w.shape[:-1] + (cols.size,), dtype=np.float16)
    ok = cols >= 0
    out[..., ok] = w[..., cols[ok]]
    return out


def _padded_head_rows(p: Partition, w: np.ndarray) -> np.ndarray:
    """Rows of c_proj re-laid out for the padded attention vector (H x head_pad rows)."""
    if p.head_pad == p.head_dim:
        return w
    out = np.zeros((p.attn_width, w.shape[1]), dtype=np.float16)
    for h in range(p.n_head):
        out[h * p.head_pad: h * p.head_pad + p.head_dim] = w[h * p.head_dim:(h + 1) * p.head_dim]
    return out


def _tiles(w: np.ndarray, p: Partition) -> np.ndarray:
    return tile_matrix(w, p.d, p.l).reshape(-1).view(np.uint8)


class _Block:
    """A byte image of one memory block, filled region by region."""

    def __init__(self, mem: CardMemory, size: int) -> None:
        self.mem, self.buf = mem, np.zeros(size, dtype=np.uint8)

    def put(self, region: str, data: np.ndarray) -> None:
        r = self.mem.regions[region]
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if raw.size > r.size:
            raise AssertionError(f"{region}: {raw.size} bytes > planned {r.size}")
        self.buf[r.offset: r.offset + raw.size] = raw


def card_segments(p: Partition, mem: CardMemory, weights: Weights | None) -> list[Segment]:
    """The initial HBM and DDR contents of card ``mem.card`` (no weights: only the KV fill)."""
    c = mem.card
    s = p.slices[c]
    segs: list[Segment] = []
    kv_bytes = mem.kv_layer_stride * p.n_layer
    segs.append(Segment("hbm", mem.kv_base, length=kv_bytes, fill=0))
    if weights is None:
        return segs
    e = p.n_embd
    first, count = s.heads
    q_cols, k_cols, v_cols = (_heads_cols(p, first, count, part) for part in (0, 1, 2))
    c0, cn = s.proj_cols
    f0, fn = s.fc_cols
    for layer in range(p.n_layer):
        w = lambda name: weights(f"h.{layer}.{name}")  # noqa: E731,B023
        hbm = _Block(mem, mem.hbm_layer_stride)
        attn_w, attn_b = w("attn.c_attn.weight"), w("attn.c_attn.bias")
        hbm.put("wq", _tiles(_take_cols(attn_w, q_cols), p))
        hbm.put("wk", _tiles(_take_cols(attn_w, k_cols), p))
        hbm.put("wv", _tiles(_take_cols(attn_w, v_cols), p))
        hbm.put("wproj", _tiles(_padded_head_rows(p, w("attn.c_proj.weight"))[:, c0:c0 + cn], p))
        hbm.put("wfc", _tiles(w("mlp.c_fc.weight")[:, f0:f0 + fn], p))
        hbm.put("wfc2", _tiles(w("mlp.c_proj.weight")[:, c0:c0 + cn], p))
        segs.append(Segment("hbm", mem.hbm_layer_base + layer * mem.hbm_layer_stride,
                            hbm.buf))
        ddr = _Block(mem, mem.ddr_layer_stride)
        for region, name in (("ln1.g", "ln_1.weight"), ("ln1.b", "ln_1.bias"),
                             ("ln2.g", "ln_2.weight"), ("ln2.b", "ln_2.bias")):
            ddr.put(region, w(name))
        ddr.put("bq", _take_cols(attn_b, q_cols))
        ddr.put("bk", _take_cols(attn_b, k_cols))
        ddr.put("bv", _take_cols(attn_b, v_cols))
        ddr.put("bproj", w("attn.c_proj.bias")[c0:c0 + cn])
        ddr.put("bfc", w("mlp.c_fc.bias")[f0:f0 + fn])
        ddr.put("bfc2", w("mlp.c_proj.bias")[c0:c0 + cn])
        segs.append(Segment("ddr", mem.ddr_layer_base + layer * mem.ddr_layer_stride, ddr.buf))
    v0, vn = s.vocab_cols
    head = weights("lm_head.weight")  # [V, E]
    cols = np.arange(v0, v0 + vn)
    lm = np.zeros((e, vn), dtype=np.float16)
    ok = cols < p.vocab
    lm[:, ok] = head[cols[ok]].T
    segs.append(Segment("hbm", mem.addr("lm_head"), _tiles(lm, p)))
    for region, name in (("wte", "wte.weight"), ("wpe", "wpe.weight"), ("ln_f.g", "ln_f.weight"),
                         ("ln_f.b", "ln_f.bias")):
        data = np.ascontiguousarray(weights(name), dtype=np.float16)
        segs.append(Segment("ddr", mem.addr(region), data.reshape(-1).view(np.uint8)))
    return segs


def card_symbols(p: Partition, mem: CardMemory) -> dict[str, dict]:
    """Where the host runtime finds the configuration block, tokens and logits."""
    def sym(name: str, **extra: int | list[str]) -> dict:
        r = mem.regions[name]
        return {"space": r.space, "addr": r.offset, "bytes": r.size, **extra}

    return {
        "cfg": sym("cfg", fields=list(CFG_FIELDS)),
        "tokens": sym("tokens", capacity=p.n_ctx),
        "logits": sym("logits", row_elements=p.vocab_pad, vocab=p.vocab),
        "kv_cache": {"space": "hbm", "addr": mem.kv_base,
                     "bytes": mem.kv_layer_stride * p.n_layer},
        "weights": {"space": "hbm", "addr": 0, "bytes": mem.kv_base},
    }


def card_image(program: bytes, segments: list[Segment], debug: list[tuple[int, str]],
               symbols: dict) -> CardImage:
    return CardImage(program=program, segments=segments, debug=debug, symbols=symbols)
