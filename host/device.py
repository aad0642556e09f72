"""The host's devices behind one interface (DFX §IV-A; issue 13 "Host runtime"): a
:class:`Device` is one card as the host drives it — load its card image, write the ``cfg``
block and the tokens, start it, wait for done, read the tokens and logits back.
:func:`generate` is the host's whole request on N devices, the same code for every backend:

* :class:`RtlDevice`: the core RTL on Verilator (:mod:`dfx.host.rtl_backend`), the bare core
  or the Alveo kernel top (``top="board"``), one card or N in one simulation
  (:func:`rtl_devices`);
* :class:`dfx.host.xrt_backend.XrtDevice`: an Alveo card through XRT's ``pyxrt``.

A device may run in batch (the RTL simulation runs the whole card in one go), so the host
names the regions it will read when it starts the card (``start(cards, reads)``); a device
that can read at any time (XRT) ignores them.

Addresses are the ISA's: ``space`` ``"hbm"`` (the linear HBM space, interleaved over the
pseudo-channels, :func:`hbm_pieces`) or ``"ddr"``, byte address ``addr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from dfx.isa.container import Binary, CardImage
from dfx.isa.errors import DfxError

__all__ = ["Device", "Region", "RtlDevice", "RunStatus", "generate", "hbm_pieces",
           "request_writes", "rtl_devices"]

SENTINEL = 0xFFFF_FFFF


class Region(NamedTuple):
    """``nbytes`` bytes of ``space`` (``hbm``/``ddr``) at ISA byte address ``addr``."""

    space: str
    addr: int
    nbytes: int


@dataclass(frozen=True)
class RunStatus:
    """The control slave's status registers after done (``status`` 0: no fault)."""

    status: int
    error_pc: int = 0
    error_word: int = 0
    cycles: int = 0


@runtime_checkable
class Device(Protocol):
    """One card (module doc)."""

    card: int

    def load(self, image: CardImage) -> None:
        """Put the card image's program and memory segments into the card's memories."""

    def write(self, space: str, addr: int, data: bytes) -> None:
        """Host data into the card's memory (after :meth:`load`, before :meth:`start`)."""

    def start(self, cards: int, reads: Sequence[Region] = ()) -> None:
        """Kernel arguments (``cards`` on the ring) and ap_start."""

    def wait(self, timeout_s: float | None = None) -> RunStatus:
        """Until the card signals done; its status registers."""

    def read(self, region: Region) -> bytes:
        """Bytes of the card's memory after :meth:`wait` (a region named at start)."""


def hbm_pieces(core: Any, addr: int, nbytes: int) -> Iterator[tuple[int, int, int, int]]:
    """(pseudo-channel, local byte offset, offset in the data, length) of the pieces of an
    HBM ISA range (docs/core.md "Geometry": byte ``a`` is in pseudo-channel ``(a // W) % C``
    at local offset ``(a // R)·W + a % W``, W = ``timing.dma_port_bits / 8``, R = C·W)."""
    w, c = core.timing.dma_port_bits // 8, core.b.hbm.pseudo_channels
    r = w * c
    a, end = addr, addr + nbytes
    while a < end:
        n = min(w - a % w, end - a)
        yield (a // w) % c, (a // r) * w + a % w, a - addr, n
        a += n


def _u32(values: Sequence[int]) -> bytes:
    return np.asarray(values, dtype="<u4").tobytes()


@dataclass(frozen=True)
class Request:
    """One generation request as memory accesses: per card the writes, and the reads."""

    writes: list[list[tuple[str, int, bytes]]]
    tokens: Region
    logits: Region | None
    row: int
    vocab: int


def request_writes(binary: Binary, tokens: Sequence[int], max_new_tokens: int,
                   write_logits: bool) -> Request:
    """The host's writes (each card's ``cfg`` block, the prompt with sentinels after it) and
    reads (the tokens, the logits) of one request, from the binary's symbols."""
    from dfx.sim.functional.errors import HostError

    prompt = [int(t) for t in tokens]
    p, g, n = len(prompt), int(max_new_tokens), binary.n_cards
    writes: list[list[tuple[str, int, bytes]]] = []
    tok_region = logits = None
    row = vocab = 0
    for c, image in enumerate(binary.cards):
        syms = image.symbols
        for name in ("cfg", "tokens") + (("logits",) if write_logits else ()):
            if name not in syms:
                raise HostError(f"the binary has no {name!r} symbol: it was not compiled for "
                                "token generation")
        cfg, tok = syms["cfg"], syms["tokens"]
        fields = list(cfg.get("fields", ("prompt_len", "gen_len", "write_logits", "card_id",
                                         "n_cards")))
        values = {"prompt_len": p, "gen_len": g, "write_logits": int(bool(write_logits)),
                  "card_id": c, "n_cards": n}
        unknown = [f for f in fields if f not in values]
        if unknown:
            raise HostError(f"the binary's cfg block has unknown field {unknown[0]!r}")
        writes.append([(cfg["space"], int(cfg["addr"]), _u32([values[f] for f in fields])),
                       (tok["space"], int(tok["addr"]), _u32(prompt + [SENTINEL] * g))])
        if c == 0:
            tok_region = Region(tok["space"], int(tok["addr"]), 4 * (p + g))
            if write_logits:
                lg = syms["logits"]
                row = int(lg["row_elements"])
                vocab = int(lg.get("vocab", binary.model.get("vocab_size", 0) or row))
                logits = Region(lg["space"], int(lg["addr"]), 2 * (p + g - 1) * row)
    assert tok_region is not None
    return Request(writes, tok_region, logits, row, vocab)


def generate(devices: Sequence[Device], binary: Binary, tokens: Sequence[int],
             max_new_tokens: int, write_logits: bool = False, *,
             timeout_s: float | None = None) -> tuple[list[int], np.ndarray | None,
                                                      list[RunStatus]]:
    """One greedy request on ``devices`` (one per card of ``binary``, in card order): load
    every card, write its ``cfg`` and the prompt, start every card, wait for each, read the
    tokens (and logits) from card 0. Returns (prompt + generated tokens, float16 logits
    ``[P+G-1, vocab]`` or None, each card's status). A fault raises the functional
    simulator's error for it (:func:`dfx.host.rtl_backend.fault_error`)."""
    from dfx.host.rtl_backend import fault_error

    if len(devices) != binary.n_cards:
        raise DfxError(f"the binary is for {binary.n_cards} card(s), {len(devices)} device(s) "
                       "given")
    req = request_writes(binary, tokens, max_new_tokens, write_logits)
    reads = [req.tokens] + ([req.logits] if req.logits is not None else [])
    for dev, image, writes in zip(devices, binary.cards, req.writes, strict=True):
        dev.load(image)
        for space, addr, data in writes:
            dev.write(space, addr, data)
    for dev in devices:
        dev.start(binary.n_cards, reads if dev.card == 0 else ())
    statuses = [dev.wait(timeout_s) for dev in devices]
    for dev, image, st in zip(devices, binary.cards, statuses, strict=True):
        if st.status:
            raise fault_error(st.status, st.error_pc, st.error_word, image, dev.card)
    out = np.frombuffer(devices[0].read(req.tokens), "<u4")
    logits = None
    if req.logits is not None:
        flat = np.frombuffer(devices[0].read(req.logits), "<f2")
        p_g = len(tokens) + int(max_new_tokens)
        logits = flat.reshape(p_g - 1, req.row)[:, :req.vocab].copy()
    return [int(t) for t in out], logits, statuses


class RtlDevice:
    """The core RTL on Verilator as a :class:`Device`. The simulation runs every card of the
    binary at once (one card: the card testbench; several: the ring model), at the first
    :meth:`wait` of any of them, with the writes and reads each device collected before it;
    make the devices with :func:`rtl_devices` (``RtlDevice(binary)`` alone: one-card
    binaries). ``options``: those of :func:`dfx.host.rtl_backend.run_card` (``top``,
    ``stall``, ``wait``, ``waves``, ``links``, ...)."""

    def __init__(self, binary: Binary, card: int = 0, *, session: _RtlSession | None = None,
                 **options: Any):
        if session is None:
            if binary.n_cards != 1:
                raise DfxError(f"the binary is for {binary.n_cards} cards: make their devices "
                               "together with rtl_devices(binary)")
            session = _RtlSession(binary, options)
            session.devices.append(self)
        self.card, self._b, self._session = card, binary, session
        self._writes: list[Any] = []
        self._reads: list[Any] = []
        self._started = False
        self._result: Any = None

    @property
    def run(self) -> Any:
        """The :class:`~dfx.host.rtl_backend.RtlRun` after :meth:`wait` (cycles per card)."""
        return self._session.run

    def load(self, image: CardImage) -> None:
        if image is not self._b.cards[self.card]:
            raise DfxError(f"RtlDevice for card {self.card} loads that card's image only")

    def write(self, space: str, addr: int, data: bytes) -> None:
        from dfx.rtl.tb.core_job import HostAccess

        self._writes.append(HostAccess(space, int(addr), hex=bytes(data).hex()))

    def start(self, cards: int, reads: Sequence[Region] = ()) -> None:
        from dfx.rtl.tb.core_job import HostAccess

        if cards != self._b.n_cards:
            raise DfxError(f"start(cards={cards}): the binary is for {self._b.n_cards} card(s)")
        self._reads = [HostAccess(r.space, r.addr, name=f"{r.space}:{r.addr}", bytes=r.nbytes)
                       for r in reads]
        self._started = True

    def wait(self, timeout_s: float | None = None) -> RunStatus:
        self._result = self._session.result(self.card, timeout_s)
        res = self._result
        return RunStatus(res.status, res.error_pc, res.error_word, res.cycles)

    def read(self, region: Region) -> bytes:
        if self._result is None:
            raise DfxError("read before the run finished")
        return bytes(self._result.reads[f"{region.space}:{region.addr}"])[:region.nbytes]


class _RtlSession:
    """The cards of one binary in one RTL simulation (:class:`RtlDevice`)."""

    def __init__(self, binary: Binary, options: dict[str, Any]):
        self.binary, self.options = binary, dict(options)
        self.devices: list[RtlDevice] = []
        self.run: Any = None

    def result(self, card: int, timeout_s: float | None) -> Any:
        if self.run is None:
            self._simulate(timeout_s)
        return self.run.results[card]

    def _simulate(self, timeout_s: float | None) -> None:
        from dfx.host.rtl_backend import run_card

        devs = sorted(self.devices, key=lambda d: d.card)
        if [d.card for d in devs] != list(range(self.binary.n_cards)):
            raise DfxError(f"the RTL simulation needs one device per card (0..."
                           f"{self.binary.n_cards - 1}), has {[d.card for d in devs]}")
        idle = [d.card for d in devs if not d._started]
        if idle:
            raise DfxError(f"card(s) {idle} not started: start every card before waiting")
        opts = dict(self.options)
        run_opts = {k: opts.pop(k, d) for k, d in (("stall", 0), ("wait", "interrupt"),
                                                   ("vrf", None), ("srf", False))}
        _res, self.run = run_card(
            self.binary, run_opts, reads=[d._reads for d in devs],
            writes=[d._writes for d in devs], watch=None,
            model_cycles=opts.pop("model_cycles", None), waves=opts.pop("waves", None),
            status=opts.pop("status", None), progress=None, workdir=opts.pop("workdir", None),
            keep=opts.pop("keep", False), max_cycles=opts.pop("max_cycles", None),
            timeout_s=timeout_s or 6 * 3600.0, **opts)


def rtl_devices(binary: Binary, **options: Any) -> list[RtlDevice]:
    """One :class:`RtlDevice` per card of ``binary``, simulated together (``options``: as
    :class:`RtlDevice`; ``top="board"``: the Alveo kernel tops, joined by their QSFP links)."""
    session = _RtlSession(binary, options)
    session.devices = [RtlDevice(binary, c, session=session) for c in range(binary.n_cards)]
    return session.devices
