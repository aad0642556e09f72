"""The sparse memory model: channel mapping, bounds, written-ness, statistics."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.config import load_core
from dfx.sim.functional import MemoryAccessError, UninitializedReadError
from dfx.sim.functional.memory import Memory, ddr_memory, hbm_memory, wbuf_memory


def test_hbm_interleave_mapping_tiny() -> None:
    m = hbm_memory(load_core("tiny"))  # 4 pseudo-channels, 16-byte interleave
    assert m.locate(0) == (0, 0)
    assert m.locate(15) == (0, 15)
    assert m.locate(16) == (1, 0)
    assert m.locate(63) == (3, 15)
    assert m.locate(64) == (0, 16)
    assert m.locate(70) == (0, 22)
    assert m.locate(m.capacity - 1) == (3, (1 << 20) - 1)


def test_hbm_interleave_mapping_u280_formula(rng: np.random.Generator) -> None:
    core = load_core("dfx-u280")
    m = hbm_memory(core)
    i, p = core.b.hbm.interleave_bytes, core.b.hbm.pseudo_channels
    assert m.capacity == 8 << 30
    for a in rng.integers(0, m.capacity, 200).tolist():
        assert m.locate(a) == ((a // i) % p, (a // (i * p)) * i + a % i)


def test_ddr_channels() -> None:
    m = ddr_memory(load_core("tiny"))  # 2 x 8 MiB
    assert m.locate(0) == (0, 0)
    assert m.locate((8 << 20) + 5) == (1, 5)
    m.write((8 << 20) - 4, np.zeros(8, np.uint8))
    assert m.channel_written.tolist() == [4, 4]


def test_out_of_bounds() -> None:
    m = hbm_memory(load_core("tiny"))
    with pytest.raises(MemoryAccessError, match=r"HBM write of 0x3fffff\.\.0x400001 is outside"):
        m.write(m.capacity - 1, np.zeros(2, np.uint8))
    with pytest.raises(MemoryAccessError, match="outside"):
        m.read(-2, 2)
    with pytest.raises(MemoryAccessError, match="WBUF"):
        wbuf_memory(load_core("tiny")).read(64 * 64, 1)


def test_never_written_detection() -> None:
    m = Memory("hbm", 1 << 16, page_bits=8)
    with pytest.raises(UninitializedReadError, match=r"HBM read of 0x0\.\.0x4 includes "
                                                     r"never-written bytes \(first at 0x0\)"):
        m.read(0, 4)
    m.write(10, np.arange(10, dtype=np.uint8))
    assert m.read(10, 10).tolist() == list(range(10))
    with pytest.raises(UninitializedReadError, match=r"first at 0x14"):
        m.read(12, 10)
    with pytest.raises(UninitializedReadError, match=r"first at 0x8"):
        m.read(8, 4)
    m.fill(20, 300, 7)  # crosses two page boundaries
    assert m.read(18, 4).tolist() == [8, 9, 7, 7]
    assert m.is_written(10, 310) and not m.is_written(9, 2)
    assert m.first_unwritten(10, 400) == 320


def test_partial_pages_become_full() -> None:
    m = Memory("ddr", 1 << 12, page_bits=8)
    m.write(0, np.ones(100, np.uint8))
    assert 0 in m._partial
    m.write(100, np.ones(156, np.uint8))
    assert 0 not in m._partial and 0 in m._pages


def test_sparse_allocation_of_huge_spaces() -> None:
    m = ddr_memory(load_core("dfx-u280"))  # 32 GiB
    assert m.capacity == 32 << 30
    m.write(30 << 30, np.arange(8, dtype=np.uint8))
    assert m.read(30 << 30, 8).tolist() == list(range(8))
    assert m.allocated_bytes == 1 << 20


def test_random_accesses_match_a_dense_model(rng: np.random.Generator) -> None:
    size = 4096
    m = Memory("hbm", size, channels=4, interleave=16, page_bits=7)
    data = np.zeros(size, np.uint8)
    written = np.zeros(size, bool)
    for _ in range(400):
        a = int(rng.integers(0, size - 1))
        n = int(rng.integers(1, min(600, size - a) + 1))
        if rng.random() < 0.5:
            v = rng.integers(0, 256, n).astype(np.uint8)
            m.write(a, v)
            data[a:a + n] = v
            written[a:a + n] = True
        elif written[a:a + n].all():
            assert (m.read(a, n) == data[a:a + n]).all()
        else:
            first = a + int(np.argmin(written[a:a + n]))
            with pytest.raises(UninitializedReadError, match=f"first at {first:#x}"):
                m.read(a, n)


def test_runs_and_scatter() -> None:
    m = Memory("hbm", 1 << 12, page_bits=8)
    m.write(0, np.arange(256, dtype=np.uint8))
    m.write(256, np.arange(256, dtype=np.uint8))
    runs = m.read_runs(10, 3, 4, 100)
    assert runs.tolist() == [[10, 11, 12, 13], [110, 111, 112, 113], [210, 211, 212, 213]]
    across = m.read_runs(200, 2, 4, 100)  # second run on the next page
    assert across.tolist() == [[200, 201, 202, 203], [44, 45, 46, 47]]
    m.write_runs(1000, np.array([[1, 2], [3, 4]], np.uint8), 10)
    assert m.read(1000, 2).tolist() == [1, 2] and m.read(1010, 2).tolist() == [3, 4]
    assert not m.is_written(1002, 8)
    # later elements win on the same address
    m.scatter16(np.array([2000, 2004, 2000]), np.array([1, 2, 3], np.uint16))
    assert m.read(2000, 2).view(np.uint16).tolist() == [3]
    assert m.read(2004, 2).view(np.uint16).tolist() == [2]
    assert not m.is_written(2002, 2)


def test_channel_statistics() -> None:
    m = hbm_memory(load_core("tiny"))  # 4 PCs x 16 B
    m.fill(0, 4096, 0)
    m.read(8, 32)  # [8,16) -> pc0, [16,32) -> pc1, [32,40) -> pc2
    assert m.channel_read.tolist() == [8, 16, 8, 0]
    m.read(0, 4 * 16 * 10)
    assert m.channel_read.tolist() == [168, 176, 168, 160]
    m.read_runs(0, 2, 16, 64)  # both runs in pc0
    assert m.channel_read.tolist() == [200, 176, 168, 160]
    assert m.read_bytes == 32 + 640 + 32
    m.read(0, 16, count=False)  # host accesses are not counted
    assert m.read_bytes == 704
    m.write(48, np.zeros(32, np.uint8))
    assert m.channel_written.tolist() == [16, 0, 0, 16]
    for _ in range(5000):  # the batched log flushes on its own
        m.read(0, 16)
    assert m.channel_read.tolist()[0] == 200 + 5000 * 16


def test_listeners_see_writes() -> None:
    m = Memory("ddr", 1 << 12)
    seen: list[tuple[int, int]] = []
    m.listeners.append(lambda lo, hi: seen.append((lo, hi)))
    m.write(4, b"abcd")
    m.scatter16(np.array([100, 40]), np.zeros(2, np.uint16))
    assert seen == [(4, 8), (40, 102)]
