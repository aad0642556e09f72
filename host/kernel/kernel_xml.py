"""kernel.xml of the kernel (the Vitis RTL kernel description, format of AMD UG1393 "RTL
Kernel XML File", root versionMajor 1 / versionMinor 6; the layout Xilinx
Vitis_Accel_Examples' rtl_kernels used before their kernel.xml files were replaced by
``package_xo``'s own, PR #400).

The current flow (Vitis 2023.2, what the generated Tcl does) has ``package_xo`` derive
kernel.xml from the IP packager's component.xml (the registers of ``package_kernel.tcl``,
``-output_kernel_xml`` writes it out); this file is generated from the same description so the
two can be compared (``make check-xml``), and the test suite parses it against the Verilog.

Ports: ``s_axi_control`` (slave, the register map's range), one ``m_axi_*`` master per AXI4
port (64-bit range, its data width), one stream port per QSFP stream (``read_only`` into the
kernel, ``write_only`` out of it). Arguments, ids in order: the register map's arguments
(scalars on ``s_axi_control``, pointers on the AXI master they address, offsets from the
register map), then the streams (address qualifier 4).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .describe import KernelDescription

__all__ = ["kernel_xml"]

ADDRESSABLE_RANGE = "0xFFFFFFFFFFFFFFFF"


def _hex(v: int) -> str:
    return f"0x{v:X}"


def kernel_xml(k: KernelDescription) -> str:
    """The text of kernel.xml (module doc)."""
    root = ET.Element("root", versionMajor="1", versionMinor="6")
    kern = ET.SubElement(root, "kernel", {
        "name": k.name, "language": "ip_c",
        "vlnv": f"dfx.org:kernel:{k.name}:1.0", "attributes": "",
        "preferredWorkGroupSizeMultiple": "0", "workGroupSize": "1",
        "interrupt": "true" if any(b.name == "interrupt" for b in k.buses) else "false",
        "hwControlProtocol": "ap_ctrl_hs",
    })
    ports = ET.SubElement(kern, "ports")
    ET.SubElement(ports, "port", name="s_axi_control", mode="slave", range=_hex(k.regs.range),
                  dataWidth=str(k.bus("s_axi_control").width), portType="addressable",
                  base="0x0")
    for b in k.m_axi:
        ET.SubElement(ports, "port", name=b.name, mode="master", range=ADDRESSABLE_RANGE,
                      dataWidth=str(b.width), portType="addressable", base="0x0")
    for b in k.streams:
        ET.SubElement(ports, "port", name=b.name,
                      mode="read_only" if b.kind == "s_axis" else "write_only",
                      dataWidth=str(b.width), portType="stream")
    args = ET.SubElement(kern, "args")
    n = 0
    for r in k.regs.args:
        pointer = r.kind == "pointer"
        size = 8 if pointer else 4
        ET.SubElement(args, "arg", {
            "name": r.name, "addressQualifier": "1" if pointer else "0", "id": str(n),
            "port": r.port if pointer else "s_axi_control", "size": _hex(size),
            "offset": _hex(r.offset), "hostOffset": "0x0", "hostSize": _hex(size),
            "type": "void*" if pointer else "uint",
        })
        n += 1
    for b in k.streams:
        ET.SubElement(args, "arg", {
            "name": b.name, "addressQualifier": "4", "id": str(n), "port": b.name,
            "size": "0x4", "offset": "0x0", "hostOffset": "0x0", "hostSize": "0x4",
            "type": f"stream<ap_axiu<{b.width},0,0,0>>&",
        })
        n += 1
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
