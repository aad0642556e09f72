"""Quantized compilation (``compile_model(quant=...)``, docs/compiler.md): the plan checks the
spec against the model and the core's LUT-GEMM unit; quantized regions are sized with
``stream_bytes`` (32-byte aligned, chunked by core.lutgemm.max_rows); every quantized Conv1D
becomes ``lutmv``; emission packs each card's columns of the matrix quantized once; the model
info records the spec and the per-card weight bytes; the functional simulator's lutmv equals the
golden bit for bit on a real compiled layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.frontend.gpt2 import GPT2Config, GPT2Model
from dfx.compiler.frontend.hf import save_checkpoint
from dfx.compiler.frontend.presets import init_tensor, preset_model
from dfx.compiler.memplan import LAYER_LINEARS
from dfx.compiler.quant import QuantError, QuantSpec, quantize
from dfx.isa.config import load_core
from dfx.isa.golden import lutgemm as glut
from dfx.sim.functional import lut

U280 = load_core("dfx-u280")
SPEC = "bcq:q=3,g=64"


@pytest.fixture(scope="module")
def mini4():
    return compile_model("gpt2-mini", cards=4, quant=SPEC, scale=4.0)


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer model small enough for the ``tiny`` core (slice 8, max_rows 256)."""
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_ctx=64, vocab_size=2000, name="v2000")
    model = GPT2Model.from_loader(
        cfg, lambda n: init_tensor(cfg, n, seed=3, scale=8.0, bias_std=0.1))
    return save_checkpoint(model, tmp_path_factory.mktemp("quant") / "v2000")


def _ops(comp, card: int, op: str) -> list:
    return [i for i in comp.instructions[card] if i.op == op]


def _layer_block(comp, card: int, layer: int) -> np.ndarray:
    mem = comp.memory[card]
    addr = mem.layer_addr(layer)
    for seg in comp.binary.cards[card].segments:
        if seg.space == "hbm" and seg.addr == addr and seg.data is not None:
            return np.frombuffer(bytes(seg.data), dtype=np.uint8)
    raise AssertionError(f"no HBM segment at {addr:#x}")


def test_quantized_layers_become_lutmv(mini4) -> None:
    for card in range(4):
        mem = mini4.memory[card]
        assert set(mem.lut) == {"wq", "wk", "wv", "wproj", "wfc", "wfc2"}  # lm_head excluded
        luts = _ops(mini4, card, "lutmv")
        assert len(luts) == 6
        assert not _ops(mini4, card, "conv1d")
        assert len(_ops(mini4, card, "mm")) == 1 + 1  # S·V of the card's head, the LM head
        gelu = [i for i in luts if i.gelu]
        assert len(gelu) == 1 and gelu[0].n.imm == 256  # mlp.c_fc: 1024 / 4 columns
        for ins in luts:
            assert ins.bias and ins.q == 3 and ins.gs == 2  # g = 64 = 2 lane words of 32
            assert ins.w.off % glut.SECTION_ALIGN == 0


def test_regions_sized_by_stream_bytes(mini4) -> None:
    e = 256
    for mem in mini4.memory:
        for name, geom in mem.lut.items():
            r = mem.regions[name]
            assert r.size == glut.stream_bytes(geom.n, geom.ng, geom.gs, 3, 32)
            assert r.offset % glut.SECTION_ALIGN == 0
        assert mem.lut["wfc2"].k == 4 * e and mem.lut["wfc"].k == e
        ends = sorted((r.offset, r.offset + r.size) for r in mem.regions.values()
                      if r.per_layer and r.space == "hbm" and not r.name[1:].isdigit())
        assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False))
        assert ends[-1][1] <= mem.hbm_layer_stride


def test_model_info_records_quant_and_weight_bytes(mini4) -> None:
    info = mini4.binary.model
    assert info["quant"]["spec"] == QuantSpec.parse(SPEC).text()
    assert info["quant"]["groups"] == {k: 64 for k in LAYER_LINEARS}
    assert info["weight_bytes"] == [m.kv_base for m in mini4.memory]
    fp16 = compile_model("gpt2-mini", cards=4, weights=False).binary.model
    assert fp16["quant"] is None
    assert all(q < f for q, f in zip(info["weight_bytes"], fp16["weight_bytes"], strict=True))


def test_no_weights_plans_the_same_sizes(mini4) -> None:
    dry = compile_model("gpt2-mini", cards=4, quant=SPEC, weights=False)
    assert [m.regions for m in dry.memory] == [m.regions for m in mini4.memory]
    assert dry.binary.model["weight_bytes"] == mini4.binary.model["weight_bytes"]
    assert dry.instructions == mini4.instructions


def test_no_weights_gpt2_xl_quantizes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timing benchmarks compile GPT-2 1.5B without weights: sizes only, no quantizer."""
    import dfx.compiler.quant as q

    def boom(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("quantize called without weights")

    monkeypatch.setattr(q, "quantize", boom)
    comp = compile_model("gpt2-xl-24h", cards=4, quant="bcq:q=3,g=128", weights=False)
    fp16 = compile_model("gpt2-xl-24h", cards=4, weights=False)
    wq, wf = comp.binary.model["weight_bytes"][0], fp16.binary.model["weight_bytes"][0]
    assert wq < wf / 2  # 3.25 bits per weight in the layers, FP16 LM head
    mem = comp.memory[0]
    geom = mem.lut["wfc"]
    assert mem.regions["wfc"].size == glut.stream_bytes(geom.n, geom.ng, 4, 3, 32)


def test_emitted_streams_are_the_quantized_matrix_cut_per_card(mini4) -> None:
    """Card c's c_fc stream is the whole quantized c_fc (quantized once) cut to its columns:
    the same BCQ matrix whatever the card count."""
    model = preset_model("gpt2-mini", scale=4.0)
    spec = QuantSpec.parse(SPEC)
    layer = 1
    w = quantize(np.asarray(model[f"h.{layer}.mlp.c_fc.weight"], np.float64), spec, 64).to_fp16()
    one = compile_model("gpt2-mini", cards=1, quant=SPEC, scale=4.0)
    for comp in (mini4, one):
        for card, s in enumerate(comp.partition.slices):
            mem = comp.memory[card]
            geom, r = mem.lut["wfc"], mem.regions["wfc"]
            raw = _layer_block(comp, card, layer)[r.offset:r.offset + r.size]
            got = glut.unpack(raw, geom.n, geom.ng, geom.gs, geom.q, geom.slice)
            f0, fn = s.fc_cols
            assert (got.signs == w.signs[:, :, f0:f0 + fn]).all()
            assert (got.alpha.view(np.uint16) == w.alpha[:, :, f0:f0 + fn].view(np.uint16)).all()
            assert (got.z.view(np.uint16) == w.z[:, f0:f0 + fn].view(np.uint16)).all()


def test_fast_lutmv_on_a_compiled_layer_equals_golden(mini4) -> None:
    card, layer = 2, 3
    mem = mini4.memory[card]
    block = _layer_block(mini4, card, layer)
    rng = np.random.default_rng(0)
    for name in ("wq", "wproj", "wfc", "wfc2"):
        geom, r = mem.lut[name], mem.regions[name]
        w = glut.unpack(block[r.offset:r.offset + r.size], geom.n, geom.ng, geom.gs, geom.q,
                        geom.slice)
        x = (rng.standard_normal((2, geom.k)) * 3).astype(np.float16)
        bias = (rng.standard_normal(geom.n)).astype(np.float16)
        want = glut.lutmv(w, x, bias=bias)
        got = lut.lutmv(lut.prepare_stream(block[r.offset:r.offset + r.size], geom.n, geom.ng,
                                           geom.gs, geom.q, geom.slice), x, bias=bias)
        assert (want.view(np.uint16) == got.view(np.uint16)).all(), name


def test_tiny_core_chunks_rows_and_quantizes_the_lm_head(small_ckpt: Path) -> None:
    comp = compile_model(str(small_ckpt), cards=2, core="tiny", quant="rtn:q=2,g=16,exclude=none")
    tiny = load_core("tiny")
    rows = tiny.lutgemm.max_rows
    for card, s in enumerate(comp.partition.slices):
        mem = comp.memory[card]
        head = mem.lut["lm_head"]
        assert head.n == s.vocab_cols[1] == 1000 and head.rows == rows
        assert len(head.chunks()) == 4
        luts = _ops(comp, card, "lutmv")
        head_ops = [i for i in luts if i.w.off >= mem.addr("lm_head")]
        assert [i.n.imm for i in head_ops] == [256, 256, 256, 232]
        assert all(not i.bias for i in head_ops)
        assert [i.y.off for i in head_ops] == [head_ops[0].y.off + k * 256 // tiny.d
                                              for k in range(4)]
        assert [i.w.off - mem.addr("lm_head") for i in head_ops] == [o for _, _, o in
                                                                     head.chunks()]
        assert not _ops(comp, card, "conv1d")
        assert len(_ops(comp, card, "mm")) == s.heads[1]  # S·V only


@pytest.mark.parametrize("kwargs, needle", [
    (dict(src="gpt2-mini", quant="bcq:q=3,g=96"), "layer h.0.attn.c_attn (k = 256, g = 96"),
    (dict(src="gpt2-mini", quant="bcq:q=3,g=16"), "not a multiple of the lane word"),
    (dict(src="gpt2-tiny", quant="bcq:q=3,g=32"), "heads of 16 are padded to 64 inputs"),
    (dict(src="gpt2-mini", quant="bcq:q=9"), "q must be an integer in 1..4"),
    (dict(src="gpt2-mini", quant="int:q=3"), "unknown scheme 'int'"),
])
def test_quant_errors_are_one_line(kwargs: dict, needle: str) -> None:
    with pytest.raises(QuantError) as e:
        compile_model(cards=4, weights=False, **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 1  # bad input (cli.EXIT_STATUS)


def test_quant_checked_against_the_core() -> None:
    lc = dataclasses.replace(U280.lutgemm, max_q=2, max_group=64)
    core = dataclasses.replace(U280, lutgemm=lc)
    with pytest.raises(QuantError, match="q = 3 exceeds the 2 bit-planes of core dfx-u280"):
        compile_model("gpt2-mini", cards=4, core=core, quant="bcq:q=3,g=64", weights=False)
    with pytest.raises(QuantError, match=r"layer h.0.attn.c_attn: group of 128 inputs exceeds "
                                         r"core dfx-u280's core.lutgemm.max_group = 64"):
        compile_model("gpt2-mini", cards=4, core=core, quant="bcq:q=2,g=128", weights=False)
    comp = compile_model("gpt2-tiny", cards=1, core=core,
                         quant="bcq:q=2,g=64,exclude=lm_head+h.*.attn.c_proj", weights=False)
    assert set(comp.memory[0].lut) == {"wq", "wk", "wv", "wfc", "wfc2"}


def test_scale_overflow_names_the_layer() -> None:
    from dfx.compiler.emit import lut_streams
    from dfx.compiler.memplan import LutGeom

    w = glut.Bcq(np.ones((1, 64, 8), bool), np.full((1, 1, 8), 1e6), np.zeros((1, 8)), 64)
    with pytest.raises(QuantError, match=r"^quant: layer h.3.mlp.c_fc: alpha: a scale "
                                         r"overflows FP16"):
        lut_streams(w, LutGeom(64, 8, 64, 1, 32, 256), "h.3.mlp.c_fc")


def test_tiny_core_quantized_run_is_exact(small_ckpt: Path) -> None:
    """Chunked lutmv (the LM head in 4 chunks per card) through the simulator: fast = golden,
    1 card = 2 cards, bit for bit."""
    from dfx.sim.functional import Appliance

    spec = "rtn:q=2,g=16,exclude=none"
    two = compile_model(str(small_ckpt), cards=2, core="tiny", quant=spec).binary
    one = compile_model(str(small_ckpt), cards=1, core="tiny", quant=spec).binary
    runs = [Appliance(b, **kw).generate([1, 2, 3], 3, write_logits=True)
            for b, kw in ((two, {}), (two, {"golden_matvec": True}), (one, {}))]
    (t0, l0), *rest = runs
    for t, lg in rest:
        assert t == t0 and (lg.view(np.uint16) == l0.view(np.uint16)).all()


def test_excluding_some_layers_only_gives_layer_variants() -> None:
    """exclude=h.0.*: layer 0 stays FP16 (its own layer block layout and loop), layers 1..3
    are quantized; each block holds exactly what the uniform compilations put there."""
    mixed = compile_model("gpt2-mini", cards=2, quant="bcq:q=3,g=64,exclude=lm_head+h.0.*",
                          scale=4.0)
    fp16 = compile_model("gpt2-mini", cards=2, scale=4.0)
    full = compile_model("gpt2-mini", cards=2, quant=SPEC, scale=4.0)
    info = mixed.binary.model["quant"]
    assert info["fp16_layers"] == [f"h.0.{k}" for k in LAYER_LINEARS]
    for card in range(2):
        mem = mixed.memory[card]
        assert mem.layer_variant == [0, 1, 1, 1]
        assert mem.variant_strides == [fp16.memory[card].hbm_layer_stride,
                                       full.memory[card].hbm_layer_stride]
        assert mem.layer_offsets == [0] + [mem.variant_strides[0] + i * mem.variant_strides[1]
                                           for i in range(3)]
        assert set(mem.lut) == {f"{r}.v1" for r in ("wq", "wk", "wv", "wproj", "wfc", "wfc2")}
        assert (_layer_block(mixed, card, 0) == _layer_block(fp16, card, 0)).all()
        for layer in (1, 2, 3):
            assert (_layer_block(mixed, card, layer) == _layer_block(full, card, layer)).all()
        ops = [i.op for i in mixed.instructions[card]]
        assert ops.count("loop") == 2 and ops.count("lutmv") == 6 and ops.count("conv1d") == 6
    assert mixed.binary.model["weight_bytes"][0] == (
        fp16.memory[0].hbm_layer_stride + 3 * full.memory[0].hbm_layer_stride
        + mixed.memory[0].regions["lm_head"].size)


def test_layer_variants_run_exactly() -> None:
    """Several variants (runs of 1 layer each): fast = golden, 1 card = 4 cards; excluding
    every layer gives exactly the FP16 model."""
    from dfx.sim.functional import Appliance

    spec = "rtn:q=3,g=64,exclude=h.1.*+h.2.mlp.*+h.3.attn.c_proj"
    runs = []
    for cards, kw in ((4, {}), (4, {"golden_matvec": True}), (1, {})):
        comp = compile_model("gpt2-mini", cards=cards, quant=spec, scale=4.0)
        assert comp.memory[0].layer_variant == [0, 1, 2, 3]
        runs.append(Appliance(comp.binary, **kw).generate([464], 1, write_logits=True))
    (t0, l0), *rest = runs
    for t, lg in rest:
        assert t == t0 and (lg.view(np.uint16) == l0.view(np.uint16)).all()
    none = compile_model("gpt2-mini", cards=2, quant="bcq:q=2,exclude=h.*+lm_head", scale=4.0)
    fp16 = compile_model("gpt2-mini", cards=2, scale=4.0)
    assert none.instructions == fp16.instructions
    a = Appliance(none.binary).generate([464, 2068], 2, write_logits=True)[1]
    b = Appliance(fp16.binary).generate([464, 2068], 2, write_logits=True)[1]
    assert (a.view(np.uint16) == b.view(np.uint16)).all()


def test_emit_ir_marks_quantized_linears() -> None:
    comp = compile_model("gpt2-mini", cards=1, quant="rtn:q=4,g=128,exclude=h.0.mlp.*",
                         weights=False)
    text = comp.graph.dump()
    assert "attn.c_attn.bias, split=heads, lutmv=rtn q=4 g=128)" in text
    assert "act=gelu_new, lutmv=rtn q=4 g=128, fp16_in=h.0)" in text
    assert "@wte.weight^T, split=vocab, lutmv=rtn q=4 g=128)" in text
    plain = compile_model("gpt2-mini", cards=1, weights=False).graph.dump()
    assert "lutmv" not in plain
