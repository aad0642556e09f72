"""Reference semantics of the DMA instructions on byte images, written with the functional
simulator's memory (dfx.sim.functional.memory) and the formulas of sim/functional/card.py."""

from __future__ import annotations

import numpy as np

from dfx.sim.functional.memory import Memory


def memories(images: dict[str, bytes]) -> dict[str, Memory]:
    out = {}
    for name, img in images.items():
        m = Memory(name, 1 << 30)
        m.write(0, np.frombuffer(img, dtype=np.uint8), count=False)
        out[name] = m
    return out


def load(m: Memory, src: int, n: int, stride: int, d: int) -> np.ndarray:
    """card._op_load: ceil(n/d) vectors (uint16), zero-padded."""
    nv = -(-n // d)
    out = np.zeros(nv * d, dtype=np.uint16)
    if stride == 0:
        out[:n] = m.read(src, 2 * n).view(np.uint16)
    else:
        full, rem = divmod(n, d)
        if full:
            out[:full * d] = m.read_runs(src, full, 2 * d, stride).reshape(-1).view(np.uint16)
        if rem:
            out[full * d:n] = m.read(src + full * stride, 2 * rem).view(np.uint16)
    return out.reshape(nv, d)


def store(m: Memory, dst: int, n: int, stride: int, v: np.ndarray, d: int) -> None:
    """card._op_store (v: the n elements, uint16)."""
    if stride == 0:
        m.write(dst, v)
        return
    full, rem = divmod(n, d)
    if full:
        m.write_runs(dst, v[:full * d].reshape(full, d).view(np.uint8).reshape(full, 2 * d),
                     stride)
    if rem:
        m.write(dst + full * stride, v[full * d:])


def store_t(m: Memory, dst: int, n: int, stride: int, v: np.ndarray, d: int, l: int) -> None:  # noqa: E741
    """card._op_store_t."""
    c = np.arange(n, dtype=np.int64)
    m.scatter16(dst + (c // l) * stride + (c % l) * (2 * d), v)


def copy(ms: Memory, src: int, md: Memory, dst: int, n: int) -> None:
    """card._op_copy (memmove)."""
    data = ms.read(src, 2 * n).copy()
    md.write(dst, data)
