"""The QSFP ring between the cards (DFX §V router).

Card ``i`` sends to card ``(i + 1) % N``; each card has one receive FIFO, fed by card
``(i - 1) % N``, holding at most ``core.buffers.router_fifo_vectors`` d-wide FP16 vectors.
A :class:`Link` is that FIFO. Transfers are *vector by vector*: a ``send`` pushes as many of its
vectors as there is room for and blocks (keeping its progress) until the rest fit; a ``recv``
pops what has arrived and blocks until it has all its vectors. So a single instruction may move
more vectors than the FIFO holds, and back-pressure never loses or reorders data.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["Link", "Ring"]


class Link:
    """The receive FIFO of card ``dst`` (written by card ``src``)."""

    def __init__(self, src: int, dst: int, capacity: int, d: int) -> None:
        if capacity <= 0:
            raise ValueError("router FIFO capacity must be > 0")
        self.src, self.dst, self.capacity, self.d = src, dst, capacity, d
        self._blocks: deque[np.ndarray] = deque()  # [k, d] float16 blocks, oldest first
        self._head = 0  # vectors already taken from the first block
        self.occupancy = 0
        self.vectors = 0  # vectors that went through the link (statistics)
        self.peak = 0

    @property
    def room(self) -> int:
        return self.capacity - self.occupancy

    def push(self, vectors: np.ndarray) -> int:
        """Append as many of ``vectors`` (float16[k, d]) as fit; returns how many."""
        k = min(self.room, vectors.shape[0])
        if k > 0:
            self._blocks.append(np.array(vectors[:k], dtype=np.float16, copy=True))
            self.occupancy += k
            self.vectors += k
            self.peak = max(self.peak, self.occupancy)
        return k

    def pop(self, n: int) -> np.ndarray:
        """Remove and return up to ``n`` of the oldest vectors (float16[k, d], k <= n)."""
        k = min(n, self.occupancy)
        out = np.empty((k, self.d), dtype=np.float16)
        got = 0
        while got < k:
            blk = self._blocks[0]
            take = min(k - got, blk.shape[0] - self._head)
            out[got:got + take] = blk[self._head:self._head + take]
            got += take
            self._head += take
            if self._head == blk.shape[0]:
                self._blocks.popleft()
                self._head = 0
        self.occupancy -= k
        return out

    def __repr__(self) -> str:
        return (f"Link(card {self.src} -> card {self.dst}, {self.occupancy}/{self.capacity} "
                f"vectors)")


class Ring:
    """``n`` links; ``links[i]`` is card i's receive FIFO (from card ``(i - 1) % n``)."""

    def __init__(self, n: int, capacity: int, d: int) -> None:
        self.n = n
        self.links = [Link((i - 1) % n, i, capacity, d) for i in range(n)]

    def tx(self, card: int) -> Link:
        """The FIFO that ``card`` sends into."""
        return self.links[(card + 1) % self.n]

    def rx(self, card: int) -> Link:
        """The FIFO that ``card`` receives from."""
        return self.links[card]

    def stats(self) -> list[dict]:
        return [{"src": lk.src, "dst": lk.dst, "vectors": lk.vectors, "peak": lk.peak,
                 "in_flight": lk.occupancy} for lk in self.links]
