"""The host device interface (host/device.py) and the XRT backend (host/xrt_backend.py)
without a card: the host's request sequence on fake devices, the HBM interleave of host
accesses, the XRT adapter against a stand-in ``pyxrt`` module, and ``dfx run --backend xrt``
without XRT (exit 1, one line saying what to install)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from dfx.compiler.driver import compile_model
from dfx.host.cli import main
from dfx.host.device import Device, Region, RunStatus, generate, hbm_pieces
from dfx.isa.config import load_core
from dfx.isa.container import write_binary


@pytest.fixture(scope="module")
def binary():
    return compile_model("gpt2-tiny", cards=2).binary


class FakeDevice:
    """Records what the host does; card 0's token region answers with canned tokens."""

    def __init__(self, card: int, log: list, answer: list[int]):
        self.card, self.log, self.answer = card, log, answer
        self.mem: dict[tuple[str, int], bytes] = {}

    def load(self, image):
        self.log.append(("load", self.card))

    def write(self, space, addr, data):
        self.log.append(("write", self.card, space, addr))
        self.mem[(space, addr)] = bytes(data)

    def start(self, cards, reads=()):
        self.log.append(("start", self.card, cards, tuple(reads)))

    def wait(self, timeout_s=None):
        self.log.append(("wait", self.card))
        return RunStatus(0, cycles=1)

    def read(self, region):
        self.log.append(("read", self.card, region))
        return np.asarray(self.answer, "<u4").tobytes()[:region.nbytes]


def test_generate_sequence_on_fake_devices(binary):
    log: list = []
    devs = [FakeDevice(c, log, [5, 6, 7, 8, 9]) for c in range(2)]
    assert all(isinstance(d, Device) for d in devs)
    ids, logits, st = generate(devs, binary, [5, 6], 3)
    assert ids == [5, 6, 7, 8, 9] and logits is None and len(st) == 2
    kinds = [e[0] for e in log]
    # every card loaded and written before any starts; every card started before any wait
    assert max(i for i, k in enumerate(kinds) if k in ("load", "write")) < kinds.index("start")
    assert max(i for i, k in enumerate(kinds) if k == "start") < kinds.index("wait")
    starts = [e for e in log if e[0] == "start"]
    assert [s[2] for s in starts] == [2, 2]
    assert starts[0][3] and not starts[1][3]  # card 0 names its reads
    for c, d in enumerate(devs):
        cfg = binary.cards[c].symbols["cfg"]
        words = np.frombuffer(d.mem[(cfg["space"], int(cfg["addr"]))], "<u4")
        fields = list(cfg.get("fields", ("prompt_len", "gen_len", "write_logits", "card_id",
                                         "n_cards")))
        assert dict(zip(fields, words.tolist(), strict=True)) == {
            "prompt_len": 2, "gen_len": 3, "write_logits": 0, "card_id": c, "n_cards": 2}
        tok = binary.cards[c].symbols["tokens"]
        assert np.frombuffer(d.mem[(tok["space"], int(tok["addr"]))], "<u4").tolist() == \
            [5, 6] + [0xFFFF_FFFF] * 3


def test_generate_raises_the_simulator_error_on_a_fault(binary):
    from dfx.rtl.core.faults import Fault

    class Faulty(FakeDevice):
        def wait(self, timeout_s=None):
            return RunStatus(Fault.MEM_RANGE.value, error_pc=0)

    devs = [Faulty(c, [], [0]) for c in range(2)]
    with pytest.raises(Exception, match="card 0, pc 0"):
        generate(devs, binary, [1], 1)


def test_hbm_pieces_follow_the_interleave():
    core = load_core("tiny")
    w, c = core.timing.dma_port_bits // 8, core.b.hbm.pseudo_channels
    addr, n = 3 * w * c + 5, 5 * w + 7
    got = list(hbm_pieces(core, addr, n))
    assert sum(p[3] for p in got) == n
    for a in range(addr, addr + n):
        piece = next(p for p in got if p[2] <= a - addr < p[2] + p[3])
        ch, local = piece[0], piece[1] + (a - addr - piece[2])
        assert (ch, local) == ((a // w) % c, (a // (w * c)) * w + a % w)


# ----------------------------------------------------------------- XRT, stand-in pyxrt
class _Bo:
    normal = 0

    def __init__(self, dev, size, flags, group):
        self.size, self.group, self.data = size, group, {}
        _Bo.count = getattr(_Bo, "count", 0) + 1
        self.addr = 0x1000_0000 * _Bo.count

    def write(self, data, offset):
        for i, b in enumerate(bytes(data)):
            self.data[offset + i] = b

    def read(self, n, offset):
        return bytes(self.data.get(offset + i, 0) for i in range(n))

    def sync(self, direction, n, offset):
        assert 0 <= offset and offset + n <= self.size

    def address(self):
        return self.addr


def _fake_pyxrt(regs, status_words):
    x = types.ModuleType("pyxrt")
    calls: dict = {"args": {}}

    class kernel:  # noqa: N801 - pyxrt's names
        class cu_access_mode:  # noqa: N801
            exclusive = 1

        def __init__(self, ctx, name, mode):
            assert name == "dfx_core" and mode == 1

        def group_id(self, i):
            return i

        def read_register(self, off):
            return status_words.get(off, 0)

    class run:  # noqa: N801
        def __init__(self, k):
            pass

        def set_arg(self, i, v):
            calls["args"][i] = v

        def start(self):
            calls["started"] = True

        def wait(self, *a):
            calls["waited"] = True

    x.device = lambda i: ("dev", i)
    x.xclbin = lambda p: p
    x.hw_context = lambda d, u: ("ctx", d, u)
    x.kernel, x.run, x.bo = kernel, run, _Bo
    x.xclBOSyncDirection = types.SimpleNamespace(XCL_BO_SYNC_BO_TO_DEVICE=0,
                                                 XCL_BO_SYNC_BO_FROM_DEVICE=1)
    dev_cls = types.SimpleNamespace(register_xclbin=lambda xb: "uuid")
    x.device = lambda i: dev_cls
    return x, calls


def test_xrt_device_with_stand_in_pyxrt(binary, tmp_path, monkeypatch):
    from dfx.host.xrt_backend import XrtDevice

    core = binary.core
    from dfx.rtl.control.regmap import regmap

    regs = regmap(core)
    fake, calls = _fake_pyxrt(regs, {regs["cycles"].offset: 1234})
    monkeypatch.setitem(sys.modules, "pyxrt", fake)
    xcl = tmp_path / "k.xclbin"
    xcl.write_bytes(b"x")
    d = XrtDevice(0, 0, xcl, core)
    image = binary.cards[0]
    d.load(image)
    d.write("hbm", 100, b"\x01\x02\x03")
    d.start(2)
    st = d.wait()
    assert st == RunStatus(0, 0, 0, 1234) and calls["started"] and calls["waited"]
    assert d.read(Region("hbm", 100, 3)) == b"\x01\x02\x03"
    args = calls["args"]
    names = [r.name for r in regs.args]
    assert len(args) == len(names)
    assert args[names.index("cards")] == 2
    assert args[names.index("ddr")] is d.ddr
    assert args[names.index("hbm00")] is d.hbm[0] and len(d.hbm) == core.b.hbm.pseudo_channels
    assert args[names.index("prog")] == d.ddr.address() + d.prog[0]
    assert d.ddr.read(len(image.program), d.prog[0]) == bytes(image.program)


def test_run_backend_xrt_without_xrt(binary, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyxrt", None)  # import fails as without XRT
    path = write_binary(tmp_path / "t.dfx", binary)
    assert main(["run", str(path), "--tokens", "1,2", "--max-new-tokens", "1",
                 "--backend", "xrt", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pyxrt" in err[0] and "install XRT" in err[0]
