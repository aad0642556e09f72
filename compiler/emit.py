"""Emission: per-card weight images in the memory plan's layout, programs and the binary.

Weight matrices are cut to the card's partition (heads / columns / vocabulary), padded (each
head to a whole number of d-vectors, with zero weights) and tiled into d x l tiles
(docs/numerics.md, tile layout). Biases and LayerNorm parameters go into the per-layer DDR
block, the embeddings into DDR, the KV cache is a zero-filled HBM region.

Quantized layers (:class:`~dfx.compiler.memplan.QuantPlan`): each full Conv1D matrix is
quantized once (:func:`dfx.compiler.quant.quantize`; columns are quantized independently, so
the result does not depend on the card count), then each card's columns are cut from the BCQ
matrix, its scales rounded to FP16 and packed into ``lutmv`` streams (docs/lutgemm.md; LUT-GEMM
§3), one per chunk of rows. Padding columns (heads, vocabulary) are exact zeros (alpha = z = 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dfx.compiler.memplan import CFG_FIELDS, CardMemory, LutGeom, QuantPlan, region_name
from dfx.compiler.partition import Partition
from dfx.isa.container import Segment
from dfx.isa.golden import lutgemm as glut
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


def _bcq_cols(w: glut.Bcq, cols: np.ndarray) -> glut.Bcq:
    """Columns ``cols`` of a BCQ matrix; index -1 gives an exact zero column."""
    ok = cols >= 0
    c = np.where(ok, cols, 0)
    signs = w.signs[:, :, c] & ok
    alpha = np.where(ok, w.alpha[:, :, c], 0.0)
    z = np.where(ok, w.z[:, c], 0.0)
    return glut.Bcq(np.ascontiguousarray(signs), alpha, z, w.g)


def lut_streams(w: glut.Bcq, geom: LutGeom, layer: str) -> np.ndarray:
    """The packed ``lutmv`` streams of one region (``w``: the card's columns)."""
    from dfx.compiler.quant import QuantError

    try:
        w16 = w.to_fp16()
    except ValueError as e:
        raise QuantError(f"quant: layer {layer}: {e}") from None
    out = np.zeros(geom.bytes, dtype=np.uint8)
    for r0, cnt, off in geom.chunks():
        part = glut.Bcq(np.ascontiguousarray(w16.signs[:, :, r0:r0 + cnt]),
                        w16.alpha[:, :, r0:r0 + cnt], w16.z[:, r0:r0 + cnt], w16.g)
        stream = glut.pack(part, geom.slice)
        out[off:off + stream.size] = stream
    return out


def _quantize(quant: QuantPlan, kind: str, w: np.ndarray, layer: str) -> glut.Bcq:
    """BCQ of a whole ``[K, N]`` Conv1D matrix (float64 scales), errors naming the layer."""
    from dfx.compiler.quant import QuantError, quantize

    try:
        return quantize(np.asarray(w, dtype=np.float64), quant.spec, quant.groups[kind])
    except QuantError as e:
        raise QuantError(f"layer {layer}: {e}") from None


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


def card_segments(p: Partition, memories: list[CardMemory], weights: Weights | None,
                  quant: QuantPlan | None = None) -> list[list[Segment]]:
    """The initial HBM and DDR contents of every card (no weights: only the KV-cache fill).

    Each tensor is read (and, with ``quant``, quantized) once and cut for all cards, so a lazily
    generated model is generated once whatever the card count."""
    segs: list[list[Segment]] = []
    for mem in memories:
        kv_bytes = mem.kv_layer_stride * p.n_layer
        segs.append([Segment("hbm", mem.kv_base, length=kv_bytes, fill=0)])
    if weights is None:
        return segs
    groups = quant.groups if quant is not None else {}
    cols = [tuple(_heads_cols(p, s.heads[0], s.heads[1], part) for part in (0, 1, 2))
            for s in p.slices]
    for layer in range(p.n_layer):
        w = {name: weights(f"h.{layer}.{name}") for name in LAYER_TENSORS}
        proj_rows = _padded_head_rows(p, w["attn.c_proj.weight"])
        bcq: dict[str, glut.Bcq] = {}
        kinds = quant.layer_kinds[layer] if quant is not None else frozenset()
        for kind, mat in (("attn.c_attn", w["attn.c_attn.weight"]), ("attn.c_proj", proj_rows),
                          ("mlp.c_fc", w["mlp.c_fc.weight"]),
                          ("mlp.c_proj", w["mlp.c_proj.weight"])):
            if quant is not None and kind in kinds:
                bcq[kind] = _quantize(quant, kind, mat, f"h.{layer}.{kind}")
        for mem, s, (q_cols, k_cols, v_cols) in zip(memories, p.slices, cols, strict=True):
            c0, cn = s.proj_cols
            f0, fn = s.fc_cols
            variant = mem.layer_variant[layer]
            hbm = _Block(mem, mem.variant_strides[variant])
            attn_w, attn_b = w["attn.c_attn.weight"], w["attn.c_attn.bias"]
            for region, kind, mat, sel in (
                    ("wq", "attn.c_attn", attn_w, q_cols), ("wk", "attn.c_attn", attn_w, k_cols),
                    ("wv", "attn.c_attn", attn_w, v_cols),
                    ("wproj", "attn.c_proj", proj_rows, np.arange(c0, c0 + cn)),
                    ("wfc", "mlp.c_fc", w["mlp.c_fc.weight"], np.arange(f0, f0 + fn)),
                    ("wfc2", "mlp.c_proj", w["mlp.c_proj.weight"], np.arange(c0, c0 + cn))):
                region = region_name(region, variant)
                geom = mem.lut.get(region)
                if geom is None:
                    hbm.put(region, _tiles(_take_cols(mat, sel), p))
                else:
                    hbm.put(region, lut_streams(_bcq_cols(bcq[kind], sel), geom,
                                                f"h.{layer}.{kind}"))
            segs[mem.card].append(Segment("hbm", mem.layer_addr(layer), hbm.buf))
            ddr = _Block(mem, mem.ddr_layer_stride)
            for region, name in (("ln1.g", "ln_1.weight"), ("ln1.b", "ln_1.bias"),
                                 ("ln2.g", "ln_2.weight"), ("ln2.b", "ln_2.bias")):
                ddr.put(region, w[name])
            ddr.put("bq", _take_cols(attn_b, q_cols))
            ddr.put("bk", _take_cols(attn_b, k_cols))
            ddr.put("bv", _take_cols(attn_b, v_cols))
            ddr.put("bproj", w["attn.c_proj.bias"][c0:c0 + cn])
            ddr.put("bfc", w["mlp.c_fc.bias"][f0:f0 + fn])
            ddr.put("bfc2", w["mlp.c_proj.bias"][c0:c0 + cn])
            segs[mem.card].append(
                Segment("ddr", mem.ddr_layer_base + layer * mem.ddr_layer_stride, ddr.buf))
    head = weights("lm_head.weight")  # [V, E]
    head_bcq = None
    if quant is not None and "lm_head" in groups:
        head_bcq = _quantize(quant, "lm_head", np.asarray(head).T, "lm_head")
    glob = {name: np.ascontiguousarray(weights(name), dtype=np.float16).reshape(-1)
            for name in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")}
    for mem, s in zip(memories, p.slices, strict=True):
        v0, vn = s.vocab_cols
        vcols = np.arange(v0, v0 + vn)
        ok = vcols < p.vocab
        geom = mem.lut.get("lm_head")
        if geom is not None and head_bcq is not None:
            data = lut_streams(_bcq_cols(head_bcq, np.where(ok, vcols, -1)), geom, "lm_head")
        else:
            lm = np.zeros((p.n_embd, vn), dtype=np.float16)
            lm[:, ok] = head[vcols[ok]].T
            data = _tiles(lm, p)
        segs[mem.card].append(Segment("hbm", mem.addr("lm_head"), data))
        for region, name in (("wte", "wte.weight"), ("wpe", "wpe.weight"),
                             ("ln_f.g", "ln_f.weight"), ("ln_f.b", "ln_f.bias")):
            segs[mem.card].append(Segment("ddr", mem.addr(region), glob[name].view(np.uint8)))
    return segs


LAYER_TENSORS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                 "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                 "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")


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


