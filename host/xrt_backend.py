"""The XRT backend: Alveo cards through XRT's Python binding ``pyxrt`` (shipped with XRT, not
on PyPI; ``source /opt/xilinx/xrt/setup.sh``). Imported only when ``--backend xrt`` is chosen.

:class:`XrtDevice` is a :class:`dfx.host.device.Device`: a thin adapter, so the host code
that runs a request (:func:`dfx.host.device.generate`) is the code the RTL backend tests.
Per card: register the xclbin, open the ``dfx_core`` compute unit with exclusive access (to
read its status registers), one buffer per HBM pseudo-channel (each in the memory bank of its
kernel argument, ``kernel.group_id``) and one DDR buffer holding the image's DDR contents with
the program above them; arguments in kernel.xml's order (the control register map's,
:func:`dfx.rtl.control.regmap.regmap`); ``run.start()``, ``run.wait()``, then the status
registers through ``kernel.read_register``.

Untested: written against the pyxrt API of XRT 2.16 (``pyxrt.device``, ``xclbin``,
``hw_context``, ``kernel``, ``bo``, ``run``) without a card or XRT on the machine that wrote
it (docs/u280.md "What is untested").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dfx.isa.container import Binary, CardImage
from dfx.isa.errors import DfxError

from .device import Region, RunStatus, generate, hbm_pieces

__all__ = ["INSTALL", "XrtDevice", "import_pyxrt", "xrt_generate"]

KERNEL = "dfx_core"
INSTALL = ("--backend xrt needs XRT's Python binding pyxrt: install XRT 2.16 with the "
           "xilinx_u280_gen3x16_xdma_1_202211_1 platform (https://github.com/Xilinx/XRT) and "
           "run 'source /opt/xilinx/xrt/setup.sh' first")
PROG_ALIGN = 4096


def import_pyxrt() -> Any:
    """``pyxrt``, or a one-line :class:`DfxError` saying what to install."""
    try:
        import pyxrt  # type: ignore[import-not-found]
    except ImportError:
        raise DfxError(INSTALL) from None
    return pyxrt


def _image(image: CardImage, space: str) -> np.ndarray:
    size = max([s.addr + (s.length if s.length is not None else len(s.data))
                for s in image.segments if s.space == space] + [0])
    out = np.zeros(size, np.uint8)
    for s in image.segments:
        if s.space != space:
            continue
        if s.fill is not None:
            out[s.addr:s.addr + s.length] = s.fill
        else:
            raw = np.frombuffer(np.ascontiguousarray(s.data).tobytes(), np.uint8)
            out[s.addr:s.addr + raw.size] = raw
    return out


class XrtDevice:
    """One Alveo card (module doc): ``XrtDevice(card, index, xclbin, core)``."""

    def __init__(self, card: int, index: int, xclbin: str | os.PathLike[str], core: Any):
        from dfx.rtl.control.regmap import regmap

        self._x = xrt = import_pyxrt()
        self.card, self.core, self.regs = card, core, regmap(core)
        self.dev = xrt.device(index)
        self.uuid = self.dev.register_xclbin(xrt.xclbin(os.fspath(xclbin)))
        self.ctx = xrt.hw_context(self.dev, self.uuid)
        self.kernel = xrt.kernel(self.ctx, KERNEL, xrt.kernel.cu_access_mode.exclusive)
        self.args = [r.name for r in self.regs.args]
        self.hbm: list[Any] = []
        self.ddr: Any = None
        self.prog = (0, 0)
        self.run: Any = None

    def _bo(self, nbytes: int, arg: str) -> Any:
        return self._x.bo(self.dev, max(nbytes, PROG_ALIGN), self._x.bo.normal,
                          self.kernel.group_id(self.args.index(arg)))

    def _sync(self, bo: Any, nbytes: int, offset: int, to_device: bool) -> None:
        d = self._x.xclBOSyncDirection
        bo.sync(d.XCL_BO_SYNC_BO_TO_DEVICE if to_device else d.XCL_BO_SYNC_BO_FROM_DEVICE,
                nbytes, offset)

    def load(self, image: CardImage) -> None:
        b = self.core.b
        self.hbm = [self._bo(b.hbm.pc_capacity_bytes, name) for name in self.regs.hbm_names]
        hbm = _image(image, "hbm")
        if hbm.size:
            self.write("hbm", 0, hbm.tobytes())
        ddr = _image(image, "ddr")
        sym_end = max([int(s["addr"]) + int(s.get("bytes", 0)) for s in image.symbols.values()
                       if s.get("space") == "ddr"] + [0])
        prog_off = -(-max(ddr.size, sym_end) // PROG_ALIGN) * PROG_ALIGN
        program = bytes(image.program)
        self.ddr = self._bo(prog_off + len(program), "ddr")
        if ddr.size:
            self.write("ddr", 0, ddr.tobytes())
        self.ddr.write(program, prog_off)
        self._sync(self.ddr, len(program), prog_off, True)
        from dfx.isa.spec import load_spec

        self.prog = (prog_off, len(program) // load_spec().word_bytes)

    def write(self, space: str, addr: int, data: bytes) -> None:
        data = bytes(data)
        if space == "ddr":
            self.ddr.write(data, addr)
            self._sync(self.ddr, len(data), addr, True)
            return
        for ch, local, off, n in hbm_pieces(self.core, addr, len(data)):
            self.hbm[ch].write(data[off:off + n], local)
            self._sync(self.hbm[ch], n, local, True)

    def start(self, cards: int, reads: Sequence[Region] = ()) -> None:
        values: dict[str, Any] = {"prog_words": self.prog[1], "cards": cards,
                                  "prog": self.ddr.address() + self.prog[0], "ddr": self.ddr}
        values.update(zip(self.regs.hbm_names, self.hbm, strict=True))
        self.run = self._x.run(self.kernel)
        for i, name in enumerate(self.args):
            self.run.set_arg(i, values[name])
        self.run.start()

    def _reg(self, name: str) -> int:
        return self.regs.value(name, self.kernel.read_register)

    def wait(self, timeout_s: float | None = None) -> RunStatus:
        ms = int(timeout_s * 1000) if timeout_s else 0
        self.run.wait(ms) if ms else self.run.wait()
        return RunStatus(self._reg("status"), self._reg("error_pc"), self._reg("error_word"),
                         self._reg("cycles"))

    def read(self, region: Region) -> bytes:
        out = bytearray(region.nbytes)
        if region.space == "ddr":
            self._sync(self.ddr, region.nbytes, region.addr, False)
            return bytes(self.ddr.read(region.nbytes, region.addr))
        for ch, local, off, n in hbm_pieces(self.core, region.addr, region.nbytes):
            self._sync(self.hbm[ch], n, local, False)
            out[off:off + n] = bytes(self.hbm[ch].read(n, local))
        return bytes(out)


def xrt_generate(binary: Binary, tokens: Sequence[int], max_new_tokens: int,
                 write_logits: bool = False, *, xclbin: str | os.PathLike[str] | None = None,
                 devices: Sequence[int] | None = None, progress: Any = None,
                 ) -> tuple[list[int], np.ndarray | None, list[RunStatus]]:
    """One request on ``binary.n_cards`` Alveo cards (XRT device indices ``devices``,
    default 0..N-1) running ``xclbin`` (module doc)."""
    import_pyxrt()
    if xclbin is None:
        raise DfxError("--backend xrt needs --xclbin FILE (make xclbin TARGET=hw in the "
                       "project of dfx build)")
    if not os.path.isfile(xclbin):
        raise DfxError(f"--xclbin {os.fspath(xclbin)}: no such file")
    idx = list(devices) if devices is not None else list(range(binary.n_cards))
    devs = [XrtDevice(c, i, xclbin, binary.core) for c, i in enumerate(idx)]
    out = generate(devs, binary, tokens, max_new_tokens, write_logits)
    if progress is not None:
        progress(int(max_new_tokens), int(max_new_tokens))
    return out
