#!/usr/bin/env python3
"""Worst-case errors of the golden piecewise-linear tables vs float64 (docs/numerics.md §5).

    .venv/bin/python bench/table_error.py [--core boards/cores/tiny.yaml]

* gelu, exp (FP16 in, FP16 out): every FP16 input in [lo, hi) whose correctly rounded FP16
  result is finite. Reports the error of the FP32 interpolation (before the final rounding) and
  of the FP16 output, in absolute terms, relative terms (outputs with |f| >= 2^-14), and FP16
  ulps of f(x), plus the share of outputs equal to RN16(f(x)) (correctly rounded) and within
  one FP16 ulp. gelu gets a second row for |x| >= 2^-4, away from the segment through 0.
* recip, rsqrt (FP32 in, FP32 out): every FP32 mantissa of the reduced interval ([1, 2) resp.
  [1, 4), 2^23 resp. 2^24 inputs), plus 10^6 random inputs over the whole normal range. Errors
  in absolute (on the reduced interval), relative, FP32-ulp and FP16-ulp terms.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

from dfx.host.sysinfo import cpu_model
from dfx.isa.golden import tables
from dfx.isa.golden.tables import DEFAULT_SPECS

F64 = {
    "gelu": tables.gelu_f64,
    "exp": np.exp,
    "recip": lambda x: 1.0 / x,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
}


def ulp_of(f: np.ndarray, mant_bits: int, emin: int) -> np.ndarray:
    """ulp of the binary format (p = mant_bits + 1) at |f| (gradual underflow below 2^emin)."""
    a = np.abs(f)
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, emin)
    return np.exp2(e - mant_bits)


def fp16_fn(fn: str, spec: tuple[float, float, int], min_abs: float = 0.0) -> dict[str, float]:
    t = tables.table(fn, *spec)
    allx = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    x32 = allx.astype(np.float32)
    with np.errstate(all="ignore"):
        f = F64[fn](x32.astype(np.float64))
        rn16 = f.astype(np.float16)
    sel = (x32 >= t.lo) & (x32 < t.hi) & np.isfinite(rn16) & (np.abs(x32) >= min_abs)
    x16, f, rn16 = allx[sel], f[sel], rn16[sel]
    y32 = np.asarray(tables.pwl_eval(t, x16.astype(np.float32))).astype(np.float64)
    out = (tables.gelu16 if fn == "gelu" else tables.exp16)(x16, t).astype(np.float64)
    ulp16 = ulp_of(f, 10, -14)
    err, err32 = np.abs(out - f), np.abs(y32 - f)
    norm = np.abs(f) >= 2.0**-14
    return {
        "inputs": int(sel.sum()),
        "abs32": float(err32.max()),
        "abs": float(err.max()),
        "rel": float((err[norm] / np.abs(f[norm])).max()),
        "ulp16": float((err / ulp16).max()),
        "ulp16_at": float(x16[np.argmax(err / ulp16)]),
        "ulp32": float("nan"),
        "cr": float(np.mean(out == rn16.astype(np.float64))),
        "le1": float(np.mean(err <= ulp16)),
    }


def fp32_fn(fn: str, spec: tuple[float, float, int]) -> dict[str, float]:
    t = tables.table(fn, *spec)
    hi = 2.0 if fn == "recip" else 4.0
    f32fn = tables.recip32 if fn == "recip" else tables.rsqrt32
    count = 1 << (23 if fn == "recip" else 24)
    res = {"abs": 0.0, "rel": 0.0, "ulp32": 0.0, "ulp16": 0.0}
    chunk = 1 << 21
    for start in range(0, count, chunk):
        m = 1.0 + np.arange(start, min(start + chunk, count), dtype=np.float64) * 2.0**-23
        m = m[m < hi].astype(np.float32)
        f = F64[fn](m.astype(np.float64))
        y = np.asarray(f32fn(m, t)).astype(np.float64)
        err = np.abs(y - f)
        res["abs"] = max(res["abs"], float(err.max()))
        res["rel"] = max(res["rel"], float((err / f).max()))
        res["ulp32"] = max(res["ulp32"], float((err / ulp_of(f, 23, -126)).max()))
        res["ulp16"] = max(res["ulp16"], float((err / ulp_of(f, 10, -14)).max()))
    rng = np.random.default_rng(0)
    lo_e, hi_e = (-125, 125) if fn == "recip" else (-126, 127)
    x = np.exp2(rng.uniform(lo_e, hi_e, 1_000_000)).astype(np.float32)
    f = F64[fn](x.astype(np.float64))
    y = np.asarray(f32fn(x, t)).astype(np.float64)
    res["rel_full"] = float((np.abs(y - f) / f).max())
    res["inputs"] = count
    res["abs32"] = res["abs"]
    res["cr"] = float("nan")
    res["le1"] = float("nan")
    return res


def load_specs(core: str | None) -> dict[str, tuple[float, float, int]]:
    if core is None:
        return dict(DEFAULT_SPECS)
    import yaml

    data = yaml.safe_load(Path(core).read_text())["tables"]
    return {fn: (float(v["lo"]), float(v["hi"]), int(v["points"])) for fn, v in data.items()}


def machine() -> str:
    cpu = cpu_model()
    py, npv = platform.python_version(), np.__version__
    return f"{platform.machine()}, {cpu}, Python {py}, numpy {npv}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--core", help="core YAML whose `tables:` to measure (default: dfx-u280)")
    args = ap.parse_args(argv)
    specs = load_specs(args.core)
    t0 = time.time()
    print(f"# bench/table_error.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {machine()}")
    print()
    print(
        "| fn | lo, hi, N (h) | inputs | max abs err, FP32 interp. | max abs err, output "
        "| max rel err | max err, FP16 ulp | max err, FP32 ulp "
        "| FP16 out = RN16(f) / within 1 FP16 ulp |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [(fn, 0.0) for fn in tables.FUNCTIONS]
    rows.insert(1, ("gelu", 2.0**-4))  # away from the segment through the origin
    for fn, min_abs in rows:
        lo, hi, n = specs[fn]
        if fn in ("gelu", "exp"):
            r = fp16_fn(fn, specs[fn], min_abs)
        else:
            r = fp32_fn(fn, specs[fn])
        h = (hi - lo) / n
        name = fn if min_abs == 0 else f"{fn}, \\|x\\| >= 2^{int(np.log2(min_abs))}"
        hs = f"2^{int(np.log2(h))}"
        rel = f"{r['rel']:.3g}"
        if "rel_full" in r:
            rel += f" (full range: {r['rel_full']:.3g})"
        ulp16 = f"{r['ulp16']:.3g}"
        if "ulp16_at" in r:
            ulp16 += f" (at x = {r['ulp16_at']:.4g})"
        ulp32 = "-" if np.isnan(r["ulp32"]) else f"{r['ulp32']:.3g}"
        cr = "-" if np.isnan(r["cr"]) else f"{100 * r['cr']:.2f} % / {100 * r['le1']:.2f} %"
        print(
            f"| {name} | {lo:g}, {hi:g}, {n} ({hs}) | {r['inputs']} | {r['abs32']:.3g} "
            f"| {r['abs']:.3g} | {rel} | {ulp16} | {ulp32} | {cr} |"
        )
    print()
    print(f"# {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
