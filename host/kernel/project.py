"""Write the kernel project of ``dfx build`` (docs/u280.md): every file from one
:class:`~.describe.KernelDescription` and the board top's Verilog, into a directory through
the one output writer (:func:`dfx.isa.outputs.output_directory`: all files appear together or
none, nothing left behind), with ``manifest.json`` (each file's sha256 and size, core, board,
git revision, ports, memory banks, clocks, the reference design)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from dfx.isa.config import to_dict

from .describe import KernelDescription, describe
from .kernel_xml import kernel_xml
from .link_cfg import REFERENCE, link_cfg, link_emu_cfg
from .package_tcl import package_tcl
from .texts import VITIS_VERSION, XRT_VERSION, makefile, readme

__all__ = ["MANIFEST", "git_revision", "project_files", "write_project"]

MANIFEST = "manifest.json"


def git_revision() -> dict[str, Any] | None:
    """The dfx checkout's commit and whether it has local changes (None outside git)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def board_verilog(k: KernelDescription, progress: Callable[[str], None] | None = None) -> str:
    """The kernel's Verilog: the board top and everything below it, one text (cached per
    configuration and RTL source by :func:`dfx.rtl.core.generate.core_verilog`)."""
    from dfx.rtl.board.top import BoardTop
    from dfx.rtl.core.generate import core_verilog

    return core_verilog(k.core, top=k.name, component=BoardTop, progress=progress)


def project_files(k: KernelDescription, verilog: str) -> dict[str, str]:
    """File name -> text of every project file but the manifest."""
    vname = f"{k.name}.v"
    files = {
        vname: verilog,
        "kernel.xml": kernel_xml(k),
        "package_kernel.tcl": package_tcl(k, [vname]),
        "link.cfg": link_cfg(k),
        "link_hw_emu.cfg": link_emu_cfg(k),
        "Makefile": makefile(k, [vname]),
    }
    files["README.md"] = readme(k, sorted([*files, "README.md", MANIFEST]))
    return files


def manifest(k: KernelDescription, files: dict[str, str]) -> dict[str, Any]:
    from dfx.isa.spec import load_spec

    spec = load_spec()
    return {
        "generator": f"dfx {metadata.version('dfx')}",
        "git": git_revision(),
        "kernel": k.name, "core": k.core.name, "board": k.board.name,
        "platform": k.board.platform, "part": k.board.part,
        "vitis": VITIS_VERSION, "xrt": XRT_VERSION,
        "isa": {"version": spec.version, "hash": spec.hash},
        "core_config": to_dict(k.core),
        "router": "dfx.rtl.router.Router" if k.has_router else "RouterHook (stand-in)",
        "clocks_mhz": {"ap_clk": k.kernel_mhz, "ap_clk_2": k.link_mhz},
        "link_bits": k.link_bits,
        "placement": {"kernel_slr": k.kernel_slr, "link_slr": k.link_slr},
        "banks": k.banks,
        "links": {q: {"reference_kernel": ref, "ring": side} for q, ref, side in
                  zip(k.links, REFERENCE.kernels, ("next", "prev"), strict=False)},
        "reference_design": {"name": REFERENCE.name, "url": REFERENCE.url},
        "interfaces": [{"name": b.name, "kind": b.kind, "clock": b.clock, "width": b.width,
                        "ports": [p._asdict() for p in b.ports]} for b in k.buses],
        "files": [{"file": name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                   "bytes": len(text.encode())} for name, text in sorted(files.items())],
    }


def write_project(core: Any, out: str | Path, *, option: str = "--out",
                  progress: Callable[[str], None] | None = None,
                  verilog: Callable[[KernelDescription], str] | None = None) -> dict[str, Any]:
    """Write the project of ``core`` into ``out`` atomically; returns the manifest.
    ``verilog(description)`` supplies the Verilog (default: :func:`board_verilog`)."""
    from dfx.isa.outputs import check_output_dir, output_directory

    check_output_dir(out, option=option)
    k = describe(core)
    text = verilog(k) if verilog is not None else board_verilog(k, progress)
    files = project_files(k, text)
    man = manifest(k, files)
    with output_directory(out, option=option) as stage:
        for name, body in files.items():
            (stage / name).write_text(body)
        (stage / MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
    return man
