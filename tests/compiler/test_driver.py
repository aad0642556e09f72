"""The compiler driver (compiler/driver.py): every stage's result on Compilation, timings and
progress per stage, determinism, the model description in the binary, and stage errors
surfacing as one-line DfxErrors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dfx.compiler.driver import Compilation, compile_model
from dfx.compiler.frontend.hf import save_checkpoint
from dfx.compiler.frontend.presets import preset_model
from dfx.compiler.memplan import CapacityError
from dfx.compiler.partition import PartitionError
from dfx.isa.config import load_core
from dfx.isa.container import read_binary, write_binary
from dfx.isa.encoding import decode_program
from dfx.isa.errors import DfxError

STAGES = ["frontend", "partition", "memory plan", "lowering", "vrf allocation", "resolution",
          "emission"]


def test_stages_timings_and_progress() -> None:
    seen: list[str] = []
    comp = compile_model("gpt2-tiny", cards=2, progress=seen.append)
    assert isinstance(comp, Compilation)
    assert seen == STAGES
    assert list(comp.timings) == STAGES
    assert all(t >= 0 for t in comp.timings.values())
    assert comp.graph.dims == {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_ctx": 128,
                               "vocab": 50257}
    assert comp.partition.cards == 2
    for per_card in (comp.memory, comp.programs, comp.instructions, comp.debug, comp.vrf,
                     comp.binary.cards):
        assert len(per_card) == 2
    for c in range(2):
        assert decode_program(comp.binary.cards[c].program) == comp.instructions[c]
        assert comp.binary.cards[c].debug == comp.debug[c]
        assert len(comp.instructions[c]) == len(comp.programs[c].items)
        assert set(comp.vrf[c]) <= set(comp.programs[c].buffers)


def test_binary_describes_the_model() -> None:
    comp = compile_model("gpt2-tiny", cards=4, seed=3, scale=2.0)
    m = comp.binary.model
    assert {k: m[k] for k in ("arch", "name", "n_layer", "n_embd", "n_head", "n_ctx",
                              "vocab_size", "weights", "seed", "scale")} == {
        "arch": "gpt2", "name": "gpt2-tiny", "n_layer": 2, "n_embd": 64, "n_head": 4,
        "n_ctx": 128, "vocab_size": 50257, "weights": True, "seed": 3, "scale": 2.0}
    assert m["tokenizer"] == {"builtin": True}
    assert comp.binary.core.name == "dfx-u280" and comp.binary.n_cards == 4
    for image in comp.binary.cards:
        assert set(image.symbols) == {"cfg", "tokens", "logits", "kv_cache", "weights"}
        assert image.symbols["logits"]["vocab"] == 50257
        assert image.symbols["tokens"]["capacity"] == 128
        notes = {text for _, text in image.debug}
        assert "layer / ln_1" in notes and "final / lm_head" in notes


def test_checkpoint_tokenizer_recorded(tmp_path: Path) -> None:
    model = preset_model("gpt2-tiny")
    ckpt = save_checkpoint(model, tmp_path / "ckpt", tokenizer=True)
    info = compile_model(str(ckpt), cards=1).binary.model["tokenizer"]
    assert info["dir"] == str(ckpt.resolve()) and info["builtin"] is True
    assert info["sha256"]["vocab.json"] == hashlib.sha256(
        (ckpt / "vocab.json").read_bytes()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deterministic(tmp_path: Path) -> None:
    """Same source, same options: byte-identical binaries."""
    a = write_binary(tmp_path / "a.dfx", compile_model("gpt2-tiny", cards=2, scale=4).binary)
    b = write_binary(tmp_path / "b.dfx", compile_model("gpt2-tiny", cards=2, scale=4).binary)
    assert file_digest(a) == file_digest(b)
    c = write_binary(tmp_path / "c.dfx", compile_model("gpt2-tiny", cards=2, seed=1).binary)
    assert file_digest(a) != file_digest(c)


def test_core_object_and_board_override() -> None:
    core = load_core("dfx-u280")
    comp = compile_model("gpt2-tiny", cards=1, core=core)
    assert comp.binary.core is core
    with pytest.raises(CapacityError, match="but board tiny has 4,194,304"):
        compile_model("gpt2-tiny", cards=1, core="dfx-u280", board="tiny", weights=False)


def test_checkpoint_and_preset_compile_to_the_same_program(tmp_path: Path) -> None:
    """A preset saved as a Hugging Face checkpoint compiles to the same program and images."""
    ckpt = save_checkpoint(preset_model("gpt2-tiny", scale=5.0), tmp_path / "ckpt")
    a = compile_model("gpt2-tiny", cards=2, scale=5.0)
    b = compile_model(str(ckpt), cards=2)
    for ca, cb in zip(a.binary.cards, b.binary.cards, strict=True):
        assert ca.program == cb.program
        assert [(s.space, s.addr, s.to_bytes()) for s in ca.segments] == [
            (s.space, s.addr, s.to_bytes()) for s in cb.segments]


def test_written_binary_reads_back(tmp_path: Path) -> None:
    comp = compile_model("gpt2-tiny", cards=2)
    back = read_binary(write_binary(tmp_path / "t.dfx", comp.binary))
    assert back.model == comp.binary.model
    for a, b in zip(comp.binary.cards, back.cards, strict=True):
        assert bytes(a.program) == bytes(b.program) and a.symbols == b.symbols


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(src="gpt2-tiny", cards=5), PartitionError, "card counts that work: 1 to 4"),
    (dict(src="gpt2-xl", cards=26, weights=False), PartitionError,
     "25 attention heads cannot be split over 26 cards"),
    (dict(src="gpt2-xl", cards=1, core="tiny", weights=False), CapacityError, "HBM overflow"),
    (dict(src="gpt2-nano", cards=1), DfxError, "or a preset name (gpt2, gpt2-medium"),
    (dict(src="openai-community/gpt2", cards=1), DfxError, "dfx never downloads"),
    (dict(src="gpt2-tiny", cards=1, core="no-such-core"), DfxError, "no-such-core"),
])
def test_stage_errors_are_one_line(kwargs: dict, error: type, needle: str) -> None:
    with pytest.raises(error) as e:
        compile_model(**kwargs)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def suggested_card_counts(name: str, cards: int) -> range:
    """The card counts the partition error suggests for ``name`` (asked with too many)."""
    with pytest.raises(PartitionError) as e:
        compile_model(name, cards=cards, weights=False)
    lo, _, hi = str(e.value).rsplit("card counts that work: ", 1)[1].partition(" to ")
    return range(int(lo), int(hi or lo) + 1)


@pytest.mark.parametrize("cards", [1, 3, 4, 25])
def test_every_suggested_card_count_compiles(cards: int) -> None:
    """gpt2-xl (25 heads) on 26 cards is refused with the counts that work (1 to 25); they do,
    unevenly where 25 does not divide (7/6/6/6 heads on DFX's four cards)."""
    assert suggested_card_counts("gpt2-xl", 26) == range(1, 26)
    comp = compile_model("gpt2-xl", cards=cards, weights=False)
    assert comp.partition.cards == cards
    assert [s.heads[1] for s in comp.partition.slices] == [
        25 // cards + (c < 25 % cards) for c in range(cards)]
