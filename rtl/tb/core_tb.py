"""cocotb testbench of one card (:class:`~.core_top.CoreTestTop`, module :data:`~.core_build.TOP`,
or the Alveo kernel's :class:`~.board_top.BoardTestTop`: a job with ``top="board"``, a second
clock ``ap_clk_2`` for its QSFP links and no debug ports):
runs the :class:`~.core_job.CoreJob` named by ``$DFX_CORE_JOB`` and writes its
:class:`~.core_job.CoreResult` next to it (:mod:`.core_run` launches it). ``$DFX_CORE_JOBS``
names a file of job paths (one per line) instead: they run one after the other in this one
simulator process (the start-up, seconds, paid once), the core reset before each.

The run, the way XRT drives the kernel: reset; memory images through the back door
(:class:`~.mem_model.MemoryBackdoor`); host writes (cfg block, tokens); kernel arguments,
ap_start and ap_done over ``s_axi_control`` with cocotbext-axi's ``AxiLiteMaster`` and
:class:`~dfx.rtl.control.driver.ControlDriver`; waiting on the done interrupt or polling CTRL;
the status registers; reads of memory ranges, the VRF and the SRF (back doors).

Free-running: while the core runs, Python wakes only for the clock-free waits (the interrupt
edge, a poll every ``poll_cycles``) and the progress tick every ``progress_cycles`` (a line in
``progress.jsonl``: cycles, cycles/s, the watched words done). The clock is cocotb's C++ (GPI)
clock: a Python clock costs more than the whole core model per cycle.

``wait="xrt"``: the control slave driven in exactly XRT's order for an ``ap_ctrl_hs`` compute
unit (XRT's KDS, ``xocl`` ``cu_hls.c``; :meth:`TB.run_xrt`): CTRL read when the unit is opened;
per run the interrupt mode (``GIE`` = 1 then ``IER`` = done; polling: ``IER`` read, ``GIE`` = 0,
``IER`` without done), the register map from 0x10 word by word (reserved words 0), CTRL =
ap_start, then the interrupt, ISR read and written back, CTRL read — or CTRL read until
ap_done — and the status registers (``read_register``); ``starts`` runs in a row without a
reset, interrupt and polling mode alternating, the host's writes made again before each.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer, gather
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from dfx.rtl.control import regmap as rm
from dfx.rtl.control.driver import ControlDriver
from dfx.rtl.core.backend import TRACE_UNITS
from dfx.rtl.tb.core_job import PROGRESS_FILE, TRACE_FILE, CoreJob, CoreResult
from dfx.rtl.tb.mem_model import MemoryBackdoor

JOB_ENV = "DFX_CORE_JOB"
#: A text file of N job.json paths, one per card of a ring model (run together).
RING_ENV = "DFX_RING_JOB"
#: A text file of job.json paths, one per line: a batch (module doc).
JOBS_ENV = "DFX_CORE_JOBS"
#: Set to a file name to profile the testbench's Python during the run (cProfile stats).
PROFILE_ENV = "DFX_TB_PROFILE"


def _job_paths() -> list[Path]:
    if os.environ.get(RING_ENV):
        text = Path(os.environ[RING_ENV]).read_text()
        return [Path(line) for line in text.splitlines() if line.strip()]
    if os.environ.get(JOBS_ENV):
        text = Path(os.environ[JOBS_ENV]).read_text()
        return [Path(line) for line in text.splitlines() if line.strip()]
    return [Path(os.environ[JOB_ENV])] if os.environ.get(JOB_ENV) else []


_JOB_PATHS = _job_paths()
_JOBS = [CoreJob.read(p) for p in _JOB_PATHS]
# the cocotb timeout: the jobs' cycle limits, plus the loads, reads and slack
_JOB_NS = [(2 * j.max_cycles + 50_000_000) * j.period_ns * j.starts for j in _JOBS]
_TIMEOUT_NS = (max(_JOB_NS) if os.environ.get(RING_ENV) else sum(_JOB_NS)) if _JOBS else 1


class TB:
    """The core testbench's handles and host-side operations (module doc)."""

    def __init__(self, dut: Any, job: CoreJob, workdir: Path, *, prefix: str = "",
                 clock: Clock | None = None, clock2: Clock | None = None):
        self.dut, self.job, self.workdir, self.prefix = dut, job, workdir, prefix
        core = job.core_config()
        self.core = core
        self.d = core.d
        self.regs = rm.regmap(core)
        self.layout = job.mem_layout()
        self.period = job.period_ns
        self.clock = clock or Clock(dut.ap_clk, self.period, unit="ns", impl="gpi")
        # the board top's link clock (ap_clk_2: the board's ratio to ap_clk)
        self.board = job.top == "board"
        self.clock2 = clock2
        if self.board and clock2 is None:
            self.clock2 = Clock(dut.ap_clk_2, job.link_period_ps, unit="ps", impl="gpi")
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, f"{prefix}s_axi_control"),
                                  dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
        self.drv = ControlDriver(self.regs, self.axil.read_dword, self.axil.write_dword)
        # the back-door file is the simulator's ($fread in the memory models: its cwd); in a
        # ring every card's memories share it, so cards are loaded one after the other
        self.bd = MemoryBackdoor(dut, dut.ap_clk, self.layout, prefix=f"{prefix}bd")
        self._clock_running = False
        self._tracer: Any = None

    def sig(self, name: str) -> Any:
        """This card's top-level port ``name`` (``prefix`` + name)."""
        return getattr(self.dut, self.prefix + name)

    def use(self, job: CoreJob, workdir: Path) -> None:
        """The next job of a batch (the same core and memory layout: the same model)."""
        if job.core != self.job.core or job.mem_layout() != self.layout \
                or job.period_ns != self.period:
            raise ValueError(f"{workdir}: a batch's jobs must share the core, memory layout "
                             "and clock")
        self.job, self.workdir = job, workdir

    def now(self) -> int:
        """Clock cycles since time 0."""
        return int(get_sim_time("ns")) // self.period

    def clear_inputs(self) -> None:
        """Drive this card's testbench inputs low (the ring streams only on one card; a board
        card alone: its QSFP receive sides idle, its transmit sides always ready)."""
        if self.board:
            self.sig("stall").value = 0
            if not self.prefix:
                from dfx.rtl.board.hook import LINK_DIRECTIONS
                from dfx.rtl.board.top import qsfp_name

                for p in range(len(LINK_DIRECTIONS)):
                    self.sig(f"{qsfp_name(p)}_rx_tvalid").value = 0
                    self.sig(f"{qsfp_name(p)}_rx_tdata").value = 0
                    self.sig(f"{qsfp_name(p)}_tx_tready").value = 1
            return
        names = ["stall", "dbg_vrf_r_en", "dbg_vrf_r_addr", "dbg_vrf_w_en", "dbg_vrf_w_addr",
                 "dbg_vrf_w_data", "dbg_srf_idx"]
        if not self.prefix:
            names += ["rx_tvalid", "rx_tdata", "tx_tready"]
        for name in names:
            self.sig(name).value = 0

    async def reset(self) -> None:
        dut = self.dut
        self.clear_inputs()
        if not self._clock_running:
            self.clock.start()
            if self.clock2 is not None:
                self.clock2.start()
            self._clock_running = True
        resets = [dut.ap_rst_n] + ([dut.ap_rst_n_2] if self.board else [])
        for r in resets:
            r.value = 0
        # the board: long enough for the link clock's reset flip-flop and the crossings
        await ClockCycles(dut.ap_clk, 8 if self.board else 4)
        for r in resets:
            r.value = 1
        await ClockCycles(dut.ap_clk, 2)

    # -- memories ------------------------------------------------------------------------------
    async def load(self) -> None:
        for ld in self.job.loads:
            await self.bd.load_words(ld.channel, ld.word, (self.workdir / ld.file).read_bytes())
        await self.write_host()

    async def write_host(self) -> None:
        """The job's host writes (the cfg block, the prompt and its sentinels)."""
        for w in self.job.writes:
            data = bytes.fromhex(w.hex)
            await (self.bd.write_hbm if w.space == "hbm" else self.bd.write_ddr)(w.addr, data)

    async def read_mem(self, space: str, addr: int, length: int) -> bytes:
        if space == "hbm":
            return await self.bd.read_hbm(addr, length)
        return await self.bd.read_ddr(addr, length)

    async def read_vrf(self, first: int, count: int) -> np.ndarray:
        """Vectors first..first+count-1 through the debug read port (uint16 [count, d])."""
        out = np.zeros((count, self.d), np.uint16)
        self.sig("dbg_vrf_r_en").value = 1
        for i in range(count):
            self.sig("dbg_vrf_r_addr").value = first + i
            # the port's input flip-flop, the VRF's synchronous read, one edge of margin
            await ClockCycles(self.dut.ap_clk, 3)
            v = int(self.sig("dbg_vrf_r_data").value)
            out[i] = [(v >> (16 * k)) & 0xFFFF for k in range(self.d)]
        self.sig("dbg_vrf_r_en").value = 0
        return out

    async def read_srf(self) -> np.ndarray:
        n = self.core.buffers.srf_scalars
        out = np.zeros(n, np.uint32)
        for i in range(n):
            self.sig("dbg_srf_idx").value = i
            await ClockCycles(self.dut.ap_clk, 2)  # the input flip-flop, a combinational read
            out[i] = int(self.sig("dbg_srf_value").value)
        return out

    # -- the run -------------------------------------------------------------------------------
    async def _progress(self, t0_cycle: int, t0_wall: float, path: Path) -> None:
        job = self.job
        while True:
            await Timer(job.progress_cycles * self.period, "ns")
            cycles = self.now() - t0_cycle
            wall = time.perf_counter() - t0_wall
            line: dict[str, Any] = {"cycles": cycles, "wall_s": round(wall, 3),
                                    "cycles_per_s": round(cycles / wall) if wall > 0 else 0}
            if job.watch is not None:
                space, addr, count = job.watch
                raw = await self.read_mem(space, addr, 4 * count)
                words = np.frombuffer(raw, "<u4")
                line["watched"] = int(np.count_nonzero(words != job.sentinel))
                line["watch_total"] = count
            with open(path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def start_trace(self) -> None:
        """Follow ``dbg_trace`` (if the job is traced): a unit's busy interval runs from the
        cycle it takes an instruction to the cycle it takes the next one or goes idle; cycles
        count from the first fetch, as the core's ``cycles`` register does."""
        self._intervals: list[list[int]] = []
        self._open: list[tuple[int, int] | None] = [None] * len(TRACE_UNITS)
        self._t0: int | None = None
        self._t_end: int | None = None
        self._tracer = cocotb.start_soon(self._follow()) if self.job.trace else None

    async def _follow(self) -> None:
        sig = self.sig("dbg_trace")
        n = len(TRACE_UNITS)
        pcw = (len(sig) - 2 * n - 1) // n
        mask = (1 << n) - 1
        run_bit = 2 * n + n * pcw
        take = busy = 0
        while True:
            await sig.value_change
            v = int(sig.value)
            now = self.now() - 1  # the port shows the cycle before
            if v >> run_bit & 1 and self._t0 is None:
                self._t0 = now
            elif not v >> run_bit & 1 and self._t0 is not None and self._t_end is None:
                self._t_end = now - self._t0
            if self._t0 is None:
                continue
            c = now - self._t0
            tk, bz = v & mask, v >> n & mask
            for k in range(n):
                if (tk ^ take) >> k & 1:
                    self._close(k, c)
                    self._open[k] = ((v >> (2 * n + k * pcw)) & ((1 << pcw) - 1), c)
                elif not bz >> k & 1 and busy >> k & 1:
                    self._close(k, c)
            take, busy = tk, bz

    def _close(self, k: int, end: int) -> None:
        if self._open[k] is not None:
            pc, start = self._open[k]
            self._intervals.append([k, pc, start, end])
            self._open[k] = None

    def stop_trace(self) -> None:
        """End the trace (open intervals end now) and write :data:`TRACE_FILE`."""
        if self._tracer is None:
            return
        self._tracer.cancel()
        end = self._t_end if self._t_end is not None else \
            self.now() - (self._t0 if self._t0 is not None else 0)
        for k in range(len(TRACE_UNITS)):
            self._close(k, end)
        (self.workdir / TRACE_FILE).write_text(json.dumps(sorted(self._intervals,
                                                                 key=lambda e: e[2])))

    async def arm(self) -> None:
        """Kernel arguments, the done interrupt (if waited for), the memories' stalls."""
        job = self.job
        await self.drv.write_args(job.args)
        if job.wait == "interrupt":
            await self.drv.enable_interrupt(done=True)
        self.sig("stall").value = job.stall

    async def wait_done(self, t0_cycle: int) -> bool:
        """Wait (free-running) for done, at most ``max_cycles`` from ``t0_cycle``."""
        job = self.job
        limit = t0_cycle + job.max_cycles
        if job.wait == "interrupt":
            irq = self.sig("interrupt")
            if not int(irq.value):
                left = max(limit - self.now(), 1)
                await First(RisingEdge(irq), Timer(left * self.period, "ns"))
            return bool(int(irq.value))
        while self.now() < limit:
            if (await self.axil.read_dword(rm.CTRL)) & rm.AP_DONE:
                return True
            await Timer(job.poll_cycles * self.period, "ns")
        return False

    async def finish(self, done: bool, sim_cycles: int, wall: float, cpu: float) -> CoreResult:
        """The result after the run: status registers, the interrupt cleared."""
        job = self.job
        self.sig("stall").value = 0
        irq = done and job.wait == "interrupt"
        res = CoreResult("done" if done else "timeout", sim_cycles=sim_cycles, wall_s=wall,
                         cpu_s=cpu, irq=irq)
        if irq:
            isr = await self.drv.clear_interrupt()
            ctrl = await self.axil.read_dword(rm.CTRL)
            if not (isr & rm.IRQ_DONE and ctrl & rm.AP_DONE):
                raise AssertionError(f"interrupt without done: ISR {isr:#x}, CTRL {ctrl:#x}")
        for name in ("status", "error_pc", "cycles", "error_word"):
            setattr(res, name, await self.drv.read(name))
        res.mem_error = int(self.sig("mem_error").value)
        return res

    async def read_back(self, res: CoreResult) -> None:
        """The job's memory ranges, VRF and SRF into ``res``."""
        job = self.job
        for r in job.reads:
            res.reads[r.name] = await self.read_mem(r.space, r.addr, r.bytes)
        if job.vrf is not None:
            res.vrf = await self.read_vrf(*job.vrf)
        if job.srf:
            res.srf = await self.read_srf()

    # -- XRT's order -----------------------------------------------------------------------------
    async def _xrt_mode(self, mode: str) -> None:
        """Switch the compute unit between interrupt and polling mode as XRT's KDS does
        (cu_hls_enable_intr: GIE = 1, IER = done; cu_hls_disable_intr: IER read, GIE = 0, IER
        without done)."""
        if mode == "interrupt":
            await self.axil.write_dword(rm.GIE, 1)
            await self.axil.write_dword(rm.IER, rm.IRQ_DONE)
        else:
            ier = await self.axil.read_dword(rm.IER)
            await self.axil.write_dword(rm.GIE, 0)
            await self.axil.write_dword(rm.IER, ier & ~rm.IRQ_DONE)

    async def _xrt_start(self, mode: str) -> tuple[CoreResult, dict[str, Any]]:
        """One ``xrt::run``: the register map, ap_start, done by interrupt or by polling, the
        status registers (module doc)."""
        job = self.job
        info: dict[str, Any] = {"mode": mode}
        for offset, word in xrt_regmap(self.regs, job.args):
            await self.axil.write_dword(offset, word)
        self.sig("stall").value = job.stall
        t0_cycle, t0_wall, t0_cpu = self.now(), time.perf_counter(), time.process_time()
        await self.axil.write_dword(rm.CTRL, rm.AP_START)
        limit = t0_cycle + job.max_cycles
        done = False
        if mode == "interrupt":
            irq = self.sig("interrupt")
            if not int(irq.value):
                await First(RisingEdge(irq), Timer(max(limit - self.now(), 1) * self.period, "ns"))
            end = self.now()
            if int(irq.value):
                info["isr"] = isr = await self.axil.read_dword(rm.ISR)
                await self.axil.write_dword(rm.ISR, isr)
                await ClockCycles(self.dut.ap_clk, 2)
                info["irq_after_clear"] = int(irq.value)
                info["ctrl_done"] = ctrl = await self.axil.read_dword(rm.CTRL)
                done = bool(ctrl & rm.AP_DONE)
        else:
            polls = seen = 0
            while self.now() < limit:
                ctrl = await self.axil.read_dword(rm.CTRL)
                polls += 1
                if ctrl & rm.AP_DONE:
                    info["ctrl_done"], done = ctrl, True
                    break
                seen |= ctrl
                await Timer(job.poll_cycles * self.period, "ns")
            end = self.now()
            info["polls"], info["ctrl_running"] = polls, seen
        self.sig("stall").value = 0
        res = CoreResult("done" if done else "timeout", sim_cycles=end - t0_cycle,
                         wall_s=time.perf_counter() - t0_wall,
                         cpu_s=time.process_time() - t0_cpu, irq=mode == "interrupt" and done)
        for name in ("status", "error_pc", "cycles", "error_word"):
            setattr(res, name, await self.drv.read(name))
        res.mem_error = int(self.sig("mem_error").value)
        info.update(status=res.status, cycles=res.cycles, sim_cycles=res.sim_cycles)
        return res, info

    async def run_xrt(self) -> CoreResult:
        """``starts`` runs in XRT's order (module doc): the last run's result, the reads of the
        runs before it as ``name@i``, every run's control-register observations in
        ``starts``."""
        job = self.job
        t0_wall = time.perf_counter()
        ticker = cocotb.start_soon(self._progress(self.now(), t0_wall,
                                                  self.workdir / PROGRESS_FILE))
        ctrl_open = await self.axil.read_dword(rm.CTRL)  # XRT opening the compute unit
        starts: list[dict[str, Any]] = []
        earlier: dict[str, bytes] = {}
        mode = None
        for i in range(job.starts):
            if i:
                await self.write_host()
            want = XRT_MODES[i % len(XRT_MODES)]
            if want != mode:
                await self._xrt_mode(want)
                mode = want
            res, info = await self._xrt_start(mode)
            if i == 0:
                info["ctrl_open"] = ctrl_open
            starts.append(info)
            if res.outcome != "done" or res.status or i == job.starts - 1:
                break
            part = CoreResult("done")
            await self.read_back(part)
            earlier.update({f"{k}@{i}": v for k, v in part.reads.items()})
        ticker.cancel()
        if res.outcome == "done":
            await self.read_back(res)
        res.reads.update(earlier)
        res.starts = starts
        return res

    async def run(self) -> CoreResult:
        await self.arm()
        t0_cycle, t0_wall, t0_cpu = self.now(), time.perf_counter(), time.process_time()
        ticker = cocotb.start_soon(self._progress(t0_cycle, t0_wall,
                                                  self.workdir / PROGRESS_FILE))
        self.start_trace()
        await self.drv.start()
        done = await self.wait_done(t0_cycle)
        self.stop_trace()
        sim_cycles = self.now() - t0_cycle
        wall = time.perf_counter() - t0_wall
        cpu = time.process_time() - t0_cpu
        ticker.cancel()
        return await self.finish(done, sim_cycles, wall, cpu)


@cocotb.test(timeout_time=_TIMEOUT_NS, timeout_unit="ns")
async def core_job(dut):
    """Run the job of ``$DFX_CORE_JOB`` (or each of ``$DFX_CORE_JOBS``) and write its result
    (module doc)."""
    if not _JOBS:
        raise RuntimeError(f"set {JOB_ENV} to a job.json or {JOBS_ENV} to a list of them "
                           "(dfx.rtl.tb.core_run runs this)")
    if os.environ.get(RING_ENV):
        await _ring_jobs(dut, Path(os.environ[RING_ENV]).resolve().parent)
        return
    tb: TB | None = None
    for path, job in zip(_JOB_PATHS, _JOBS, strict=True):
        workdir = path.resolve().parent
        if tb is None:
            tb = TB(dut, job, workdir)
        else:
            tb.use(job, workdir)
        await _one_job(tb)


async def _one_job(tb: TB) -> None:
    workdir = tb.workdir
    await tb.reset()
    t0 = time.perf_counter()
    await tb.load()
    load_s = time.perf_counter() - t0
    if tb.job.wait == "xrt":
        res = await tb.run_xrt()
        res.load_s = load_s
        res.write(workdir)
        return
    prof = None
    if os.environ.get(PROFILE_ENV):
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    res = await tb.run()
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ[PROFILE_ENV])
    res.load_s = load_s
    await tb.read_back(res)
    res.write(workdir)


async def _ring_jobs(dut: Any, ring_dir: Path) -> None:
    """Card c of a ring model runs job c (ports ``cardNN_``): one reset, the memories loaded
    card by card (they share the back-door file), every card started in the same cycle, each
    waited for; progress (card 0's watch) in ``ring_dir``."""
    from dfx.rtl.tb.ring_top import card_prefix

    tbs: list[TB] = []
    for c, (path, job) in enumerate(zip(_JOB_PATHS, _JOBS, strict=True)):
        tb = TB(dut, job, path.resolve().parent, prefix=card_prefix(c),
                clock=tbs[0].clock if tbs else None, clock2=tbs[0].clock2 if tbs else None)
        tbs.append(tb)
    for tb in tbs[1:]:
        tb.clear_inputs()
    from dfx.rtl.tb.core_run import LINKS_FILE
    from dfx.rtl.tb.ring_top import link_prefix

    for k, (latency, threshold) in enumerate(json.loads((ring_dir / LINKS_FILE).read_text())):
        getattr(dut, link_prefix(k) + "latency").value = latency
        getattr(dut, link_prefix(k) + "threshold").value = threshold
    await tbs[0].reset()  # starts the clock; ap_rst_n is every card's
    t0 = time.perf_counter()
    for tb in tbs:
        await tb.load()
    load_s = time.perf_counter() - t0
    for tb in tbs:
        await tb.arm()
    t0_cycle, t0_wall, t0_cpu = tbs[0].now(), time.perf_counter(), time.process_time()
    ticker = cocotb.start_soon(tbs[0]._progress(t0_cycle, t0_wall, ring_dir / PROGRESS_FILE))
    for tb in tbs:
        tb.start_trace()
    await gather(*(tb.drv.start() for tb in tbs))
    ends: list[tuple[bool, int] | None] = [None] * len(tbs)

    async def wait(c: int) -> None:
        done = await tbs[c].wait_done(t0_cycle)
        tbs[c].stop_trace()
        ends[c] = (done, tbs[c].now() - t0_cycle)

    waits = [cocotb.start_soon(wait(c)) for c in range(len(tbs))]
    stuck = await _watch_ring(tbs, ends)
    for c, w in enumerate(waits):
        if not w.done():
            w.cancel()
            tbs[c].stop_trace()
    wall = time.perf_counter() - t0_wall
    cpu = time.process_time() - t0_cpu
    ticker.cancel()
    ring_error = int(dut.ring_error.value)
    for c, tb in enumerate(tbs):
        done, sim_cycles = ends[c] or (False, tbs[c].now() - t0_cycle)
        res = await tb.finish(done, sim_cycles, wall, cpu)
        res.load_s = load_s
        res.ring_error = ring_error
        if stuck is not None and stuck[c] is not None:
            res.outcome = "deadlock"
            for name in LIVE:
                setattr(res, name, stuck[c][name])
        if done:
            await tb.read_back(res)
        res.write(tb.workdir)


#: ``wait="xrt"``: the done mode of run i is ``XRT_MODES[i % 2]``.
XRT_MODES = ("interrupt", "poll")


def xrt_regmap(regs: rm.RegMap, args: dict[str, int]) -> list[tuple[int, int]]:
    """XRT's register-map write of a run (``cu_hls_configure``, REGMAP): every 32-bit word
    from 0x10 to the end of the last argument, in address order, reserved words 0."""
    words: dict[int, int] = {}
    for name, value in args.items():
        words.update(regs.words(name, value))
    end = max(r.offset + 4 * r.words for r in regs.args)
    return [(off, words.get(off, 0)) for off in range(rm.ARGS_BASE, end, 4)]


#: The live registers the ring watchdog reads (rtl/control/regmap.py).
LIVE = ("pc", "busy", "tx_pc", "rx_pc", "ring_count")
_RING_BITS = sum(1 << rm.BUSY_UNITS.index(u) for u in ("tx", "rx"))
_WORK_BITS = sum(1 << rm.BUSY_UNITS.index(u) for u in ("vpu", "mpu", "lut", "dma"))


def _waits_on_ring(live: dict[str, int]) -> bool:
    """A card's send or recv is unfinished and none of its other units works."""
    return bool(live["busy"] & _RING_BITS) and not live["busy"] & _WORK_BITS


async def _watch_ring(tbs: list[TB], ends: list[Any]) -> list[dict[str, int] | None] | None:
    """Until every card has ended: every ``deadlock_cycles // 8`` cycles read the live
    registers of the cards still running. When for ``deadlock_cycles`` every one of them has
    waited on the ring with the same registers (no vector moved, no pc changed), return them
    (None for the cards that ended): a deadlock. None when all cards ended."""
    window = tbs[0].job.deadlock_cycles
    period = max(window // 8, 1)
    last: list[dict[str, int] | None] | None = None
    since = 0
    while True:
        await Timer(period * tbs[0].period, "ns")
        if all(e is not None for e in ends):
            return None
        snap: list[dict[str, int] | None] = []
        for c, tb in enumerate(tbs):
            snap.append(None if ends[c] is not None
                        else {n: await tb.drv.read(n) for n in LIVE})
        if not all(s is None or _waits_on_ring(s) for s in snap) or snap != last:
            last, since = snap, tbs[0].now()
        elif tbs[0].now() - since >= window:
            return snap
