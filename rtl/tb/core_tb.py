"""cocotb testbench of one card (:class:`~.core_top.CoreTestTop`, module :data:`~.core_build.TOP`):
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
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from dfx.rtl.control import regmap as rm
from dfx.rtl.control.driver import ControlDriver
from dfx.rtl.tb.core_job import PROGRESS_FILE, CoreJob, CoreResult
from dfx.rtl.tb.mem_model import MemoryBackdoor

JOB_ENV = "DFX_CORE_JOB"
#: A text file of job.json paths, one per line: a batch (module doc).
JOBS_ENV = "DFX_CORE_JOBS"
#: Set to a file name to profile the testbench's Python during the run (cProfile stats).
PROFILE_ENV = "DFX_TB_PROFILE"


def _job_paths() -> list[Path]:
    if os.environ.get(JOBS_ENV):
        text = Path(os.environ[JOBS_ENV]).read_text()
        return [Path(line) for line in text.splitlines() if line.strip()]
    return [Path(os.environ[JOB_ENV])] if os.environ.get(JOB_ENV) else []


_JOB_PATHS = _job_paths()
_JOBS = [CoreJob.read(p) for p in _JOB_PATHS]
# the cocotb timeout: the jobs' cycle limits, plus the loads, reads and slack
_TIMEOUT_NS = sum((2 * j.max_cycles + 50_000_000) * j.period_ns for j in _JOBS) or 1


class TB:
    """The core testbench's handles and host-side operations (module doc)."""

    def __init__(self, dut: Any, job: CoreJob, workdir: Path):
        self.dut, self.job, self.workdir = dut, job, workdir
        core = job.core_config()
        self.core = core
        self.d = core.d
        self.regs = rm.regmap(core)
        self.layout = job.mem_layout()
        self.period = job.period_ns
        self.clock = Clock(dut.ap_clk, self.period, unit="ns", impl="gpi")
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk,
                                  dut.ap_rst_n, reset_active_level=False)
        self.drv = ControlDriver(self.regs, self.axil.read_dword, self.axil.write_dword)
        # the back-door file is the simulator's ($fread in the memory models: its cwd)
        self.bd = MemoryBackdoor(dut, dut.ap_clk, self.layout)
        self._clock_running = False

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

    async def reset(self) -> None:
        dut = self.dut
        for name in ("stall", "rx_tvalid", "rx_tdata", "tx_tready", "dbg_vrf_r_en",
                     "dbg_vrf_r_addr", "dbg_vrf_w_en", "dbg_vrf_w_addr", "dbg_vrf_w_data",
                     "dbg_srf_idx"):
            getattr(dut, name).value = 0
        if not self._clock_running:
            self.clock.start()
            self._clock_running = True
        dut.ap_rst_n.value = 0
        await ClockCycles(dut.ap_clk, 4)
        dut.ap_rst_n.value = 1
        await ClockCycles(dut.ap_clk, 2)

    # -- memories ------------------------------------------------------------------------------
    async def load(self) -> None:
        for ld in self.job.loads:
            await self.bd.load_words(ld.channel, ld.word, (self.workdir / ld.file).read_bytes())
        for w in self.job.writes:
            data = bytes.fromhex(w.hex)
            await (self.bd.write_hbm if w.space == "hbm" else self.bd.write_ddr)(w.addr, data)

    async def read_mem(self, space: str, addr: int, length: int) -> bytes:
        if space == "hbm":
            return await self.bd.read_hbm(addr, length)
        return await self.bd.read_ddr(addr, length)

    async def read_vrf(self, first: int, count: int) -> np.ndarray:
        """Vectors first..first+count-1 through the debug read port (uint16 [count, d])."""
        dut = self.dut
        out = np.zeros((count, self.d), np.uint16)
        dut.dbg_vrf_r_en.value = 1
        for i in range(count):
            dut.dbg_vrf_r_addr.value = first + i
            # the port's input flip-flop, the VRF's synchronous read, one edge of margin
            await ClockCycles(dut.ap_clk, 3)
            v = int(dut.dbg_vrf_r_data.value)
            out[i] = [(v >> (16 * k)) & 0xFFFF for k in range(self.d)]
        dut.dbg_vrf_r_en.value = 0
        return out

    async def read_srf(self) -> np.ndarray:
        dut = self.dut
        n = self.core.buffers.srf_scalars
        out = np.zeros(n, np.uint32)
        for i in range(n):
            dut.dbg_srf_idx.value = i
            await ClockCycles(dut.ap_clk, 2)  # the input flip-flop, then a combinational read
            out[i] = int(dut.dbg_srf_value.value)
        return out

    # -- the run -------------------------------------------------------------------------------
    async def _progress(self, t0_cycle: int, t0_wall: float) -> None:
        job = self.job
        path = self.workdir / PROGRESS_FILE
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

    async def run(self) -> CoreResult:
        job, dut = self.job, self.dut
        await self.drv.write_args(job.args)
        if job.wait == "interrupt":
            await self.drv.enable_interrupt(done=True)
        dut.stall.value = job.stall
        t0_cycle, t0_wall, t0_cpu = self.now(), time.perf_counter(), time.process_time()
        ticker = cocotb.start_soon(self._progress(t0_cycle, t0_wall))
        await self.drv.start()
        done = irq = False
        limit = t0_cycle + job.max_cycles
        if job.wait == "interrupt":
            if not int(dut.interrupt.value):
                await First(RisingEdge(dut.interrupt),
                            Timer(job.max_cycles * self.period, "ns"))
            irq = bool(int(dut.interrupt.value))
            done = irq
        else:
            while self.now() < limit:
                if (await self.axil.read_dword(rm.CTRL)) & rm.AP_DONE:
                    done = True
                    break
                await Timer(job.poll_cycles * self.period, "ns")
        sim_cycles = self.now() - t0_cycle
        wall = time.perf_counter() - t0_wall
        cpu = time.process_time() - t0_cpu
        ticker.cancel()
        dut.stall.value = 0
        res = CoreResult("done" if done else "timeout", sim_cycles=sim_cycles, wall_s=wall,
                         cpu_s=cpu, irq=irq)
        if irq:
            isr = await self.drv.clear_interrupt()
            ctrl = await self.axil.read_dword(rm.CTRL)
            if not (isr & rm.IRQ_DONE and ctrl & rm.AP_DONE):
                raise AssertionError(f"interrupt without done: ISR {isr:#x}, CTRL {ctrl:#x}")
        for name in ("status", "error_pc", "cycles", "error_word"):
            setattr(res, name, await self.drv.read(name))
        res.mem_error = int(dut.mem_error.value)
        return res


@cocotb.test(timeout_time=_TIMEOUT_NS, timeout_unit="ns")
async def core_job(dut):
    """Run the job of ``$DFX_CORE_JOB`` (or each of ``$DFX_CORE_JOBS``) and write its result
    (module doc)."""
    if not _JOBS:
        raise RuntimeError(f"set {JOB_ENV} to a job.json or {JOBS_ENV} to a list of them "
                           "(dfx.rtl.tb.core_run runs this)")
    tb: TB | None = None
    for path, job in zip(_JOB_PATHS, _JOBS, strict=True):
        workdir = path.resolve().parent
        if tb is None:
            tb = TB(dut, job, workdir)
        else:
            tb.use(job, workdir)
        await _one_job(tb)


async def _one_job(tb: TB) -> None:
    job, workdir = tb.job, tb.workdir
    await tb.reset()
    t0 = time.perf_counter()
    await tb.load()
    load_s = time.perf_counter() - t0
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
    for r in job.reads:
        res.reads[r.name] = await tb.read_mem(r.space, r.addr, r.bytes)
    if job.vrf is not None:
        res.vrf = await tb.read_vrf(*job.vrf)
    if job.srf:
        res.srf = await tb.read_srf()
    res.write(workdir)
