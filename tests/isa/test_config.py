"""Core and board configurations: the built-ins load, and bad files give precise errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dfx.isa.config import (
    ConfigError,
    available_boards,
    available_cores,
    boards_dir,
    core_from_dict,
    load_board,
    load_core,
    to_dict,
)


def test_builtins_load_with_their_sources() -> None:
    assert {"u280", "tiny"} <= set(available_boards())
    assert {"dfx-u280", "tiny"} <= set(available_cores())
    core = load_core("dfx-u280")
    assert (core.d, core.l, core.clock_mhz, core.b.name) == (64, 16, 200.0, "u280")
    assert core.b.hbm.pseudo_channels == 32 and core.b.hbm.pc_capacity_bytes == 256 << 20
    assert core.b.hbm.bandwidth_gbs == pytest.approx(460.0)
    assert core.tile_bytes == 2 * 64 * 16
    assert core.tables.gelu.points == 2048 and core.tables.gelu.lo == -8.0
    assert "hbm.pc_bandwidth_gbs" in core.b.sources


def test_round_trip_through_plain_data() -> None:
    core = load_core("tiny")
    assert core_from_dict(to_dict(core), to_dict(core.b), "embedded") == core


def _write(tmp_path: Path, base: str, edit) -> Path:  # noqa: ANN001
    data = yaml.safe_load((boards_dir() / "cores" / f"{base}.yaml").read_text())
    edit(data)
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["mpu"].__setitem__("d", 12), "mpu.d: must be a power of two, got 12"),
    (lambda d: d["mpu"].__setitem__("l", "16"), "mpu.l: expected an integer, got '16'"),
    (lambda d: d.__setitem__("dtype", "bf16"), "dtype: must be one of fp16, got 'bf16'"),
    (lambda d: d["mpu"].pop("add_latency"), "mpu.add_latency: missing required field"),
    (lambda d: d["mpu"].__setitem__("lanes", 3), "mpu.lanes: unknown field (allowed: d, l,"),
    (lambda d: d["tables"]["gelu"].__setitem__("points", 1000), "tables.gelu: step"),
    (lambda d: d.__setitem__("clock_mhz", -1), "clock_mhz: must be > 0, got -1"),
])
def test_bad_field_names_file_field_and_allowed_values(tmp_path: Path, edit, message: str
                                                       ) -> None:  # noqa: ANN001
    path = _write(tmp_path, "tiny", edit)
    with pytest.raises(ConfigError) as e:
        load_core(path)
    text = str(e.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        del d["sources"]["mpu.d"]

    path = _write(tmp_path, "dfx-u280", edit)
    with pytest.raises(ConfigError, match="no source given for field mpu.d"):
        load_core(path, board="tiny")


def test_unknown_names_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown core 'nope' \(available: .*dfx-u280"):
        load_core("nope")
    with pytest.raises(ConfigError, match=r"unknown board 'nope' \(available: .*u280"):
        load_board("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mpu: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_core(bad)


# ---------------------------------------------------------------------------------------------
# Every configuration number has a range the hardware makes sensible (docs/limits.md)


def _numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, object]]:
    import dataclasses
    import typing

    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += _numeric_fields(tp, f"{prefix}{f.name}.")
        elif tp in (int, float):
            out.append((prefix + f.name, f))
    return out


def _core_and_board_fields() -> list[tuple[str, str, object]]:
    from dfx.isa.config import BoardConfig, CoreConfig

    return ([("core", p, f) for p, f in _numeric_fields(CoreConfig)]
            + [("board", p, f) for p, f in _numeric_fields(BoardConfig)])


def test_every_configuration_number_has_a_range() -> None:
    missing = [f"{kind}: {path}" for kind, path, f in _core_and_board_fields()
               if "range" not in f.metadata]
    assert not missing, missing


def _set(data: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for p in parents:
        data = data[p]
    data[last] = value


@pytest.mark.parametrize("kind, path, field", _core_and_board_fields(),
                         ids=[f"{k}:{p}" for k, p, _ in _core_and_board_fields()])
def test_out_of_range_numbers_are_refused_on_load(kind: str, path: str, field) -> None:  # noqa: ANN001
    """Just outside each end of the range, infinity and NaN: one ConfigError naming the field,
    for a core file and for a configuration embedded in a binary (core_from_dict)."""
    lo, hi = field.metadata["range"]
    core = load_core("tiny")
    for bad in (hi * 2 + 1, lo - 1, float("inf"), float("nan")):
        core_d, board_d = to_dict(core), to_dict(core.b)
        _set(core_d if kind == "core" else board_d, path, bad)
        with pytest.raises(ConfigError, match="embedded: " + re.escape(path) + ": ") as e:
            core_from_dict(core_d, board_d, "embedded")
        assert "\n" not in str(e.value)


def test_docs_show_the_ranges_of_the_code() -> None:
    from dfx.isa.config import range_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "limits.md").read_text()
    assert range_table() in docs, "docs/limits.md: paste dfx.isa.config.range_table() again"
