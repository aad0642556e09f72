"""Core and board configuration: one typed object, read by the compiler, the simulators and the
RTL generator (the single source of truth for d, l, latencies, buffer sizes and bandwidths).

Configurations are YAML files under ``boards/`` (``boards/<name>.yaml`` for boards,
``boards/cores/<name>.yaml`` for cores). They are validated on load; every error names the
file, the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dfx.isa.documents import read_yaml
from dfx.isa.errors import DfxError


class ConfigError(DfxError):
    """A configuration file is missing, malformed or has an invalid field."""


#: Largest configuration YAML read (the built-in ones are under 16 KiB).
MAX_CONFIG_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------------
# Schema


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _power_of_two(v: int) -> str | None:
    return None if v > 0 and v & (v - 1) == 0 else "must be a power of two"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _fraction(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


@dataclass(frozen=True)
class HbmConfig:
    pseudo_channels: int = field(metadata={"check": _positive, "range": (1, 1024)})
    pc_capacity_bytes: int = field(metadata={"check": _positive, "range": (1024, 1 << 40)})
    pc_bandwidth_gbs: float = field(metadata={"check": _positive, "range": (0.001, 10000)})
    axi_port_bits: int = field(metadata={"check": _power_of_two, "range": (8, 4096)})
    axi_clock_mhz: float = field(metadata={"check": _positive, "range": (1, 10000)})
    interleave_bytes: int = field(metadata={"check": _power_of_two, "range": (1, 1 << 20)})
    # timing (docs/timing.md): sustained fraction of pc_bandwidth_gbs for streams, idle read
    # latency, and the bus turnaround when a pseudo-channel switches between read and write
    efficiency: float = field(metadata={"check": _fraction, "range": (0, 1)})
    read_latency_ns: float = field(metadata={"check": _positive, "range": (0, 1_000_000)})
    turnaround_ns: float = field(metadata={"check": _non_negative, "range": (0, 1_000_000)})

    @property
    def capacity_bytes(self) -> int:
        return self.pseudo_channels * self.pc_capacity_bytes

    @property
    def bandwidth_gbs(self) -> float:
        return self.pseudo_channels * self.pc_bandwidth_gbs


@dataclass(frozen=True)
class DdrConfig:
    channels: int = field(metadata={"check": _positive, "range": (1, 64)})
    channel_capacity_bytes: int = field(metadata={"check": _positive, "range": (1024, 1 << 44)})
    channel_bandwidth_gbs: float = field(metadata={"check": _positive, "range": (0.001, 10000)})
    # timing (docs/timing.md): access granule, sustained fraction of the peak, read latency
    burst_bytes: int = field(metadata={"check": _power_of_two, "range": (1, 4096)})
    efficiency: float = field(metadata={"check": _fraction, "range": (0, 1)})
    read_latency_ns: float = field(metadata={"check": _positive, "range": (0, 1_000_000)})

    @property
    def capacity_bytes(self) -> int:
        return self.channels * self.channel_capacity_bytes


@dataclass(frozen=True)
class QsfpConfig:
    ports: int = field(metadata={"check": _positive, "range": (1, 64)})
    line_rate_gbps: float = field(metadata={"check": _positive, "range": (0.001, 100000)})
    # timing (docs/timing.md): line code (payload bits per line block), the link layer's
    # transmit-to-receive latency and the cable's propagation delay
    encoding_payload_bits: int = field(metadata={"check": _positive, "range": (1, 4096)})
    encoding_line_bits: int = field(metadata={"check": _positive, "range": (1, 4096)})
    link_latency_ns: float = field(metadata={"check": _non_negative, "range": (0, 1_000_000)})
    cable_delay_ns: float = field(metadata={"check": _non_negative, "range": (0, 1_000_000)})
    # the link core's user interface (AXI4-Stream TDATA bits, docs/core.md "Router and ring")
    user_bits: int = field(metadata={"check": _power_of_two, "range": (8, 4096)})


@dataclass(frozen=True)
class PcieConfig:
    generation: int = field(metadata={"check": _positive, "range": (1, 16)})
    lanes: int = field(metadata={"check": _power_of_two, "range": (1, 64)})
    bandwidth_gbs: float = field(metadata={"check": _positive, "range": (0.001, 10000)})


@dataclass(frozen=True)
class ResourceConfig:
    lut: int = field(metadata={"range": (0, 10**9)})
    ff: int = field(metadata={"range": (0, 10**9)})
    dsp: int = field(metadata={"range": (0, 10**9)})
    bram36: int = field(metadata={"range": (0, 10**9)})
    uram: int = field(metadata={"range": (0, 10**9)})
    slr: int = field(metadata={"range": (0, 64)})


@dataclass(frozen=True)
class ClockConfig:
    kernel_default_mhz: float = field(metadata={"check": _positive, "range": (1, 10000)})
    max_kernel_mhz: float = field(metadata={"check": _positive, "range": (1, 10000)})


@dataclass(frozen=True)
class BoardConfig:
    """An FPGA card (``boards/<name>.yaml``)."""

    name: str
    description: str
    part: str
    platform: str
    hbm: HbmConfig
    ddr: DdrConfig
    qsfp: QsfpConfig
    pcie: PcieConfig
    resources: ResourceConfig
    clocks: ClockConfig
    power_w: float = field(metadata={"range": (0, 100_000)})
    sources: dict[str, str]


@dataclass(frozen=True)
class MpuConfig:
    """Matrix Processing Unit geometry and pipeline (DFX §IV-B/C)."""

    d: int = field(metadata={"check": _power_of_two, "range": (2, 1024)})
    l: int = field(  # noqa: E741 - the paper's name
        metadata={"check": _power_of_two, "range": (1, 1024)})
    mul_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    add_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    sfu_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    dot_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})

    @property
    def tree_depth(self) -> int:
        return int(math.log2(self.d))

    @property
    def tile_elements(self) -> int:
        return self.d * self.l


@dataclass(frozen=True)
class VpuConfig:
    """Vector Processing Unit pipeline (DFX §IV-D); its width is the MPU's d. ``acc_*``: the
    exact fixed-point accumulation of vacc/vaccsq (docs/numerics.md §5): the FP32 -> fixed
    conversion and integer adder tree over one d-wide vector, the wide accumulator (one vector
    per cycle), and the final rounding to FP32."""

    add_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    mul_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    square_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    bypass_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    scalar_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    table_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    compare_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    acc_tree_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    acc_add_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    acc_convert_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})


def _table_check(t: TableSpec) -> str | None:
    if t.points <= 0:
        return "points must be > 0"
    if not t.hi > t.lo:
        return "hi must be greater than lo"
    step = (t.hi - t.lo) / t.points
    m, _ = math.frexp(step)
    if m != 0.5:
        return f"step (hi - lo) / points = {step!r} must be a power of two"
    return None


@dataclass(frozen=True)
class TableSpec:
    """A piecewise-linear function table: ``points`` segments on [lo, hi] (docs/numerics.md)."""

    lo: float = field(metadata={"range": (-65504, 65504)})
    hi: float = field(metadata={"range": (-65504, 65504)})
    points: int = field(metadata={"range": (1, 1 << 20)})

    @property
    def step(self) -> float:
        return (self.hi - self.lo) / self.points


@dataclass(frozen=True)
class TablesConfig:
    gelu: TableSpec = field(metadata={"check": _table_check})
    exp: TableSpec = field(metadata={"check": _table_check})
    recip: TableSpec = field(metadata={"check": _table_check})
    rsqrt: TableSpec = field(metadata={"check": _table_check})


@dataclass(frozen=True)
class BufferConfig:
    vrf_vectors: int = field(metadata={"check": _positive, "range": (1, 65536)})
    srf_scalars: int = field(metadata={"check": _positive, "range": (1, 65536)})
    wbuf_tiles: int = field(metadata={"check": _positive, "range": (1, 65536)})
    router_fifo_vectors: int = field(metadata={"check": _positive, "range": (1, 65536)})
    instruction_words: int = field(metadata={"check": _positive, "range": (1, 1 << 24)})


@dataclass(frozen=True)
class ControlConfig:
    loop_depth: int = field(metadata={"check": _positive, "range": (1, 64)})


@dataclass(frozen=True)
class TimingConfig:
    """Cycle-level parameters of the core that only the timing model and the RTL need
    (docs/timing.md): instruction issue, unit queues, the DMA's memory ports, buffers and the
    router's pipeline."""

    issue_cycles: int = field(metadata={"check": _positive, "range": (1, 64)})
    branch_penalty: int = field(metadata={"check": _non_negative, "range": (0, 1024)})
    int_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    unit_queue: int = field(metadata={"check": _non_negative, "range": (0, 1024)})
    dma_port_bits: int = field(metadata={"check": _power_of_two, "range": (8, 65536)})
    wbuf_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    router_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})


def _lut_check(c: LutGemmConfig) -> str | None:
    if c.mu > 8:
        return "mu (key bits per table read) must be at most 8"
    if c.slice % 8:
        return f"mu * keys = {c.slice} inputs per lane word must be a multiple of 8 (whole bytes)"
    if c.max_rows % c.lanes:
        return "max_rows must be a multiple of lanes"
    if c.max_group % c.slice or c.max_group > 8192:
        return "max_group must be a multiple of mu * keys and at most 8192 (exact sums)"
    return None


@dataclass(frozen=True)
class LutGemmConfig:
    """The LUT-GEMM unit beside the MPU (Park et al., ICLR 2024; docs/lutgemm.md).

    Each cycle every one of ``lanes`` row lanes reads one packed word of ``slice = mu * keys``
    sign bits (one row, one bit-plane) and does ``keys`` table look-ups with ``mu``-bit keys.
    """

    mu: int = field(metadata={"check": _power_of_two, "range": (1, 8)})
    keys: int = field(metadata={"check": _power_of_two, "range": (1, 64)})
    lanes: int = field(metadata={"check": _power_of_two, "range": (1, 65536)})
    max_q: int = field(metadata={"check": _positive, "range": (1, 8)})
    max_rows: int = field(metadata={"check": _positive, "range": (1, 1 << 24)})
    max_group: int = field(metadata={"check": _positive, "range": (1, 8192)})
    symmetric: bool
    scalers: int = field(metadata={"check": _positive, "range": (1, 65536)})
    build_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    lookup_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    convert_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    mul_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})
    add_latency: int = field(metadata={"check": _positive, "range": (1, 1024)})

    @property
    def slice(self) -> int:
        """Inputs covered by one lane word (the packed layout's slice, docs/lutgemm.md)."""
        return self.mu * self.keys

    @property
    def table_entries(self) -> int:
        """Stored entries per table: 2^mu, or 2^(mu-1) with the symmetric form."""
        return 1 << (self.mu - 1 if self.symmetric else self.mu)


@dataclass(frozen=True)
class CoreConfig:
    """A DFX compute core (``boards/cores/<name>.yaml``) and the board it sits on."""

    name: str
    description: str
    board: str
    clock_mhz: float = field(metadata={"check": _positive, "range": (1, 10000)})
    dtype: str = field(metadata={"choices": ("fp16",)})
    mpu: MpuConfig = None  # type: ignore[assignment]
    vpu: VpuConfig = None  # type: ignore[assignment]
    tables: TablesConfig = None  # type: ignore[assignment]
    buffers: BufferConfig = None  # type: ignore[assignment]
    control: ControlConfig = None  # type: ignore[assignment]
    timing: TimingConfig = None  # type: ignore[assignment]
    lutgemm: LutGemmConfig = field(default=None, metadata={"check": _lut_check})  # type: ignore[assignment]
    sources: dict[str, str] = field(default_factory=dict)
    board_config: BoardConfig | None = field(default=None, metadata={"internal": True})

    @property
    def d(self) -> int:
        return self.mpu.d

    @property
    def l(self) -> int:  # noqa: E743 - the paper's name
        return self.mpu.l

    @property
    def vector_bytes(self) -> int:
        """Bytes of one d-wide FP16 vector (one VRF entry)."""
        return 2 * self.mpu.d

    @property
    def tile_bytes(self) -> int:
        """Bytes of one d x l FP16 weight tile."""
        return 2 * self.mpu.d * self.mpu.l

    @property
    def b(self) -> BoardConfig:
        assert self.board_config is not None
        return self.board_config


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _build(cls: type, data: Any, where: str, origin: str) -> Any:
    """Turn a parsed YAML mapping into dataclass ``cls``, checking every field."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: {where or 'top level'}: expected a mapping, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{origin}: {_join(where, unknown[0])}: unknown field "
            f"(allowed: {', '.join(fields)})"
        )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name not in data:
            no_default = (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            if no_default or f.default is None:
                raise ConfigError(f"{origin}: {path}: missing required field")
            continue
        values[name] = _convert(hints[name], data[name], path, origin)
        bounds = f.metadata.get("range")
        check = f.metadata.get("check")
        if isinstance(values[name], float) and not math.isfinite(values[name]):
            within = f" in {_num(bounds[0])}..{_num(bounds[1])}" if bounds else ""
            raise ConfigError(f"{origin}: {path}: must be a finite number{within}, "
                              f"got {_short(data[name])}")
        if check is not None:
            problem = check(values[name])
            if problem:
                raise ConfigError(f"{origin}: {path}: {problem}, got {_short(data[name])}")
        if bounds is not None:
            _check_range(values[name], bounds, path, origin)
        choices = f.metadata.get("choices")
        if choices is not None and values[name] not in choices:
            raise ConfigError(
                f"{origin}: {path}: must be one of {', '.join(choices)}, got {_short(data[name])}"
            )
    return cls(**values)


def _check_range(value: float, bounds: tuple[float, float], path: str, origin: str) -> None:
    """A configuration number lies in the range the hardware makes sensible (docs/limits.md)."""
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ConfigError(f"{origin}: {path}: must be in {_num(lo)}..{_num(hi)}, "
                          f"got {_short(value)}")


def _yaml_hint(value: Any) -> str:
    """Why a number-looking string is a string: YAML 1.1 exponents need a dot (1.0e-3)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (a string: YAML reads an exponent only after a dot, as in 1.0e-3)"
    return ""


def _short(value: Any) -> str:
    """``repr`` of a value for a one-line message, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(v: float) -> str:
    if isinstance(v, int) and v >= 1 << 20 and v & (v - 1) == 0:
        return f"2^{v.bit_length() - 1}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _convert(tp: Any, value: Any, path: str, origin: str) -> Any:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, origin)
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(
                f"{origin}: {path}: expected a mapping of strings, got {_short(value)}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{origin}: {path}: expected a number, got {_short(value)}"
                              + _yaml_hint(value))
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{origin}: {path}: expected an integer, got {_short(value)}")
        return value
    if not isinstance(value, tp):
        raise ConfigError(f"{origin}: {path}: expected {_type_name(tp)}, got {_short(value)}")
    return value


def _read_yaml(path: Path) -> Any:
    """A configuration file, through the one YAML parser (size, depth, UTF-8 checked)."""
    return read_yaml(path, error=ConfigError, max_bytes=MAX_CONFIG_BYTES)


def _check_sources(obj: Any, origin: str) -> None:
    """Every figure of a configuration carries its source (``sources`` key ``"*"`` covers all)."""
    if "*" in obj.sources:
        return
    for path in _leaf_paths(obj):
        if path not in obj.sources and path.split(".")[0] not in obj.sources:
            raise ConfigError(f"{origin}: sources: no source given for field {path}")


def _leaf_paths(obj: Any, where: str = "") -> list[str]:
    out: list[str] = []
    for f in dataclasses.fields(obj):
        if f.name in ("name", "description", "board", "part", "platform", "sources"):
            continue
        if f.metadata.get("internal"):
            continue
        v = getattr(obj, f.name)
        path = _join(where, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, TableSpec):
            out += _leaf_paths(v, path)
        else:
            out.append(path)
    return out


def boards_dir() -> Path:
    """The built-in configurations (``boards/`` in a checkout, ``dfx/boards`` in a wheel)."""
    return Path(str(resources.files("dfx.boards")))


def available_boards() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.yaml"))


def available_cores() -> list[str]:
    return sorted(p.stem for p in (boards_dir() / "cores").glob("*.yaml"))


def _resolve(name_or_path: str | Path, kind: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    sub = boards_dir() if kind == "board" else boards_dir() / "cores"
    candidate = sub / f"{name_or_path}.yaml"
    if not candidate.exists():
        names = available_boards() if kind == "board" else available_cores()
        raise ConfigError(f"unknown {kind} {str(name_or_path)!r} (available: {', '.join(names)})")
    return candidate


def load_board(name_or_path: str | Path) -> BoardConfig:
    """Load and validate a board by built-in name (``u280``) or YAML path."""
    path = _resolve(name_or_path, "board")
    board = _build(BoardConfig, _read_yaml(path), "", str(path))
    _check_sources(board, str(path))
    return board


def load_core(name_or_path: str | Path, board: str | Path | None = None) -> CoreConfig:
    """Load and validate a core by built-in name (``dfx-u280``) or YAML path, with its board.

    ``board`` overrides the core file's own ``board`` field.
    """
    path = _resolve(name_or_path, "core")
    core = _build(CoreConfig, _read_yaml(path), "", str(path))
    _check_sources(core, str(path))
    board_cfg = load_board(board if board is not None else core.board)
    return dataclasses.replace(core, board=board_cfg.name, board_config=board_cfg)


def core_from_dict(data: dict[str, Any], board: dict[str, Any], origin: str) -> CoreConfig:
    """Rebuild a configuration embedded in a binary (no file access)."""
    core = _build(CoreConfig, data, "", origin)
    board_cfg = _build(BoardConfig, board, "", origin)
    return dataclasses.replace(core, board_config=board_cfg)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-data form of a configuration (for embedding in binaries and JSON output)."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("internal"):
            continue
        v = getattr(obj, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else v
    return out


def range_table() -> str:
    """The ranges of every configuration number as a Markdown table (docs/limits.md shows it;
    a test keeps the two equal)."""
    def rows(cls: type, kind: str, prefix: str = "") -> list[str]:
        out = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            tp = hints[f.name]
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                out += rows(tp, kind, f"{prefix}{f.name}.")
            elif tp in (int, float):
                lo, hi = f.metadata["range"]
                check = f.metadata.get("check")
                also = check.__name__.strip("_").replace("_", " ") if check else ""
                out.append(f"| {kind} | `{prefix}{f.name}` | {tp.__name__} | "
                           f"{_num(lo)}..{_num(hi)} | {also} |")
        return out

    head = ["| file | field | type | range | also |", "|---|---|---|---|---|"]
    return "\n".join(head + rows(CoreConfig, "core") + rows(BoardConfig, "board")) + "\n"
