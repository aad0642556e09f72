"""Lowering: a partitioned GPT-2 graph to one card's instruction stream.

One program serves a whole request (DFX §IV-A): it reads the prompt length and the number of
tokens to generate from the host configuration block, runs every prompt token and every
generated token through all layers (a hardware loop whose base registers step through the
per-layer HBM/DDR blocks), and writes each generated token (and, on request, the logits) to
DDR before halting. See docs/compiler.md for the register conventions and the exact sequence.
"""

from __future__ import annotations

import numpy as np

from dfx.compiler.memplan import CFG_FIELDS, CardMemory, region_name
from dfx.compiler.partition import Partition, PartitionError
from dfx.compiler.program import Label, MRef, Program, VRef
from dfx.isa.config import CoreConfig
from dfx.isa.encoding import Count

# Integer register conventions (r0 reads as zero).
R_P, R_G, R_STEPS, R_T, R_TOK, R_WLOG = 1, 2, 3, 4, 5, 6
R_KOFF, R_VOFF, R_NT, R_NV = 7, 8, 9, 10
R_TMP, R_TMP2 = 11, 12
R_LW, R_KV, R_LP, R_KADDR, R_VADDR = 20, 21, 22, 23, 24

# Scalar register conventions.
S_INV_E, S_EPS, S_SCALE = 0, 1, 2
S_SUM, S_MEAN, S_SQ, S_VAR, S_RSTD = 3, 4, 5, 6, 7
S_MAX = 16  # s16 .. s(16+hc-1): row max of each local head; then 1 / softmax sum of each


def _f32(x: float) -> float:
    return float(np.float32(x))


def _log2(x: int) -> int:
    return x.bit_length() - 1


class Lowering:
    """Builds the program of card ``card``."""

    def __init__(self, p: Partition, mem: CardMemory, core: CoreConfig, card: int,
                 eps: float) -> None:
        self.p, self.mem, self.core, self.card, self.eps = p, mem, core, card, eps
        self.s = p.slices[card]
        self.prog = Program(card)
        hc = self.s.heads[1]
        self.s_rsum = S_MAX + hc  # 1 / softmax sum of each local head
        if self.s_rsum + hc > core.buffers.srf_scalars:
            raise PartitionError(
                f"{hc} heads per card need scalar registers s{S_MAX}..s{self.s_rsum + hc - 1}; "
                f"core {core.name} has {core.buffers.srf_scalars}: use more cards")
        self.fifo = core.buffers.router_fifo_vectors
        e_vec = p.vec(p.n_embd)
        b = self.prog.buffer
        self.X, self.H, self.T = b("x", e_vec), b("h", e_vec), b("tmp", e_vec)
        self.G, self.B = b("gamma", e_vec), b("beta", e_vec)
        loc = p.vec(p.local_attn_width(card))
        self.Q, self.K, self.V = b("q", loc), b("k", loc), b("v", loc)
        self.S = [b(f"scores{hh}", p.vec(p.ctx_pad)) for hh in range(self.s.heads[1])]
        self.A = b("attn", p.vec(p.attn_width))
        self.O = b("proj", e_vec)
        self.F = b("ffn", p.vec(4 * p.n_embd))
        self.M = b("mlp", e_vec)
        self.L = b("logits", p.vec(p.vocab_pad))

    # -- helpers --------------------------------------------------------------------------------
    def r(self, name: str) -> MRef:
        """A per-card region (absolute address)."""
        return MRef(self.mem.regions[name].space, name)

    def allgather(self, buf: str, slices: list[tuple[int, int]], what: str) -> None:
        """Ring all-gather of vector slices (start, count) of ``buf`` (DFX §V router), as
        :func:`allgather_schedule` orders it; slices may differ in length (uneven splits)."""
        prog = self.prog
        if self.p.cards == 1:
            return
        prog.note(f"{prog._note} / allgather {what}")
        for op, start, count in allgather_schedule(slices, self.card, self.fifo):
            prog(op, v=VRef(buf, start), n=Count(count))

    def col_slices(self, kind: str) -> list[tuple[int, int]]:
        d = self.p.d
        return [(getattr(s, kind)[0] // d, getattr(s, kind)[1] // d) for s in self.p.slices]

    def layernorm(self, out: str, g: MRef, b: MRef) -> None:
        """LayerNorm of x as DFX composes it (§III): accum, mul, sub, square-accum, rsqrt,
        mul, γ and β (loaded from memory up front)."""
        prog, p = self.prog, self.p
        e, nv = p.n_embd, Count(p.vec(p.n_embd))
        # γ and β first: their DDR reads overlap the reductions instead of following them.
        prog("load", dst=VRef(self.G), src=g, n=Count(e))
        prog("load", dst=VRef(self.B), src=b, n=Count(e))
        prog("vacc", sd=S_SUM, a=VRef(self.X), n=nv)
        prog("smul", sd=S_MEAN, sa=S_SUM, sb=S_INV_E)
        prog("vsubs", y=VRef(self.T), a=VRef(self.X), s=S_MEAN, n=nv)
        prog("vaccsq", sd=S_SQ, a=VRef(self.T), n=nv)
        prog("smul", sd=S_VAR, sa=S_SQ, sb=S_INV_E)
        prog("sadd", sd=S_VAR, sa=S_VAR, sb=S_EPS)
        prog("srsqrt", sd=S_RSTD, sa=S_VAR)
        prog("vmuls", y=VRef(self.T), a=VRef(self.T), s=S_RSTD, n=nv)
        prog("vmul", y=VRef(self.T), a=VRef(self.T), b=VRef(self.G), n=nv)
        prog("vadd", y=VRef(out), a=VRef(self.T), b=VRef(self.B), n=nv)

    def conv1d(self, y: VRef, x: str, w: MRef, b: MRef | None, k: int, n: int,
               gelu: bool = False) -> None:
        """``y = x·W (+ b) (-> GELU)`` for n output columns: ``conv1d`` on d x l tiles, or
        ``lutmv`` on the packed BCQ streams of a quantized region (LUT-GEMM; one instruction
        per chunk of at most core.lutgemm.max_rows rows). ``b`` None: no bias (``mm``)."""
        p = self.p
        if n == 0:
            return
        geom = self.mem.lut.get(w.region) if w.region else None
        if geom is not None:
            for r0, cnt, off in geom.chunks():
                bias = b is not None
                self.prog("lutmv", y=VRef(y.buf, y.off + r0 // p.d, y.reg), x=VRef(x),
                          w=MRef(w.space, w.region, w.off + off, w.reg),
                          b=MRef(b.space, b.region, b.off + 2 * r0, b.reg) if bias
                          else MRef("ddr"),
                          n=Count(cnt), ng=Count(geom.ng), gs=geom.gs, q=geom.q,
                          bias=bias, gelu=gelu)
            return
        if b is None:
            self.prog("mm", y=y, x=VRef(x), w=w, kt=Count(p.vec(k)), nt=Count(-(-n // p.l)))
            return
        self.prog("conv1d", y=y, x=VRef(x), w=w, b=b, kt=Count(p.vec(k)),
                  nt=Count(-(-n // p.l)), gelu=gelu)

    # -- the program ----------------------------------------------------------------------------
    def build(self) -> Program:
        p, prog, mem = self.p, self.prog, self.mem
        e, d, l = p.n_embd, p.d, p.l  # noqa: E741
        tile = self.core.tile_bytes
        ev = Count(p.vec(e))

        prog.note("prologue / host configuration")
        cfg = mem.addr("cfg")
        for reg, fname in ((R_P, "prompt_len"), (R_G, "gen_len"), (R_WLOG, "write_logits")):
            prog("lw", rd=reg, mem=MRef("ddr", None, cfg + 4 * CFG_FIELDS.index(fname)))
        prog("add", rd=R_STEPS, rs1=R_P, rs2=R_G)
        prog("addi", rd=R_STEPS, rs1=R_STEPS, imm=-1)
        prog("sli", sd=S_INV_E, imm=_f32(1.0 / e))
        prog("sli", sd=S_EPS, imm=_f32(self.eps))
        prog("sli", sd=S_SCALE, imm=_f32(1.0 / np.sqrt(p.head_dim)))
        prog("li", rd=R_T, imm=0)

        prog.label("token")
        prog.note("token / embedding")
        prog("shli", rd=R_TMP, rs1=R_T, imm=2)
        prog("lw", rd=R_TOK, mem=MRef("ddr", "tokens", reg=R_TMP))
        prog("muli", rd=R_TMP, rs1=R_TOK, imm=2 * e)
        prog("load", dst=VRef(self.X), src=MRef("ddr", "wte", reg=R_TMP), n=Count(e))
        prog("muli", rd=R_TMP, rs1=R_T, imm=2 * e)
        prog("load", dst=VRef(self.T), src=MRef("ddr", "wpe", reg=R_TMP), n=Count(e))
        prog("vadd", y=VRef(self.X), a=VRef(self.X), b=VRef(self.T), n=ev)
        prog.note("token / KV-cache addressing")
        kt_head = p.vec(p.head_pad)
        # Key t goes to lane t mod l of key tile t div l (K^T tiles, d rows per tile).
        prog("shri", rd=R_KOFF, rs1=R_T, imm=_log2(l))
        prog("muli", rd=R_KOFF, rs1=R_KOFF, imm=kt_head * tile)
        prog("andi", rd=R_TMP, rs1=R_T, imm=l - 1)
        prog("muli", rd=R_TMP, rs1=R_TMP, imm=2 * d)
        prog("add", rd=R_KOFF, rs1=R_KOFF, rs2=R_TMP)
        # Value t goes to row t mod d of reduction tile t div d (V tiles, written transposed).
        prog("shri", rd=R_VOFF, rs1=R_T, imm=_log2(d))
        prog("muli", rd=R_VOFF, rs1=R_VOFF, imm=tile)
        prog("andi", rd=R_TMP, rs1=R_T, imm=d - 1)
        prog("shli", rd=R_TMP, rs1=R_TMP, imm=1)
        prog("add", rd=R_VOFF, rs1=R_VOFF, rs2=R_TMP)
        # Key tiles and score vectors covering positions 0..t.
        prog("shri", rd=R_NT, rs1=R_T, imm=_log2(l))
        prog("addi", rd=R_NT, rs1=R_NT, imm=1)
        prog("shri", rd=R_NV, rs1=R_T, imm=_log2(d))
        prog("addi", rd=R_NV, rs1=R_NV, imm=1)
        prog("li", rd=R_LW, imm=mem.hbm_layer_base)
        prog("li", rd=R_KV, imm=mem.kv_base)
        prog("li", rd=R_LP, imm=mem.ddr_layer_base)

        # One hardware loop per run of layers of the same variant (all layers: one loop, unless
        # a quant spec excludes a kind of layer in some layers only).
        variants = mem.layer_variant or [0] * p.n_layer
        first = 0
        while first < p.n_layer:
            v = variants[first]
            end = first
            while end < p.n_layer and variants[end] == v:
                end += 1
            with prog.loop(Count(end - first)):
                self.layer(v)
            first = end
        self.epilogue()
        prog.note("token / next")
        prog("addi", rd=R_T, rs1=R_T, imm=1)
        prog("blt", rs1=R_T, rs2=R_P, target=Label("prompt"))
        prog("shli", rd=R_TMP, rs1=R_T, imm=2)
        prog("sw", rs1=R_TOK, mem=MRef("ddr", "tokens", reg=R_TMP))
        prog.label("prompt")
        end = prog("blt", rs1=R_T, rs2=R_STEPS, target=Label("token"))
        prog.span("token", end)
        prog.note("done")
        prog("halt")
        return prog

    def layer(self, variant: int = 0) -> None:
        """The body of the layer loop for layers of memory-plan variant ``variant``."""
        p, prog, s = self.p, self.prog, self.s
        e = p.n_embd
        loc = p.local_attn_width(self.card)
        lw = lambda name: MRef("hbm", region_name(name, variant), reg=R_LW)  # noqa: E731
        lp = lambda name: MRef("ddr", name, reg=R_LP)  # noqa: E731

        prog.note("layer / ln_1")
        self.layernorm(self.H, lp("ln1.g"), lp("ln1.b"))
        # V first so its transposed write overlaps Q and K (DFX §IV-B).
        for buf, w, b in ((self.V, "wv", "bv"), (self.Q, "wq", "bq"), (self.K, "wk", "bk")):
            prog.note(f"layer / attn.c_attn {buf}")
            self.conv1d(VRef(buf), self.H, lw(w), lp(b), e, loc)
        prog.note("layer / kv append")
        prog("add", rd=R_KADDR, rs1=R_KV, rs2=R_KOFF)
        prog("add", rd=R_VADDR, rs1=R_KV, rs2=R_VOFF)
        hv = p.vec(p.head_pad)
        v_stride = p.vec(p.ctx_pad) * self.core.tile_bytes
        for hh in range(s.heads[1]):
            prog("store_t", dst=MRef("hbm", f"v{hh}", reg=R_VADDR), src=VRef(self.V, hh * hv),
                 n=Count(p.head_pad), stride=v_stride)
            prog("store", dst=MRef("hbm", f"k{hh}", reg=R_KADDR), src=VRef(self.K, hh * hv),
                 n=Count(p.head_pad), stride=self.core.tile_bytes if hv > 1 else 0)
        # Every head has its own score buffer and scalars, so the MPU runs all heads' Q·K^T
        # back to back while the VPU works through the softmaxes, and each S·V follows its
        # softmax (in-order issue with chaining overlaps them).
        nv = Count(0, reg=R_NV)
        for hh in range(s.heads[1]):
            prog.note(f"layer / attention head {s.heads[0] + hh} q·k")
            prog("maskedmm", y=VRef(self.S[hh]), x=VRef(self.Q, hh * hv),
                 w=MRef("hbm", f"k{hh}", reg=R_KV), kt=Count(hv), nt=Count(0, reg=R_NT),
                 limit=R_T, scale=S_SCALE, max=S_MAX + hh)
        for hh in range(s.heads[1]):
            h = s.heads[0] + hh
            sc, mx, rs = self.S[hh], S_MAX + hh, self.s_rsum + hh
            prog.note(f"layer / attention head {h} softmax·v")
            prog("vsubs", y=VRef(sc), a=VRef(sc), s=mx, n=nv)
            prog("vexp", y=VRef(sc), a=VRef(sc), n=nv)
            prog("vacc", sd=rs, a=VRef(sc), n=nv)
            prog("srecip", sd=rs, sa=rs)
            prog("vmuls", y=VRef(sc), a=VRef(sc), s=rs, n=nv)
            prog("mm", y=VRef(self.A, h * hv), x=VRef(sc), w=MRef("hbm", f"v{hh}", reg=R_KV),
                 kt=Count(0, reg=R_NV), nt=Count(p.head_pad // p.l),
                 kt_stride=p.vec(p.ctx_pad))
        heads = [(sl.heads[0] * hv, sl.heads[1] * hv) for sl in p.slices]
        self.allgather(self.A, heads, "attention heads")

        prog.note("layer / attn.c_proj")
        c0, cn = s.proj_cols
        self.conv1d(VRef(self.O, c0 // p.d), self.A, lw("wproj"), lp("bproj"), p.attn_width, cn)
        self.allgather(self.O, self.col_slices("proj_cols"), "attn.c_proj")
        prog.note("layer / residual 1")
        prog("vadd", y=VRef(self.X), a=VRef(self.X), b=VRef(self.O), n=Count(p.vec(e)))

        prog.note("layer / ln_2")
        self.layernorm(self.H, lp("ln2.g"), lp("ln2.b"))
        prog.note("layer / mlp.c_fc + gelu")
        f0, fn = s.fc_cols
        self.conv1d(VRef(self.F, f0 // p.d), self.H, lw("wfc"), lp("bfc"), e, fn, gelu=True)
        self.allgather(self.F, self.col_slices("fc_cols"), "mlp.c_fc")
        prog.note("layer / mlp.c_proj")
        self.conv1d(VRef(self.M, c0 // p.d), self.F, lw("wfc2"), lp("bfc2"), 4 * e, cn)
        self.allgather(self.M, self.col_slices("proj_cols"), "mlp.c_proj")
        prog.note("layer / residual 2")
        prog("vadd", y=VRef(self.X), a=VRef(self.X), b=VRef(self.M), n=Count(p.vec(e)))
        prog.note("layer / next")
        strides = self.mem.variant_strides or [self.mem.hbm_layer_stride]
        prog("addi", rd=R_LW, rs1=R_LW, imm=strides[variant])
        prog("addi", rd=R_KV, rs1=R_KV, imm=self.mem.kv_layer_stride)
        prog("addi", rd=R_LP, rs1=R_LP, imm=self.mem.ddr_layer_stride)

    def epilogue(self) -> None:
        p, prog, s = self.p, self.prog, self.s
        prog.note("final / ln_f")
        self.layernorm(self.H, self.r("ln_f.g"), self.r("ln_f.b"))
        prog.note("final / lm_head")
        v0, vn = s.vocab_cols
        self.conv1d(VRef(self.L, v0 // p.d), self.H, self.r("lm_head"), None, p.n_embd, vn)
        self.allgather(self.L, self.col_slices("vocab_cols"), "logits")
        prog.note("final / argmax")
        prog("vargmax", rd=R_TOK, a=VRef(self.L), n=Count(p.vocab))
        prog.note("final / logits to host")
        prog("beq", rs1=R_WLOG, rs2=0, target=Label("no_logits"))
        prog("muli", rd=R_TMP, rs1=R_T, imm=2 * p.vocab_pad)
        prog("store", dst=MRef("ddr", "logits", reg=R_TMP), src=VRef(self.L),
             n=Count(p.vocab_pad))
        prog.label("no_logits")


def allgather_schedule(slices: list[tuple[int, int]], card: int, fifo: int
                       ) -> list[tuple[str, int, int]]:
    """Card ``card``'s ``(op, first vector, vectors)`` sends and receives of a ring all-gather
    of ``slices`` (card c's (start, count), any lengths, zero allowed) over ``len(slices)``
    cards with receive FIFOs of ``fifo`` vectors (docs/compiler.md, all-gathers).

    Step s = 0 .. N-2: card c sends slice (c - s) mod N to card c + 1 and receives slice
    (c - s - 1) mod N from card c - 1 -- the slice card c - 1 sends in the same step. Each
    slice is cut into chunks of at most ``fifo`` vectors; *round* (s, k) is: send chunk k of
    the outgoing slice (if it has one), then receive chunk k of the incoming one (if it has
    one). Card c's receive in round (s, k) is exactly card c - 1's send in round (s, k), so by
    induction over rounds every card finishes every round: once all cards have finished the
    rounds before (s, k), card c's FIFO to c + 1 holds at most its own round-(s, k) chunk
    (<= fifo vectors), so its send completes, and so does card c - 1's, which its receive
    waits for. No deadlock, whatever the slice lengths."""
    n = len(slices)
    out: list[tuple[str, int, int]] = []
    for step in range(n - 1):
        s_chunks = _chunks(*slices[(card - step) % n], fifo)
        r_chunks = _chunks(*slices[(card - step - 1) % n], fifo)
        for k in range(max(len(s_chunks), len(r_chunks))):
            if k < len(s_chunks):
                out.append(("send", *s_chunks[k]))
            if k < len(r_chunks):
                out.append(("recv", *r_chunks[k]))
    return out


def _chunks(start: int, count: int, size: int) -> list[tuple[int, int]]:
    """(start, count) pieces of at most ``size`` vectors (none for an empty slice)."""
    return [(start + k, min(size, count - k)) for k in range(0, count, size)]
