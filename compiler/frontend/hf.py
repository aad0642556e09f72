"""Read and write Hugging Face GPT-2 checkpoint directories (never downloads anything).

A checkpoint directory holds ``config.json`` and ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``), optionally ``vocab.json`` + ``merges.txt`` for the tokenizer
(see :mod:`dfx.host.tokenizer`).

Reading (:func:`load_checkpoint`):

* ``config.json`` needs ``n_layer``, ``n_embd``, ``n_head``, ``n_positions`` (or the legacy
  ``n_ctx``) and ``vocab_size``; ``layer_norm_epsilon`` defaults to 1e-5 and
  ``activation_function`` to ``gelu_new`` as in ``transformers``. ``gelu_pytorch_tanh`` is the
  same function and is accepted. ``model_type``, if present, must be ``gpt2``. Options that
  change the network (``n_inner`` other than ``4 * n_embd``, ``scale_attn_weights: false``,
  ``scale_attn_by_inverse_layer_idx: true``, ``add_cross_attention: true``) are rejected.
* Tensor names may carry the ``transformer.`` prefix (``GPT2LMHeadModel``) or not
  (``GPT2Model``). The causal-mask buffers ``attn.bias`` / ``attn.masked_bias`` are ignored, and
  so are tensors outside the transformer (heads of other model classes).
* Tensors may be float32, float16, float64 or bfloat16. NumPy has no bfloat16, and
  ``safetensors.numpy`` refuses it, so bfloat16 tensors are read as raw ``uint16`` from the file
  (offsets from the safetensors header) and widened exactly to float32 (``bits << 16``). All
  tensors are then rounded to float16 (round to nearest even); a value beyond the float16 range
  is an error naming the tensor.
* ``lm_head.weight``, if stored and different from ``wte.weight``, is kept as an untied head.
  With ``tie_word_embeddings: false`` it is required.

Writing (:func:`save_checkpoint`) produces a directory that ``transformers``'
``GPT2LMHeadModel.from_pretrained(dir)`` loads: the standard GPT-2 ``config.json`` and a
``model.safetensors`` with ``transformer.``-prefixed names in float32 or float16, streamed one
tensor at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from dfx.isa.documents import open_input, parse_json, read_json
from dfx.isa.outputs import open_output, write_output

from .gpt2 import (
    ACTIVATION,
    LM_HEAD,
    CheckpointError,
    FrontendError,
    GPT2Config,
    GPT2Model,
    ModelConfigError,
    WeightsError,
    to_fp16,
)

__all__ = [
    "CONFIG_FILE",
    "checkpoint_files",
    "WEIGHTS_FILE",
    "load_checkpoint",
    "read_config",
    "save_checkpoint",
]

CONFIG_FILE = "config.json"
#: Size limits of a checkpoint's JSON files (docs/limits.md); real ones are a few KiB.
MAX_CONFIG_BYTES = 1 << 20
MAX_INDEX_BYTES = 64 << 20
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PREFIX = "transformer."
_OTHER_FORMATS = (
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
)
_CONVERT_HINT = (
    'convert it with `python -c "from transformers import GPT2LMHeadModel as M; '
    "M.from_pretrained('DIR').save_pretrained('DIR')\"`"
)
_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
_TRANSFORMER_PARTS = ("wte.", "wpe.", "h.", "ln_f.")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_NP_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
_ST_DTYPES = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}


def _kind(value: object) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    """JSON text of a value for a one-line message, cut at 60 characters."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def hub_id_error(src: str) -> CheckpointError:
    """The error for a name that is neither a local directory nor a preset."""
    from .presets import list_presets

    return CheckpointError(
        f"{src!r} is not a local directory; dfx never downloads: pass a local Hugging Face "
        "checkpoint directory (config.json + model.safetensors) or a preset name "
        f"({', '.join(list_presets())})"
    )


def _check_directory(path: Path, src: str) -> None:
    if path.is_dir():
        return
    if path.exists():
        hint = (
            " (pass the directory that contains it)"
            if path.suffix in (".safetensors", ".json", ".bin")
            else ""
        )
        raise CheckpointError(
            f"{src!r} is a file; expected a Hugging Face checkpoint directory "
            f"(config.json + model.safetensors){hint}"
        )
    if _HUB_ID.match(src) and ".." not in src:
        raise hub_id_error(src)
    raise CheckpointError(f"checkpoint directory {src!r} does not exist")


# ---------------------------------------------------------------------------------- config
def _field(cfg: dict[str, Any], where: str, key: str, kind: str) -> Any:
    value = cfg[key]
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        want = "a positive integer"
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        want = "a positive number"
    elif kind == "bool":
        ok = isinstance(value, bool)
        want = "true or false"
    else:
        ok = isinstance(value, str)
        want = "a string"
    if not ok:
        raise CheckpointError(
            f"{where}: field {key!r} must be {want}, got {_short(value)} ({_kind(value)})"
        )
    return value


def read_config(path: str | os.PathLike[str]) -> tuple[GPT2Config, bool]:
    """Parse ``<path>/config.json``: the :class:`GPT2Config` and ``tie_word_embeddings``."""
    src = os.fspath(path)
    directory = Path(src)
    _check_directory(directory, src)
    cfg_path = directory / CONFIG_FILE
    where = str(cfg_path)
    if not cfg_path.is_file():
        raise CheckpointError(
            f"checkpoint directory {src!r} has no {CONFIG_FILE} "
            "(expected a Hugging Face GPT-2 checkpoint: config.json + model.safetensors)"
        )
    cfg = read_json(cfg_path, error=CheckpointError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {_kind(cfg)}")

    if "model_type" in cfg and cfg["model_type"] != "gpt2":
        raise CheckpointError(
            f"{where}: model_type {_short(cfg['model_type'])} is not supported; "
            'dfx compiles only GPT-2 checkpoints (model_type "gpt2")'
        )
    for key in ("n_layer", "n_embd", "n_head", "vocab_size"):
        if key not in cfg:
            raise CheckpointError(f"{where}: missing field {key!r} (a positive integer)")
    ctx_key = "n_positions" if "n_positions" in cfg else "n_ctx"
    if ctx_key not in cfg:
        raise CheckpointError(
            f"{where}: missing field 'n_positions' (or 'n_ctx'; a positive integer)"
        )
    ints = {
        k: _field(cfg, where, k, "int")
        for k in ("n_layer", "n_embd", "n_head", "vocab_size", ctx_key)
    }
    eps = (
        _field(cfg, where, "layer_norm_epsilon", "number") if "layer_norm_epsilon" in cfg else 1e-5
    )
    act = (
        _field(cfg, where, "activation_function", "str")
        if "activation_function" in cfg
        else ACTIVATION
    )
    if act == "gelu_pytorch_tanh":  # the same tanh approximation under another name
        act = ACTIVATION
    if act != ACTIVATION:
        raise CheckpointError(
            f"{where}: activation_function {_short(act)} is not supported; "
            f'DFX implements only "{ACTIVATION}" (GELU, tanh approximation)'
        )
    n_inner = cfg.get("n_inner")
    if n_inner is not None and n_inner != 4 * ints["n_embd"]:
        raise CheckpointError(
            f"{where}: n_inner {_short(n_inner)} is not supported; "
            f"only null or 4 * n_embd = {4 * ints['n_embd']}"
        )
    for key, supported in (
        ("scale_attn_weights", True),
        ("scale_attn_by_inverse_layer_idx", False),
        ("add_cross_attention", False),
    ):
        if key in cfg and _field(cfg, where, key, "bool") != supported:
            raise CheckpointError(
                f"{where}: {key} {_short(cfg[key])} is not supported; "
                f"only {json.dumps(supported)} (standard GPT-2)"
            )
    tied = (
        _field(cfg, where, "tie_word_embeddings", "bool") if "tie_word_embeddings" in cfg else True
    )
    try:
        config = GPT2Config(
            n_layer=ints["n_layer"],
            n_embd=ints["n_embd"],
            n_head=ints["n_head"],
            n_ctx=ints[ctx_key],
            vocab_size=ints["vocab_size"],
            layer_norm_epsilon=eps,
            activation=act,
            name=directory.resolve().name or "checkpoint",
        )
    except ModelConfigError as e:
        raise CheckpointError(f"{where}: {e}") from e
    return config, tied


def checkpoint_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a checkpoint directory's load may read (configuration, weights and their
    shards, tokenizer): an output must never replace one of them."""
    directory = Path(path)
    if not directory.is_dir():
        return []
    names = [CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE, "vocab.json", "merges.txt",
             "tokenizer.json", *_OTHER_FORMATS]
    files = [directory / n for n in names]
    index = directory / INDEX_FILE
    if index.is_file():
        with contextlib.suppress(FrontendError):
            files += _TensorFiles._shards(index)
    return [f for f in files if f.exists()]


# --------------------------------------------------------------------------------- tensors
class _TensorFiles:
    """Tensor names of one or several safetensors files, mapped to canonical names."""

    def __init__(self, directory: Path, src: str) -> None:
        single = directory / WEIGHTS_FILE
        index = directory / INDEX_FILE
        if single.is_file():
            files = [single]
        elif index.is_file():
            files = self._shards(index)
        else:
            other = [n for n in _OTHER_FORMATS if (directory / n).exists()]
            if other:
                raise CheckpointError(
                    f"checkpoint directory {src!r} has no {WEIGHTS_FILE}, only {other[0]}; "
                    f"dfx reads only safetensors: {_CONVERT_HINT}"
                )
            raise CheckpointError(f"checkpoint directory {src!r} has no {WEIGHTS_FILE}")
        #: stored name -> (file, dtype string, shape)
        self.entries: dict[str, tuple[Path, str, tuple[int, ...]]] = {}
        for file in files:
            try:
                with safe_open(str(file), framework="numpy") as f:
                    for key in f.keys():
                        sl = f.get_slice(key)
                        self.entries[key] = (file, sl.get_dtype(), tuple(sl.get_shape()))
            except (SafetensorError, OSError, ValueError) as e:
                raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from e
        self._headers: dict[Path, tuple[int, dict[str, Any]]] = {}

    @staticmethod
    def _shards(index: Path) -> list[Path]:
        data = read_json(index, error=CheckpointError, max_bytes=MAX_INDEX_BYTES)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            raise CheckpointError(
                f"{index}: invalid index (needs a JSON object with a 'weight_map' object)"
            )
        if not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: weight_map values must be shard file names")
        names = sorted(set(weight_map.values()))
        files = []
        for name in names:
            if not isinstance(name, str) or Path(name).name != name:
                raise CheckpointError(f"{index}: shard name {name!r} is not a plain file name")
            if not (index.parent / name).is_file():
                raise CheckpointError(f"{index}: shard {name!r} does not exist")
            files.append(index.parent / name)
        return files

    def canonical(self, where: str) -> dict[str, str]:
        """Canonical name -> stored name; rejects duplicates and foreign transformer parts."""
        mapping: dict[str, str] = {}
        for key in self.entries:
            name = key[len(PREFIX) :] if key.startswith(PREFIX) else key
            if _BUFFER.match(name):
                continue
            if not (
                name.startswith(_TRANSFORMER_PARTS) or name == LM_HEAD or key.startswith(PREFIX)
            ):
                continue  # a head of another model class: not used by the LM
            if name in mapping:
                raise CheckpointError(
                    f"{where}: tensor {name!r} is stored twice ({mapping[name]!r} and {key!r})"
                )
            mapping[name] = key
        return mapping

    def _header(self, file: Path) -> tuple[int, dict[str, Any]]:
        if file not in self._headers:
            with open_input(file, error=CheckpointError) as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > MAX_SAFETENSORS_HEADER:
                    raise CheckpointError(f"{file}: safetensors header of {n} bytes is too large")
                header = parse_json(f.read(n), f"{file}: safetensors header",
                                    error=CheckpointError, max_bytes=MAX_SAFETENSORS_HEADER)
            if not isinstance(header, dict):
                raise CheckpointError(f"{file}: safetensors header is not a JSON object")
            self._headers[file] = (8 + n, header)
        return self._headers[file]

    def read(self, key: str) -> np.ndarray:
        file, dtype, shape = self.entries[key]
        try:
            if dtype == "BF16":
                start, header = self._header(file)
                begin, _ = header[key]["data_offsets"]
                raw = np.fromfile(
                    file, dtype="<u2", count=int(np.prod(shape)), offset=start + begin
                )
                return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
            with safe_open(str(file), framework="numpy") as f:
                return f.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{file}: cannot read tensor {key!r} ({e})") from e


def load_checkpoint(
    path: str | os.PathLike[str], *, weights: bool = True, lazy: bool = False
) -> GPT2Model:
    """Load a local Hugging Face GPT-2 checkpoint directory as an FP16 :class:`GPT2Model`.

    ``weights=False`` reads only ``config.json``. ``lazy=True`` checks names, shapes and dtypes
    now but reads each tensor only when it is accessed (again on each access).
    """
    src = os.fspath(path)
    config, tied = read_config(src)
    directory = Path(src)
    if not weights:
        return GPT2Model(config, None, source=src)
    files = _TensorFiles(directory, src)
    where = str(directory / WEIGHTS_FILE)
    mapping = files.canonical(where)
    shapes = config.tensor_shapes(lm_head=True)
    unexpected = sorted(n for n in mapping if n not in shapes)
    if unexpected:
        raise CheckpointError(
            f"{where}: unexpected tensor {mapping[unexpected[0]]!r}; not part of a standard "
            "GPT-2 (cross-attention and other variants are not supported)"
        )
    required = [n for n in shapes if n != LM_HEAD or not tied]
    for name in required:
        if name not in mapping:
            raise CheckpointError(
                f"{where}: missing tensor {PREFIX + name!r} (or {name!r}), "
                f"expected shape {list(shapes[name])}"
            )
    for name, key in mapping.items():
        _, dtype, shape = files.entries[key]
        if shape != shapes[name]:
            raise CheckpointError(
                f"{where}: tensor {key!r} has shape {list(shape)}, expected {list(shapes[name])} "
                f"(n_embd {config.n_embd}, n_ctx {config.n_ctx}, vocab_size {config.vocab_size})"
            )
        if dtype not in _NP_DTYPES and dtype != "BF16":
            raise CheckpointError(
                f"{where}: tensor {key!r} has dtype {dtype}; allowed: F32, F16, BF16, F64"
            )

    def loader(name: str) -> np.ndarray:
        return files.read(mapping[name])

    untied = False
    if LM_HEAD in mapping:
        if not tied:
            untied = True
        else:
            wte = to_fp16("wte.weight", loader("wte.weight"), shapes["wte.weight"])
            head = to_fp16(LM_HEAD, loader(LM_HEAD), shapes[LM_HEAD])
            untied = not np.array_equal(head, wte)
            del wte, head
    return GPT2Model.from_loader(config, loader, lm_head=untied, lazy=lazy, source=src)


# --------------------------------------------------------------------------------- writing
def hf_config_dict(config: GPT2Config, *, tied: bool = True, dtype: str = "float32") -> dict:
    """The standard ``transformers`` GPT-2 ``config.json`` content for ``config``."""
    d: dict[str, Any] = {
        "activation_function": config.activation,
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "model_type": "gpt2",
        "n_ctx": config.n_ctx,
        "n_embd": config.n_embd,
        "n_head": config.n_head,
        "n_inner": None,
        "n_layer": config.n_layer,
        "n_positions": config.n_ctx,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": config.vocab_size,
    }
    if config.vocab_size > 50256:  # GPT-2's <|endoftext|>
        d["bos_token_id"] = d["eos_token_id"] = 50256
    return d


def save_checkpoint(
    model: GPT2Model,
    path: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    tokenizer: bool = False,
) -> Path:
    """Write ``model`` as a Hugging Face checkpoint directory (created if needed); returns it.

    ``dtype`` is ``"float32"`` or ``"float16"`` (FP16 weights widen exactly to float32).
    ``tokenizer=True`` also copies GPT-2's ``vocab.json`` and ``merges.txt`` (needs the real
    50257-token vocabulary). Existing files of the same names are replaced.
    """
    if dtype not in ("float32", "float16"):
        raise CheckpointError(
            f"save_checkpoint: dtype {dtype!r} not allowed; use float32 or float16"
        )
    if not model.has_weights:
        raise WeightsError(f"model {model.config.name!r} has no weights to save")
    if tokenizer and model.config.vocab_size != 50257:
        raise CheckpointError(
            f"save_checkpoint: tokenizer=True needs vocab_size 50257 (GPT-2's), "
            f"model {model.config.name!r} has {model.config.vocab_size}"
        )
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{os.fspath(path)!r} is a file; expected a directory to write into")
    out.mkdir(parents=True, exist_ok=True)
    np_dtype = np.dtype(dtype)
    config = hf_config_dict(model.config, tied=model.tied_lm_head, dtype=dtype)

    names = model.names()
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    item = np_dtype.itemsize
    shapes = model.config.tensor_shapes(lm_head=True)
    for name in names:
        size = int(np.prod(shapes[name])) * item
        stored = name if name == LM_HEAD else PREFIX + name
        header[stored] = {
            "dtype": _ST_DTYPES[np_dtype],
            "shape": list(shapes[name]),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)

    with open_output(out / WEIGHTS_FILE, option="") as f:  # atomic (dfx.isa.outputs)
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _name, tensor in model.iter_tensors():
            f.write(memoryview(np.ascontiguousarray(tensor, dtype=np_dtype.newbyteorder("<"))))
    write_output(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n", option="")
    if tokenizer:
        from dfx.host.tokenizer import gpt2_tokenizer_files

        vocab, merges = gpt2_tokenizer_files()
        shutil.copyfile(vocab, out / "vocab.json")
        shutil.copyfile(merges, out / "merges.txt")
    return out
