"""Hugging Face checkpoint directories: save -> load round trips, name variants, every error."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from dfx.compiler.frontend import (
    CheckpointError,
    GPT2Config,
    GPT2Model,
    WeightsError,
    load_checkpoint,
    read_config,
    save_checkpoint,
)
from dfx.isa.errors import DfxError

CFG = GPT2Config(n_layer=2, n_embd=8, n_head=2, n_ctx=6, vocab_size=13, name="t")


def weights(config: GPT2Config = CFG, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        n: (rng.standard_normal(s) * 0.5).astype(np.float32)
        for n, s in config.tensor_shapes().items()
    }


@pytest.fixture
def model() -> GPT2Model:
    return GPT2Model(CFG, weights())


@pytest.fixture
def ckpt(tmp_path: Path, model: GPT2Model) -> Path:
    return save_checkpoint(model, tmp_path / "ckpt")


def assert_same(a: GPT2Model, b: GPT2Model) -> None:
    assert a.names() == b.names()
    for (n1, x), (n2, y) in zip(a.iter_tensors(), b.iter_tensors(), strict=True):
        assert n1 == n2 and x.dtype == y.dtype == np.float16
        np.testing.assert_array_equal(x, y, err_msg=n1)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """A safetensors file from raw (dtype, shape, bytes): for dtypes NumPy cannot express."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def error(path, **kw) -> str:
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path, **kw)
    assert isinstance(exc.value, DfxError)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def edit_config(ckpt: Path, **changes) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    for k, v in changes.items():
        if v is KeyError:
            cfg.pop(k)
        else:
            cfg[k] = v
    (ckpt / "config.json").write_text(json.dumps(cfg))


# ---------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_save_load_round_trip(tmp_path, model, dtype):
    out = save_checkpoint(model, tmp_path / "m", dtype=dtype)
    loaded = load_checkpoint(out)
    assert loaded.config == GPT2Config(**{**CFG.__dict__, "name": "m"})
    assert loaded.source == str(out)
    assert_same(loaded, model)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="numpy") as f:
        keys = list(f.keys())
        assert f.metadata() == {"format": "pt"}
        assert f.get_slice("transformer.h.0.attn.c_attn.weight").get_dtype() == (
            "F32" if dtype == "float32" else "F16"
        )
    assert sorted(keys) == sorted("transformer." + n for n in CFG.tensor_shapes())


def test_config_json_is_standard_gpt2(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["model_type"] == "gpt2"
    assert cfg["architectures"] == ["GPT2LMHeadModel"]
    assert cfg["activation_function"] == "gelu_new"
    assert cfg["n_inner"] is None and cfg["tie_word_embeddings"] is True
    assert (
        cfg["n_layer"],
        cfg["n_embd"],
        cfg["n_head"],
        cfg["n_positions"],
        cfg["n_ctx"],
        cfg["vocab_size"],
        cfg["layer_norm_epsilon"],
    ) == (2, 8, 2, 6, 6, 13, 1e-5)
    assert read_config(ckpt) == (load_checkpoint(ckpt).config, True)


def test_unprefixed_names_and_buffers_and_other_heads(tmp_path, model):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps({"n_layer": 2, "n_embd": 8, "n_head": 2, "n_ctx": 6, "vocab_size": 13})
    )
    tensors = {n: a.astype(np.float32) for n, a in model.iter_tensors()}
    tensors["h.0.attn.bias"] = np.ones((1, 1, 6, 6), np.float32)  # causal mask buffers
    tensors["h.1.attn.masked_bias"] = np.array(-1e4, np.float32)
    tensors["multiple_choice_head.summary.weight"] = np.ones((1, 8), np.float32)
    save_file(tensors, str(d / "model.safetensors"))
    assert_same(load_checkpoint(d), model)


def test_float64_and_bfloat16_tensors(tmp_path, model):
    d = save_checkpoint(model, tmp_path / "mixed")
    tensors = {}
    for name, arr in model.iter_tensors():
        f32 = arr.astype(np.float32)
        if name.endswith("bias"):
            tensors["transformer." + name] = ("F64", arr.shape, f32.astype("<f8").tobytes())
        else:  # float16 -> bfloat16 loses mantissa bits; keep the top 16 bits (truncation)
            bits = (f32.view(np.uint32) >> 16).astype("<u2")
            tensors["transformer." + name] = ("BF16", arr.shape, bits.tobytes())
    write_safetensors(d / "model.safetensors", tensors)
    loaded = load_checkpoint(d)
    for name, arr in model.iter_tensors():
        f32 = arr.astype(np.float32)
        want = f32 if name.endswith("bias") else (f32.view(np.uint32) & 0xFFFF0000).view(np.float32)
        np.testing.assert_array_equal(loaded[name], want.astype(np.float16), err_msg=name)


def test_untied_lm_head_round_trip(tmp_path):
    w = weights()
    w["lm_head.weight"] = -w["wte.weight"]
    m = GPT2Model(CFG, w)
    d = save_checkpoint(m, tmp_path / "untied")
    assert json.loads((d / "config.json").read_text())["tie_word_embeddings"] is False
    loaded = load_checkpoint(d)
    assert not loaded.tied_lm_head
    assert_same(loaded, m)
    # the same tensor stored but equal to wte: tied
    w["lm_head.weight"] = w["wte.weight"].copy()
    tensors = {"transformer." + n: a for n, a in w.items() if n != "lm_head.weight"}
    tensors["lm_head.weight"] = w["lm_head.weight"]
    edit_config(d, tie_word_embeddings=True)
    save_file(tensors, str(d / "model.safetensors"))
    assert load_checkpoint(d).tied_lm_head
    # untied in config.json but not stored
    edit_config(d, tie_word_embeddings=False)
    del tensors["lm_head.weight"]
    save_file(tensors, str(d / "model.safetensors"))
    assert "missing tensor 'transformer.lm_head.weight'" in error(d)


def test_sharded_checkpoint(tmp_path, model, ckpt):
    tensors = {"transformer." + n: a.astype(np.float32) for n, a in model.iter_tensors()}
    names = sorted(tensors)
    half = len(names) // 2
    (ckpt / "model.safetensors").unlink()
    shards = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(ckpt / file))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_same(load_checkpoint(ckpt), model)
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    assert "shard 'model-00002-of-00002.safetensors' does not exist" in error(ckpt)


def test_lazy_and_config_only_loading(ckpt, model):
    lazy = load_checkpoint(ckpt, lazy=True)
    assert lazy.is_lazy
    assert_same(lazy, model)
    (ckpt / "model.safetensors").unlink()
    bare = load_checkpoint(ckpt, weights=False)  # reads config.json only
    assert not bare.has_weights and bare.config.n_embd == 8


def test_save_streams_a_lazy_model_with_tokenizer_files(tmp_path):
    from dfx.compiler.frontend import preset_model
    from dfx.host.tokenizer import load_tokenizer

    lazy = preset_model("gpt2-tiny", seed=5, lazy=True)
    d = save_checkpoint(lazy, tmp_path / "tiny", dtype="float16", tokenizer=True)
    assert (d / "vocab.json").is_file() and (d / "merges.txt").is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert (d / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # not 0600
    assert_same(load_checkpoint(d), lazy)
    assert load_tokenizer(d).encode("Hello world") == [15496, 995]


def test_save_options(tmp_path, model):
    with pytest.raises(CheckpointError, match="dtype 'bfloat16' not allowed"):
        save_checkpoint(model, tmp_path / "x", dtype="bfloat16")
    with pytest.raises(CheckpointError, match="tokenizer=True needs vocab_size 50257"):
        save_checkpoint(model, tmp_path / "x", tokenizer=True)
    with pytest.raises(DfxError, match="has no weights"):
        save_checkpoint(GPT2Model(CFG, None), tmp_path / "x")
    (tmp_path / "f").write_text("")
    with pytest.raises(CheckpointError, match="is a file"):
        save_checkpoint(model, tmp_path / "f")


# ------------------------------------------------------------------------------- errors
def test_error_missing_directory_file_and_hub_ids(tmp_path, monkeypatch, ckpt):
    monkeypatch.chdir(tmp_path)
    assert error(tmp_path / "nope") == f"checkpoint directory '{tmp_path / 'nope'}' does not exist"
    msg = error("openai-community/gpt2")
    assert msg.startswith(
        "'openai-community/gpt2' is not a local directory; dfx never downloads: pass a local "
        "Hugging Face checkpoint directory (config.json + model.safetensors) or a preset name "
        "(gpt2, gpt2-medium"
    )
    assert "dfx never downloads" in error("gpt2")
    assert "is a file; expected a Hugging Face checkpoint directory" in error(
        ckpt / "model.safetensors"
    )
    assert "pass the directory that contains it" in error(ckpt / "config.json")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n_embd": KeyError}, "config.json: missing field 'n_embd' (a positive integer)"),
        ({"n_positions": KeyError, "n_ctx": KeyError}, "missing field 'n_positions' (or 'n_ctx'"),
        ({"n_embd": "8"}, "field 'n_embd' must be a positive integer, got \"8\" (string)"),
        ({"n_layer": True}, "field 'n_layer' must be a positive integer, got true (boolean)"),
        ({"n_head": 3}, "n_embd 8 is not divisible by n_head 3"),
        ({"layer_norm_epsilon": "x"}, "field 'layer_norm_epsilon' must be a positive number"),
        ({"model_type": "llama"}, 'model_type "llama" is not supported'),
        ({"activation_function": "relu"}, 'activation_function "relu" is not supported'),
        ({"n_inner": 16}, "n_inner 16 is not supported; only null or 4 * n_embd = 32"),
        ({"scale_attn_weights": False}, "scale_attn_weights false is not supported"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx true"),
        ({"add_cross_attention": True}, "add_cross_attention true is not supported"),
        ({"tie_word_embeddings": "yes"}, "field 'tie_word_embeddings' must be true or false"),
    ],
)
def test_config_errors(ckpt, change, expected):
    edit_config(ckpt, **change)
    assert expected in error(ckpt)
    assert str(ckpt / "config.json") in error(ckpt)


def test_config_variants_accepted(ckpt):
    edit_config(
        ckpt,
        n_positions=KeyError,
        activation_function="gelu_pytorch_tanh",
        layer_norm_epsilon=1e-6,
        n_inner=32,
    )
    cfg = load_checkpoint(ckpt).config
    assert (cfg.n_ctx, cfg.activation, cfg.layer_norm_epsilon) == (6, "gelu_new", 1e-6)
    edit_config(
        ckpt, model_type=KeyError, activation_function=KeyError, layer_norm_epsilon=KeyError
    )
    assert load_checkpoint(ckpt).config.layer_norm_epsilon == 1e-5


def test_config_file_errors(ckpt):
    (ckpt / "config.json").write_text('{"n_layer": 2,')
    assert "config.json: invalid JSON at line 1 column" in error(ckpt)
    (ckpt / "config.json").write_text("[1, 2]")
    assert "config.json: expected a JSON object, got array" in error(ckpt)
    (ckpt / "config.json").write_bytes(b"\xff\xfe")
    assert "config.json: not UTF-8 text" in error(ckpt)
    (ckpt / "config.json").unlink()
    assert f"checkpoint directory '{ckpt}' has no config.json" in error(ckpt)


def test_weights_file_errors(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"garbage!" * 3)
    assert "model.safetensors: not a readable safetensors file" in error(ckpt)
    (ckpt / "model.safetensors").unlink()
    assert error(ckpt) == f"checkpoint directory '{ckpt}' has no model.safetensors"
    (ckpt / "pytorch_model.bin").write_bytes(b"")
    msg = error(ckpt)
    assert "has no model.safetensors, only pytorch_model.bin; dfx reads only safetensors" in msg
    assert "save_pretrained" in msg


def test_tensor_errors(ckpt, model):
    good = {"transformer." + n: a.astype(np.float32) for n, a in model.iter_tensors()}

    def with_tensors(tensors) -> str:
        save_file(tensors, str(ckpt / "model.safetensors"))
        return error(ckpt)

    t = dict(good)
    del t["transformer.h.1.mlp.c_fc.bias"]
    assert (
        "missing tensor 'transformer.h.1.mlp.c_fc.bias' (or 'h.1.mlp.c_fc.bias'), "
        "expected shape [32]" in with_tensors(t)
    )
    t = {**good, "transformer.h.0.attn.c_attn.weight": np.zeros((24, 8), np.float32)}
    assert (
        "tensor 'transformer.h.0.attn.c_attn.weight' has shape [24, 8], expected [8, 24]"
        in with_tensors(t)
    )
    t = {**good, "transformer.ln_f.bias": np.zeros(8, np.int32)}
    assert (
        "tensor 'transformer.ln_f.bias' has dtype I32; allowed: F32, F16, BF16, F64"
        in with_tensors(t)
    )
    t = {**good, "h.0.ln_1.bias": np.zeros(8, np.float32)}
    assert "tensor 'h.0.ln_1.bias' is stored twice" in with_tensors(t)
    t = {**good, "transformer.h.0.crossattention.c_attn.weight": np.zeros((8, 16), np.float32)}
    assert "unexpected tensor 'transformer.h.0.crossattention.c_attn.weight'" in with_tensors(t)
    big = good["transformer.wte.weight"].copy()
    big[3, 4] = 1e5
    save_file({**good, "transformer.wte.weight": big}, str(ckpt / "model.safetensors"))
    with pytest.raises(WeightsError) as exc:
        load_checkpoint(ckpt)
    assert str(exc.value) == (
        f"{ckpt}: tensor 'wte.weight': values beyond the float16 range "
        "(max |x| 100000 > 65504); DFX computes in float16"
    )


@pytest.mark.slow
def test_transformers_loads_saved_checkpoint(tmp_path):
    """Optional: only where torch + transformers are installed (not a project dependency)."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch

    cfg = GPT2Config(n_layer=2, n_embd=16, n_head=2, n_ctx=8, vocab_size=50, name="hf")
    m = GPT2Model(cfg, weights(cfg))
    d = save_checkpoint(m, tmp_path / "hf")
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(d, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state = hf.state_dict()
    for name, arr in m.iter_tensors():
        np.testing.assert_array_equal(
            state["transformer." + name].to(torch.float32).numpy(), arr.astype(np.float32)
        )
    hf.save_pretrained(tmp_path / "back")
    assert_same(load_checkpoint(tmp_path / "back"), m)
