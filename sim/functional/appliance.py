"""The simulated appliance: N cards on a ring, the host interface and the generation driver.

:class:`Appliance` builds one :class:`~.card.Card` per card image of a :class:`Binary` (memory
images loaded, programs decoded once), connects them with a :class:`~.ring.Ring` and runs them:

* **scheduling**: round-robin; each card runs until it halts, blocks on the ring or has executed
  ``slice_instructions``. A round in which no card completes an instruction or moves a vector,
  while some card has not halted, is a deadlock (:class:`~.errors.DeadlockError` naming, for each
  card, its pc, annotation, instruction and what it waits for).
* **budget**: ``run(max_instructions=N)`` stops with :class:`~.errors.BudgetExceededError` after
  N instructions (all cards together) if the cards have not all halted; the default comes from
  :mod:`dfx.sim.limits` (derived from the model for a request, fixed per card for a program).
* **memory**: the cards' memories charge their pages to one
  :class:`~.memory.MemoryBudget` of ``memory_limit`` bytes (default
  :func:`dfx.sim.limits.default_memory_limit`), so host memory stays bounded by what the
  program and its binary touch.
* **host interface**: :meth:`Appliance.write`, :meth:`~Appliance.write_u32`,
  :meth:`~Appliance.read`, :meth:`~Appliance.read_u32`, :meth:`~Appliance.read_f16` on a card's
  HBM or DDR (not counted in the statistics), :meth:`~Appliance.stats`.
* **generation**: :meth:`Appliance.generate` / :func:`generate` run one request of a compiled
  GPT-2 binary through its symbols ``cfg``, ``tokens`` and ``logits`` (docs/compiler.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dfx.isa.container import Binary, read_binary
from dfx.isa.errors import indices
from dfx.sim.limits import default_instruction_budget, default_memory_limit

from .card import Card, decode_image
from .errors import BudgetExceededError, DeadlockError, HostError, SimError
from .memory import MemoryBudget
from .mpu import TileCache
from .ring import Ring

__all__ = ["Appliance", "generate", "DEFAULT_TILE_CACHE_BYTES"]

DEFAULT_TILE_CACHE_BYTES = 6 << 30
"""Default bound of the prepared-weight cache (all cards together)."""

_HOST_SPACES = ("hbm", "ddr")


class Appliance:
    """N simulated cards running ``binary`` (a :class:`Binary` or a ``.dfx`` path).

    ``golden_matvec``: compute matrix instructions with :func:`dfx.isa.golden.ops.matvec` and
    ``lutmv`` with :func:`dfx.isa.golden.lutgemm.lutmv` (on the unpacked stream, every time)
    instead of the bit-identical fast forms (slower; for cross-checks).
    ``tile_cache_bytes``: bound of the prepared-weight cache.
    ``slice_instructions``: instructions a card runs before the scheduler moves on.
    ``memory_limit``: host bytes the memories may allocate (None: the derived default).
    """

    def __init__(self, binary: Binary | str | os.PathLike[str], *, golden_matvec: bool = False,
                 tile_cache_bytes: int = DEFAULT_TILE_CACHE_BYTES,
                 slice_instructions: int = 20_000, memory_limit: int | None = None) -> None:
        if not isinstance(binary, Binary):
            binary = read_binary(binary)
        if binary.model.get("weights") is False:
            raise HostError("this binary was compiled without weights (--no-weights): it can be "
                            "inspected and timed, but not simulated; recompile it with weights")
        self.binary = binary
        self.core = binary.core
        self.n_cards = binary.n_cards
        self.slice_instructions = max(1, slice_instructions)
        self.cache = TileCache(tile_cache_bytes)
        self.memory = MemoryBudget(default_memory_limit(binary) if memory_limit is None
                                   else memory_limit)
        programs = [decode_image(img, i) for i, img in enumerate(binary.cards)]
        self.ring = self._new_ring()
        self.cards = []
        for i, img in enumerate(binary.cards):
            self.cards.append(Card(
                i, self.core, img, program=programs[i],
                tx=self.ring.tx(i) if self.ring else None,
                rx=self.ring.rx(i) if self.ring else None,
                cache=self.cache, golden_matvec=golden_matvec, n_cards=self.n_cards,
                budget=self.memory))
        self.instructions = 0
        self._started = False

    def _new_ring(self) -> Ring | None:
        if self.n_cards < 2:
            return None
        return Ring(self.n_cards, self.core.buffers.router_fifo_vectors, self.core.d)

    def reset(self) -> None:
        """Back to power-on (memories from the images, pcs 0), keeping the prepared weights of
        memory that no program or host write has touched."""
        def pristine(e: Any) -> bool:
            card, space = e.key[0]
            return not self.cards[card].mem[space].touched(e.lo, e.hi)

        self.cache.retain(pristine)
        self.ring = self._new_ring()
        for c in self.cards:
            c.tx = self.ring.tx(c.index) if self.ring else None
            c.rx = self.ring.rx(c.index) if self.ring else None
            c.reset()
        self.instructions = 0
        self._started = False

    @property
    def halted(self) -> bool:
        return all(c.halted for c in self.cards)

    # -- running ------------------------------------------------------------------------------
    def run(self, max_instructions: int | None = None,
            progress: Callable[[int], None] | None = None,
            progress_every: int = 1_000_000) -> int:
        """Run until every card has halted; returns the instructions executed by this call.

        ``max_instructions`` (all cards together; None: the program default of
        :func:`dfx.sim.limits.default_instruction_budget`).
        ``progress(total_instructions)`` is called about every ``progress_every`` instructions
        and once at the end. Raises :class:`DeadlockError`, :class:`BudgetExceededError` or any
        located :class:`SimError` from a card.
        """
        if max_instructions is None:
            max_instructions = default_instruction_budget(self.binary)
        self._started = True
        executed = 0
        next_report = self.instructions + progress_every
        with np.errstate(all="ignore"):
            while True:
                active = [c for c in self.cards if not c.halted]
                if not active:
                    break
                moved = False
                for c in active:
                    limit = self.slice_instructions
                    if max_instructions is not None:
                        limit = min(limit, max_instructions - executed)
                        if limit <= 0:
                            raise self._budget_error(max_instructions)
                    before = c.progress
                    k = c.run(limit)
                    executed += k
                    self.instructions += k
                    moved = moved or c.progress != before
                    if progress is not None and self.instructions >= next_report:
                        progress(self.instructions)
                        next_report = self.instructions + progress_every
                if not moved:
                    raise self._deadlock_error()
        if progress is not None:
            progress(self.instructions)
        return executed

    def _card_states(self) -> str:
        parts = []
        for c in self.cards:
            if c.halted:
                parts.append(f"card {c.index} has halted")
            else:
                parts.append(f"{c.where()}: {c.blocked or 'running'}")
        return "; ".join(parts)

    def _deadlock_error(self) -> DeadlockError:
        return DeadlockError(f"deadlock: no card can make progress: {self._card_states()}")

    def _budget_error(self, budget: int) -> BudgetExceededError:
        return BudgetExceededError(
            f"instruction budget of {budget:,} instructions used up before all cards halted "
            f"(a program that never halts? raise it with --max-instructions): "
            f"{self._card_states()}")

    # -- host interface -----------------------------------------------------------------------
    def _host(self, card: int, space: str) -> Any:
        if not 0 <= card < self.n_cards:
            raise HostError(f"card {card} does not exist (cards {indices(self.n_cards)})")
        if space not in _HOST_SPACES:
            raise HostError(f"the host reaches hbm and ddr, not {space!r}")
        return self.cards[card].mem[space]

    def write(self, card: int, space: str, addr: int, data: bytes | np.ndarray) -> None:
        """Write raw bytes (or an array's little-endian bytes) into a card's HBM or DDR."""
        m = self._host(card, space)
        try:
            m.write(addr, data, count=False, what="host write")
        except SimError as e:
            raise e.located(card, None, None, None) from None

    def write_u32(self, card: int, space: str, addr: int, values: int | Sequence[int]) -> None:
        """Write little-endian unsigned 32-bit words."""
        vals = np.atleast_1d(np.asarray(values, dtype=object))
        for v in vals:
            if not isinstance(v, int | np.integer) or not 0 <= int(v) <= 0xFFFFFFFF:
                raise HostError(f"write_u32: {v!r} is not an unsigned 32-bit value")
        self.write(card, space, addr, np.array([int(v) for v in vals], dtype="<u4"))

    def read(self, card: int, space: str, addr: int, nbytes: int) -> bytes:
        """Bytes of a card's HBM or DDR (all must have been written)."""
        m = self._host(card, space)
        try:
            return m.read(addr, nbytes, count=False, what="host read").tobytes()
        except SimError as e:
            raise e.located(card, None, None, None) from None

    def read_u32(self, card: int, space: str, addr: int, count: int) -> np.ndarray:
        return np.frombuffer(self.read(card, space, addr, 4 * count), dtype="<u4").copy()

    def read_f16(self, card: int, space: str, addr: int, count: int) -> np.ndarray:
        return np.frombuffer(self.read(card, space, addr, 2 * count), dtype="<f2").copy()

    def stats(self) -> dict[str, Any]:
        """Per card: instructions by class and op, bytes per memory and channel (HBM
        pseudo-channels, DDR channels), weight tiles and MACs, router vectors; per link: vectors;
        the prepared-weight cache."""
        return {
            "instructions": self.instructions,
            "cards": [c.stats() for c in self.cards],
            "links": self.ring.stats() if self.ring else [],
            "tile_cache": self.cache.stats(),
        }

    # -- generation ---------------------------------------------------------------------------
    def generate(self, tokens: Sequence[int], max_new_tokens: int, write_logits: bool = False,
                 progress: Callable[[int, int], None] | None = None,
                 max_instructions: int | None = None) -> tuple[list[int], np.ndarray | None]:
        """Run one request: the prompt ``tokens``, then ``max_new_tokens`` generated tokens.

        Returns ``(prompt + generated tokens, logits)``; ``logits`` is ``float16[P+G-1, vocab]``
        (row t: the logits computed at position t) when ``write_logits``, else None.
        ``progress(done, total)`` is called as each generated token is stored.
        ``max_instructions``: the run's budget (None: derived from the model, see
        :mod:`dfx.sim.limits`).
        """
        b = self.binary
        syms = b.cards[0].symbols
        for name in ("cfg", "tokens") + (("logits",) if write_logits else ()):
            if name not in syms:
                raise HostError(f"the binary has no {name!r} symbol: it was not compiled for "
                                "token generation")
        cfg, tok = syms["cfg"], syms["tokens"]
        prompt = [int(t) for t in tokens]
        vocab = _vocab(b)
        capacity = int(tok.get("capacity", tok["bytes"] // 4))
        if not prompt:
            raise HostError("empty prompt: give at least one token")
        if not isinstance(max_new_tokens, int | np.integer) or max_new_tokens < 1:
            raise HostError(f"max_new_tokens must be at least 1, got {max_new_tokens!r}")
        for i, t in enumerate(prompt):
            if vocab is not None and not 0 <= t < vocab:
                raise HostError(f"token id {t} at prompt position {i} is outside the "
                                f"vocabulary ({indices(vocab)})")
            if t < 0 or t > 0xFFFFFFFF:
                raise HostError(f"token id {t} at prompt position {i} is not a valid token id")
        p, g = len(prompt), int(max_new_tokens)
        if p + g > capacity:
            raise HostError(f"prompt of {p} tokens + {g} new tokens = {p + g} exceeds the "
                            f"model's context of {capacity} tokens")
        if self._started:
            self.reset()
        fields = list(cfg.get("fields", ("prompt_len", "gen_len", "write_logits", "card_id",
                                         "n_cards")))
        for c in range(self.n_cards):
            values = {"prompt_len": p, "gen_len": g, "write_logits": int(bool(write_logits)),
                      "card_id": c, "n_cards": self.n_cards}
            unknown = [f for f in fields if f not in values]
            if unknown:
                raise HostError(f"the binary's cfg block has unknown field {unknown[0]!r}")
            csym, tsym = b.cards[c].symbols.get("cfg"), b.cards[c].symbols.get("tokens")
            if csym is None or tsym is None:
                raise HostError(f"card {c} of the binary has no 'cfg'/'tokens' symbol")
            self.write_u32(c, csym["space"], csym["addr"], [values[f] for f in fields])
            self.write_u32(c, tsym["space"], tsym["addr"], prompt)
        card0 = self.cards[0]
        if progress is not None:
            first = tok["addr"] + 4 * p

            def on_sw(space: str, addr: int, value: int) -> None:
                if space == tok["space"] and first <= addr < first + 4 * g:
                    progress((addr - first) // 4 + 1, g)

            card0.on_sw = on_sw
        if max_instructions is None:
            max_instructions = default_instruction_budget(b, p + g)
        try:
            self.run(max_instructions=max_instructions)
        finally:
            card0.on_sw = None
        out = self.read_u32(0, tok["space"], tok["addr"], p + g)
        logits = None
        if write_logits:
            lg = syms["logits"]
            row = int(lg["row_elements"])
            nv = int(lg.get("vocab", vocab or row))
            flat = self.read_f16(0, lg["space"], lg["addr"], (p + g - 1) * row)
            logits = flat.reshape(p + g - 1, row)[:, :nv].copy()
        return [int(t) for t in out], logits


def _vocab(b: Binary) -> int | None:
    lg = b.cards[0].symbols.get("logits")
    if lg is not None and "vocab" in lg:
        return int(lg["vocab"])
    v = b.model.get("vocab_size")
    return int(v) if v is not None else None


def generate(binary: Binary | str | os.PathLike[str], tokens: Sequence[int],
             max_new_tokens: int, write_logits: bool = False,
             progress: Callable[[int, int], None] | None = None,
             max_instructions: int | None = None, **appliance_options: Any
             ) -> tuple[list[int], np.ndarray | None]:
    """Run one generation request on a fresh :class:`Appliance` (see
    :meth:`Appliance.generate`); ``appliance_options`` go to the constructor."""
    return Appliance(binary, **appliance_options).generate(
        tokens, max_new_tokens, write_logits=write_logits, progress=progress,
        max_instructions=max_instructions)
