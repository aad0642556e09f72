"""Emission (compiler/emit.py): the weights land where the memory plan says. Each card's HBM
and DDR images are decoded back (untiled) and compared bit for bit with the model's slice,
computed here independently from the partition (heads padded to whole vectors with zeros,
column and vocabulary slices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.compiler.frontend.gpt2 import GPT2Config, GPT2Model
from dfx.compiler.frontend.hf import save_checkpoint
from dfx.compiler.frontend.presets import init_tensor
from dfx.isa.container import read_binary, write_binary
from dfx.isa.golden.ops import untile


class Image:
    """A card's initial memory, assembled from its segments (unwritten bytes read as None)."""

    def __init__(self, card_image) -> None:
        self.segments = card_image.segments

    def read(self, space: str, addr: int, nbytes: int) -> np.ndarray:
        out = np.zeros(nbytes, dtype=np.uint8)
        covered = np.zeros(nbytes, dtype=bool)
        for seg in self.segments:
            if seg.space != space or seg.end <= addr or seg.addr >= addr + nbytes:
                continue
            lo, hi = max(seg.addr, addr), min(seg.end, addr + nbytes)
            data = (np.full(seg.length, seg.fill, np.uint8) if seg.is_fill
                    else np.asarray(seg.data).view(np.uint8))
            out[lo - addr:hi - addr] = data[lo - seg.addr:hi - seg.addr]
            covered[lo - addr:hi - addr] = True
        assert covered.all(), f"{space} [{addr:#x}, +{nbytes}) not fully initialised"
        return out

    def f16(self, space: str, addr: int, n: int) -> np.ndarray:
        return self.read(space, addr, 2 * n).view(np.float16)

    def matrix(self, addr: int, k: int, n: int, d: int, l: int) -> np.ndarray:  # noqa: E741
        kt, nt = -(-k // d), -(-n // l)
        raw = self.read("hbm", addr, kt * nt * d * l * 2).view(np.float16)
        return untile(raw.reshape(nt, kt, l, d), k, n)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float16).view(np.uint16)


def expected_heads(p, w: np.ndarray, part: int, first: int, count: int) -> np.ndarray:
    """Columns of Q (part 0), K (1) or V (2) for heads first..first+count, each padded to
    head_pad with zero columns."""
    e, hd, hp = p.n_embd, p.head_dim, p.head_pad
    out = np.zeros((w.shape[0], count * hp) if w.ndim == 2 else (count * hp,), np.float16)
    for i in range(count):
        src = part * e + (first + i) * hd
        out[..., i * hp:i * hp + hd] = w[..., src:src + hd]
    return out


def expected_proj_rows(p, w: np.ndarray) -> np.ndarray:
    out = np.zeros((p.n_head * p.head_pad, w.shape[1]), np.float16)
    for h in range(p.n_head):
        out[h * p.head_pad:h * p.head_pad + p.head_dim] = w[h * p.head_dim:(h + 1) * p.head_dim]
    return out


def check_card(comp, model: GPT2Model, card: int) -> None:
    p, mem = comp.partition, comp.memory[card]
    s = p.slices[card]
    d, l = p.d, p.l  # noqa: E741
    img = Image(comp.binary.cards[card])
    e, loc = p.n_embd, s.heads[1] * p.head_pad
    (c0, cn), (f0, fn), (v0, vn) = s.proj_cols, s.fc_cols, s.vocab_cols
    for layer in range(p.n_layer):
        w = model.layer(layer)
        hb = mem.hbm_layer_base + layer * mem.hbm_layer_stride
        db = mem.ddr_layer_base + layer * mem.ddr_layer_stride

        def hbm(region: str, k: int, n: int, hb=hb) -> np.ndarray:
            return img.matrix(hb + mem.regions[region].offset, k, n, d, l)

        def ddr(region: str, n: int, db=db) -> np.ndarray:
            return img.f16("ddr", db + mem.regions[region].offset, n)

        for part, name in enumerate(("wq", "wk", "wv")):
            want = expected_heads(p, w["attn.c_attn.weight"], part, *s.heads)
            assert np.array_equal(bits(hbm(name, e, loc)), bits(want)), (layer, name)
            bname = "b" + name[1]
            bwant = expected_heads(p, w["attn.c_attn.bias"], part, *s.heads)
            assert np.array_equal(bits(ddr(bname, loc)), bits(bwant)), (layer, bname)
        proj = expected_proj_rows(p, w["attn.c_proj.weight"])[:, c0:c0 + cn]
        assert np.array_equal(bits(hbm("wproj", p.attn_width, cn)), bits(proj)), layer
        assert np.array_equal(bits(hbm("wfc", e, fn)), bits(w["mlp.c_fc.weight"][:, f0:f0 + fn]))
        assert np.array_equal(bits(hbm("wfc2", 4 * e, cn)),
                              bits(w["mlp.c_proj.weight"][:, c0:c0 + cn]))
        for region, name, n, sl in (
                ("ln1.g", "ln_1.weight", e, slice(None)), ("ln1.b", "ln_1.bias", e, slice(None)),
                ("ln2.g", "ln_2.weight", e, slice(None)), ("ln2.b", "ln_2.bias", e, slice(None)),
                ("bproj", "attn.c_proj.bias", cn, slice(c0, c0 + cn)),
                ("bfc", "mlp.c_fc.bias", fn, slice(f0, f0 + fn)),
                ("bfc2", "mlp.c_proj.bias", cn, slice(c0, c0 + cn))):
            assert np.array_equal(bits(ddr(region, n)), bits(w[name][sl])), (layer, region)
    # LM head: wte^T, vocabulary columns v0..v0+vn, zero beyond the real vocabulary
    head = np.zeros((e, vn), np.float16)
    real = max(0, min(vn, p.vocab - v0))
    head[:, :real] = model.lm_head_weight()[v0:v0 + real].T
    got = img.matrix(mem.addr("lm_head"), e, vn, d, l) if vn else head
    assert np.array_equal(bits(got), bits(head))
    for region, name in (("wte", "wte.weight"), ("wpe", "wpe.weight"), ("ln_f.g", "ln_f.weight"),
                         ("ln_f.b", "ln_f.bias")):
        want = model[name].reshape(-1)
        assert np.array_equal(bits(img.f16("ddr", mem.addr(region), want.size)), bits(want))
    # the KV cache starts zeroed, every byte of it
    kv = img.read("hbm", mem.kv_base, mem.kv_layer_stride * p.n_layer)
    assert not kv.any()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GPT2Model]:
    """Random weights with random biases and LayerNorm parameters (none is trivially 0/1)."""
    cfg = GPT2Config(n_layer=2, n_embd=128, n_head=4, n_ctx=40, vocab_size=1003, name="emit")
    model = GPT2Model.from_loader(cfg, lambda n: init_tensor(cfg, n, seed=9, scale=4.0,
                                                             bias_std=0.1))
    return save_checkpoint(model, tmp_path_factory.mktemp("emit") / "ckpt"), model


@pytest.mark.parametrize("core,cards", [("dfx-u280", 1), ("dfx-u280", 2), ("dfx-u280", 4),
                                        ("tiny", 1), ("tiny", 4)])
def test_weights_land_where_the_plan_says(checkpoint, core: str, cards: int) -> None:
    ckpt, model = checkpoint
    comp = compile_model(str(ckpt), cards=cards, core=core)
    if core == "dfx-u280":  # head dim 32 < d = 64: every head is padded with zero columns
        assert comp.partition.head_pad == 64
    for card in range(cards):
        check_card(comp, model, card)


def test_preset_weights_and_head_padding() -> None:
    """gpt2-tiny (head dim 16, padded to 64) on 4 cards: the lazily generated preset lands
    as the eager preset says."""
    from dfx.compiler.frontend.presets import preset_model

    comp = compile_model("gpt2-tiny", cards=4, scale=3.0)
    model = preset_model("gpt2-tiny", scale=3.0)
    for card in range(4):
        check_card(comp, model, card)


def test_images_survive_the_container(checkpoint, tmp_path: Path) -> None:
    ckpt, model = checkpoint
    comp = compile_model(str(ckpt), cards=2)
    path = write_binary(tmp_path / "m.dfx", comp.binary)
    back = read_binary(path)
    comp.binary = back  # decode the images as read back from disk
    for card in range(2):
        check_card(comp, model, card)


def test_no_weights_leaves_only_the_kv_fill() -> None:
    comp = compile_model("gpt2-mini", cards=2, weights=False)
    for card, image in enumerate(comp.binary.cards):
        (seg,) = image.segments
        mem = comp.memory[card]
        assert (seg.space, seg.addr, seg.is_fill, seg.fill) == ("hbm", mem.kv_base, True, 0)
        assert seg.length == mem.kv_layer_stride * comp.partition.n_layer
    assert comp.binary.model["weights"] is False
