"""Where the dfx-u280 core's units go on the U280's three SLRs (issue 12 item 1; the Alveo
issue 13 copies this): :data:`FLOORPLANS`, one assignment per board, written as data, and
:func:`per_slr`, the per-SLR sums of a budget against one third of the device each.

U280 facts used (shared/notes/toolchain.md, core-integration.md; commonly quoted, not
confirmed in a vendor document here): 3 SLRs; the HBM stacks and their 32 AXI ports sit at the
bottom of SLR0; the two QSFP28 cages' transceivers are next to SLR2; the XDMA shell's PCIe
end point is in SLR0. A unit split over SLRs is written as SLR -> share of the unit.

The dfx-u280 assignment (a first proposal, not a placed design):

* SLR0: everything that touches HBM every cycle: the memory system (HBM ports, fabric, DMA
  engine, weight buffer, weight streamer, LUT stream, loader, word port, DDR space), the
  LUT-GEMM unit (it consumes the 2,048-byte HBM row per cycle) and the MPU port.
* SLR1: the controller and register files, the VPU, SFU_M, and half the MFU lanes
  (the MFU does not fit one SLR; its input is the weight row, so the split crosses one SLR
  boundary with half a row per cycle).
* SLR2: the other half of the MFU, the router and its movers (next to the QSFP cages), the
  control slave.
* The VRF: its copies go next to their read ports (rtl/vrf: one copy per write port x read
  port), a third per SLR: MPU x and LUT-GEMM x in SLR0, VPU a and b in SLR1, DMA store and
  router tx (the movers) in SLR2. Its 450 URAM do not fit one SLR (320 each); the five
  write ports fan out to all three.
"""

from __future__ import annotations

from typing import Any

FLOORPLANS: dict[str, dict[str, dict[int, float]]] = {
    "u280": {
        "mfu": {1: 0.5, 2: 0.5},
        "sfu_m": {1: 1.0},
        "vpu": {1: 1.0},
        "lutgemm": {0: 1.0},
        "router": {2: 1.0},
        "ctrl": {2: 1.0},
        "control_unit": {1: 1.0},
        "issue": {1: 1.0},
        "scoreboard": {1: 1.0},
        "srf": {1: 1.0},
        "vrf": {0: 1 / 3, 1: 1 / 3, 2: 1 / 3},
        "memfront": {0: 1.0},
        "movers": {2: 1.0},
        "vpu_port": {1: 1.0},
        "mpu_port": {0: 1.0},
        "lut_port": {0: 1.0},
        "wiring": {1: 1.0},
        "mem_hbm": {0: 1.0},
        "mem_ddr": {0: 1.0},
        "mem_word": {0: 1.0},
        "mem_loader": {0: 1.0},
        "mem_weights": {0: 1.0},
        "mem_lutstream": {0: 1.0},
        "mem_wbuf": {0: 1.0},
        "mem_dma": {0: 1.0},
        "mem_fabric": {0: 1.0},
    },
}
"""Board -> row name of the budget -> {SLR: share}; shares of a row add up to 1."""

COLS = ("lut", "lut_mem", "ff", "dsp", "bram36", "uram")


def check(plan: dict[str, dict[int, float]], slrs: int) -> None:
    """Shares add up to 1 and name existing SLRs (ValueError otherwise)."""
    for name, shares in plan.items():
        if abs(sum(shares.values()) - 1) > 1e-9 or any(not 0 <= s < slrs for s in shares):
            raise ValueError(f"floorplan row {name!r}: shares {shares} must add up to 1 over "
                             f"SLRs 0..{slrs - 1}")


def per_slr(rows: list[dict[str, Any]], board: str, slrs: int) -> dict[str, Any]:
    """{"slr": [totals per SLR], "unplaced": [row names without an SLR]} of the budget rows
    (each with ``name`` and the :data:`COLS`)."""
    plan = FLOORPLANS.get(board, {})
    check(plan, slrs)
    tot = [{c: 0.0 for c in COLS} for _ in range(slrs)]
    unplaced = []
    for r in rows:
        shares = plan.get(r["name"])
        if shares is None:
            unplaced.append(r["name"])
            continue
        for s, share in shares.items():
            for c in COLS:
                tot[s][c] += share * r.get(c, 0)
    return {"slr": tot, "unplaced": unplaced}
