"""YOSO hardware description: load, validate, hash.

A description is a TOML file (`yoso_backend/hw/<name>.toml`, format `stdbp-yoso-hw` version 1) in
which every value is a table `{ value, source, note }`; `source` says where the number comes from
(paper, opensmart, assumption, prior). See docs/yoso-spec.md section 2.

    hw = load_hardware("yoso-6x7")            # built-in name, or a path to a .toml / .json file
    hw.mesh_width, hw.weight_bits, hw.v_max   # typed fields and derived ranges
    hw.sha256                                 # hash of the canonical JSON of the description

Derived integer ranges (two's complement, saturating):
    weights  w in [-(2^(bw-1) - 1), 2^(bw-1) - 1]      (symmetric: the quantiser never uses -2^(bw-1))
    A        in [-2^(ba-1), 2^(ba-1) - 1]
    V        in [-2^(bv-1), 2^(bv-1) - 1]
    theta    in [1, 2^bt - 1]  with bt <= bv - 1, so theta <= v_max
    steps    0 .. 2^bs - 1
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdbp.errors import UserError

FORMAT = "stdbp-yoso-hw"
FORMAT_VERSION = 1
SOURCES = ("paper", "opensmart", "assumption", "prior", "calibrated", "extrapolated")
HW_DIR = Path(__file__).resolve().parent / "hw"
DEFAULT_HW = "yoso-6x7"

# section -> key -> (type, lower bound, upper bound); bounds inclusive, None = unbounded
_INT, _FLOAT, _STR = "int", "float", "str"
SCHEMA: dict[str, dict[str, tuple[str, Any, Any]]] = {
    "mesh": {"width": (_INT, 1, 64), "height": (_INT, 1, 64)},
    "pe": {
        "neurons": (_INT, 1, 1 << 16),
        "weights": (_INT, 1, 1 << 26),
        "spike_address_depth": (_INT, 2, 1 << 16),
    },
    "bits": {
        "weight": (_INT, 2, 16),
        "accumulated_weight": (_INT, 2, 32),
        "potential": (_INT, 2, 32),
        "threshold": (_INT, 1, 30),
        "time_step": (_INT, 1, 16),
        "neuron_index": (_INT, 1, 24),
        "coordinate": (_INT, 1, 8),
    },
    "time": {"steps_per_alpha": (_INT, 1, 1 << 16), "default_window_steps": (_INT, 0, (1 << 16) - 1)},
    "router": {
        "stages": (_INT, 1, 2),
        "cycles_per_hop": (_INT, 1, 64),
        "flit_bits": (_INT, 8, 256),
        "flits_per_packet": (_INT, 1, 1),
        "virtual_channels": (_INT, 1, 16),
        "ports": (_INT, 5, 5),
        "fifo_depth": (_INT, 1, 1 << 16),
        "routing": (_STR, None, None),
    },
    "core": {
        "load_cycles": (_INT, 1, 1024),
        "compute_cycles": (_INT, 1, 1024),
        "store_cycles": (_INT, 1, 1024),
        "sram_read_latency": (_INT, 0, 1024),
        "lanes": (_INT, 1, 1 << 16),
        "fifo_depth": (_INT, 1, 1 << 16),
        "step_barrier_cycles": (_INT, 0, 1 << 16),
    },
    "clock": {"frequency_hz": (_FLOAT, 1e3, 1e11)},
    "host": {"x": (_INT, 0, 1 << 16), "y": (_INT, 0, 1 << 16)},
    "energy": {
        "add_pj": (_FLOAT, 0.0, 1e6),
        # one read and one write figure (pJ per word) for each of the four SRAMs of a PE
        **{f"{sram}_sram_{op}_pj": (_FLOAT, 0.0, 1e6)
           for sram in ("weight", "accw", "neuron", "spike_addr") for op in ("read", "write")},
        "fifo_op_pj": (_FLOAT, 0.0, 1e6),
        "router_hop_pj": (_FLOAT, 0.0, 1e6),
        "link_hop_pj": (_FLOAT, 0.0, 1e6),
        "static_power_mw": (_FLOAT, 0.0, 1e6),
    },
}
_TOP = {"format", "format_version", "name", "revision"}

# Spike kinds in the 2-bit kind field of a flit (docs/yoso-spec.md section 5)
KIND_SPIKE, KIND_TO_HOST, KIND_CONFIG, KIND_CONTROL = 0, 1, 2, 3
KIND_BITS = 2


@dataclass(frozen=True)
class FlitLayout:
    """Bit fields of a 32-bit spike flit, LSB first: step | index | kind | y | x."""

    step_bits: int
    index_bits: int
    kind_bits: int
    coord_bits: int

    @property
    def index_shift(self) -> int:
        return self.step_bits

    @property
    def kind_shift(self) -> int:
        return self.step_bits + self.index_bits

    @property
    def y_shift(self) -> int:
        return self.kind_shift + self.kind_bits

    @property
    def x_shift(self) -> int:
        return self.y_shift + self.coord_bits

    @property
    def total_bits(self) -> int:
        return self.x_shift + self.coord_bits

    def pack(self, x: int, y: int, kind: int, index: int, step: int) -> int:
        fields = ((x, self.coord_bits), (y, self.coord_bits), (kind, self.kind_bits),
                  (index, self.index_bits), (step, self.step_bits))
        for value, bits in fields:
            if not 0 <= int(value) < (1 << bits):
                raise ValueError(f"flit field value {value} does not fit {bits} bits")
        return ((int(x) << self.x_shift) | (int(y) << self.y_shift) | (int(kind) << self.kind_shift)
                | (int(index) << self.index_shift) | int(step))

    def unpack(self, flit: int) -> dict[str, int]:
        def get(shift: int, bits: int) -> int:
            return (int(flit) >> shift) & ((1 << bits) - 1)

        return {"x": get(self.x_shift, self.coord_bits), "y": get(self.y_shift, self.coord_bits),
                "kind": get(self.kind_shift, self.kind_bits),
                "index": get(self.index_shift, self.index_bits), "step": get(0, self.step_bits)}


@dataclass(frozen=True, eq=False)
class HardwareDescription:
    """A validated hardware description. `raw` is the full parsed document (values and sources)."""

    name: str
    revision: int
    raw: dict = field(repr=False)

    def value(self, section: str, key: str) -> Any:
        return self.raw[section][key]["value"]

    def source(self, section: str, key: str) -> str:
        return self.raw[section][key]["source"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HardwareDescription) and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    # --- typed accessors -------------------------------------------------------------------
    mesh_width = property(lambda s: s.value("mesh", "width"))
    mesh_height = property(lambda s: s.value("mesh", "height"))
    neurons_per_pe = property(lambda s: s.value("pe", "neurons"))
    weights_per_pe = property(lambda s: s.value("pe", "weights"))
    spike_address_depth = property(lambda s: s.value("pe", "spike_address_depth"))
    weight_bits = property(lambda s: s.value("bits", "weight"))
    acc_bits = property(lambda s: s.value("bits", "accumulated_weight"))
    potential_bits = property(lambda s: s.value("bits", "potential"))
    threshold_bits = property(lambda s: s.value("bits", "threshold"))
    time_bits = property(lambda s: s.value("bits", "time_step"))
    index_bits = property(lambda s: s.value("bits", "neuron_index"))
    coord_bits = property(lambda s: s.value("bits", "coordinate"))
    steps_per_alpha = property(lambda s: s.value("time", "steps_per_alpha"))
    default_window_steps = property(lambda s: s.value("time", "default_window_steps"))
    cycles_per_hop = property(lambda s: s.value("router", "cycles_per_hop"))
    flit_bits = property(lambda s: s.value("router", "flit_bits"))
    router_fifo_depth = property(lambda s: s.value("router", "fifo_depth"))
    clock_hz = property(lambda s: s.value("clock", "frequency_hz"))
    host_x = property(lambda s: s.value("host", "x"))
    host_y = property(lambda s: s.value("host", "y"))

    @property
    def n_pe(self) -> int:
        return self.mesh_width * self.mesh_height

    @property
    def w_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def acc_min(self) -> int:
        return -(1 << (self.acc_bits - 1))

    @property
    def acc_max(self) -> int:
        return (1 << (self.acc_bits - 1)) - 1

    @property
    def v_min(self) -> int:
        return -(1 << (self.potential_bits - 1))

    @property
    def v_max(self) -> int:
        return (1 << (self.potential_bits - 1)) - 1

    @property
    def theta_max(self) -> int:
        return (1 << self.threshold_bits) - 1

    @property
    def max_step(self) -> int:
        return (1 << self.time_bits) - 1

    @property
    def flit(self) -> FlitLayout:
        return FlitLayout(self.time_bits, self.index_bits, KIND_BITS, self.coord_bits)

    @property
    def energy(self) -> dict[str, float]:
        return {k: float(v["value"]) for k, v in self.raw["energy"].items()}

    def pe_xy(self, pe: int) -> tuple[int, int]:
        """PE id -> (x, y); ids run row by row: pe = y * width + x."""
        return pe % self.mesh_width, pe // self.mesh_width

    def pe_id(self, x: int, y: int) -> int:
        return y * self.mesh_width + x

    @property
    def sha256(self) -> str:
        return hardware_hash(self.raw)

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)

    def table(self) -> list[tuple[str, Any, str, str]]:
        """(dotted key, value, source, note) for every value, in file order."""
        rows = []
        for section, keys in self.raw.items():
            if section in _TOP:
                continue
            for key, item in keys.items():
                rows.append((f"{section}.{key}", item["value"], item["source"], item.get("note", "")))
        return rows


def hardware_hash(raw: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of the full description."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def builtin_names() -> list[str]:
    return sorted({p.stem for p in HW_DIR.glob("*.toml")} | {p.stem for p in HW_DIR.glob("*.json")})


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".toml", ".json") or path.exists():
        if not path.is_file():
            raise UserError(text, "hardware description file not found",
                            f"give a .toml/.json file or a built-in name ({', '.join(builtin_names())})")
        return path
    builtin = HW_DIR / f"{text}.toml"
    if not builtin.is_file():
        builtin = HW_DIR / f"{text}.json"
    if not builtin.is_file():
        raise UserError(text, "unknown hardware description",
                        f"use one of {', '.join(builtin_names())} or a path to a .toml/.json file")
    return builtin


def load_hardware(name_or_path: str | Path = DEFAULT_HW) -> HardwareDescription:
    """Load and validate a description from a built-in name or a .toml/.json path."""
    if isinstance(name_or_path, HardwareDescription):
        return name_or_path
    path = _resolve(name_or_path)
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(path, f"cannot parse hardware description: {err}", "fix the syntax") from None
    return from_dict(raw, where=str(path))


def _check_value(where: str, dotted: str, item: Any, spec: tuple[str, Any, Any]) -> None:
    kind, lo, hi = spec
    if not isinstance(item, dict) or "value" not in item or "source" not in item:
        raise UserError(where, f"{dotted}: must be a table {{ value = ..., source = ... }}",
                        "write e.g. `key = { value = 8, source = \"assumption\" }`")
    extra = set(item) - {"value", "source", "note"}
    if extra:
        raise UserError(where, f"{dotted}: unknown field(s) {sorted(extra)}", "only value, source, note")
    if item["source"] not in SOURCES:
        raise UserError(where, f"{dotted}: source {item['source']!r} is not one of {', '.join(SOURCES)}",
                        "state where the value comes from")
    value = item["value"]
    if kind == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == _FLOAT:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if ok:
            item["value"] = value = float(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise UserError(where, f"{dotted} = {value!r}: must be {'an integer' if kind == _INT else 'a number' if kind == _FLOAT else 'a string'}",
                        "fix the value")
    if lo is not None and not (lo <= value <= hi):
        raise UserError(where, f"{dotted} = {value!r}: out of range [{lo}, {hi}]", "choose a value in range")


def from_dict(raw: dict, where: str = "<hardware>") -> HardwareDescription:
    """Validate a parsed description (types, ranges, sources, cross-field rules)."""
    raw = copy.deepcopy(raw)
    if not isinstance(raw, dict):
        raise UserError(where, "hardware description must be a table", "see yoso_backend/hw/yoso-6x7.toml")
    if raw.get("format") != FORMAT:
        raise UserError(where, f"format {raw.get('format')!r} is not {FORMAT!r}", "start from yoso_backend/hw/yoso-6x7.toml")
    if raw.get("format_version") != FORMAT_VERSION:
        raise UserError(where, f"format_version {raw.get('format_version')!r} unsupported (this stdbp reads {FORMAT_VERSION})",
                        "convert the description or upgrade stdbp")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise UserError(where, "name: missing or not a string", "add name = \"...\"")
    if not isinstance(raw.get("revision"), int) or raw["revision"] < 0:
        raise UserError(where, "revision: must be a non-negative integer", "add revision = 1")
    unknown = set(raw) - _TOP - set(SCHEMA)
    if unknown:
        raise UserError(where, f"unknown section(s) {sorted(unknown)}", f"sections are {', '.join(SCHEMA)}")
    for section, keys in SCHEMA.items():
        got = raw.get(section)
        if not isinstance(got, dict):
            raise UserError(where, f"[{section}] missing", "copy it from yoso_backend/hw/yoso-6x7.toml")
        unknown = set(got) - set(keys)
        if unknown:
            raise UserError(where, f"[{section}] unknown key(s) {sorted(unknown)}", f"keys are {', '.join(keys)}")
        for key, spec in keys.items():
            if key not in got:
                raise UserError(where, f"{section}.{key}: missing", "copy it from yoso_backend/hw/yoso-6x7.toml")
            _check_value(where, f"{section}.{key}", got[key], spec)
    hw = HardwareDescription(name=raw["name"], revision=raw["revision"], raw=raw)
    _cross_checks(hw, where)
    return hw


def _cross_checks(hw: HardwareDescription, where: str) -> None:
    def bad(item: str, fix: str) -> None:
        raise UserError(where, item, fix)

    if hw.acc_bits < hw.weight_bits:
        bad(f"bits.accumulated_weight = {hw.acc_bits} < bits.weight = {hw.weight_bits}", "A must hold at least one weight")
    if hw.potential_bits < hw.acc_bits:
        bad(f"bits.potential = {hw.potential_bits} < bits.accumulated_weight = {hw.acc_bits}", "V must hold at least one A")
    if hw.threshold_bits > hw.potential_bits - 1:
        bad(f"bits.threshold = {hw.threshold_bits} > bits.potential - 1 = {hw.potential_bits - 1}",
            "every threshold must be a reachable potential")
    if hw.value("router", "routing") != "XY":
        bad(f"router.routing = {hw.value('router', 'routing')!r}", "only \"XY\" routing is specified")
    if hw.flit.total_bits != hw.flit_bits:
        bad(f"flit fields 2*coordinate + kind + neuron_index + time_step = {hw.flit.total_bits} bits != router.flit_bits = {hw.flit_bits}",
            "make the fields add up to the flit width")
    if max(hw.mesh_width, hw.mesh_height) > (1 << hw.coord_bits):
        bad(f"mesh {hw.mesh_width} x {hw.mesh_height} does not fit bits.coordinate = {hw.coord_bits}",
            "widen the coordinate field or shrink the mesh")
    if hw.default_window_steps > hw.max_step:
        bad(f"time.default_window_steps = {hw.default_window_steps} > largest step {hw.max_step} (bits.time_step = {hw.time_bits})",
            "lower the window or widen the time field")
    if hw.spike_address_depth <= hw.neurons_per_pe:
        bad(f"pe.spike_address_depth = {hw.spike_address_depth} <= pe.neurons = {hw.neurons_per_pe}",
            "the spike-address SRAM needs one word per neuron plus a destination table")
    if hw.neurons_per_pe > (1 << hw.index_bits):
        bad(f"pe.neurons = {hw.neurons_per_pe} does not fit bits.neuron_index = {hw.index_bits}", "widen the index field")
    if not (hw.host_x < hw.mesh_width and hw.host_y < hw.mesh_height):
        bad(f"host ({hw.host_x}, {hw.host_y}) outside the {hw.mesh_width} x {hw.mesh_height} mesh", "attach the host to a mesh router")
    if hw.potential_bits > 32 or hw.threshold_bits > 30:
        bad("bits.potential > 32 or bits.threshold > 30", "the 64-bit neuron SRAM word has a 32-bit V field and a 30-bit threshold field")


def multiplexed(hw: HardwareDescription, groups: int) -> HardwareDescription:
    """Time-multiplexing: every PE serves `groups` neuron groups in turn (docs/yoso-spec.md 4c).

    Each group has its own SRAM banks (neurons, accumulated weights, weights, spike addresses) of
    the PE's size; the core, its pipeline and the router are shared, so a PE now holds
    groups x pe.neurons neurons and groups x pe.weights weights, and its sweep and its packet
    updates take groups times as many cycles (the cycle model counts them: that is the latency
    cost). Per-access energies are the bank's (unchanged); the static power is the description's
    (the extra banks' leakage is not modelled: an assumption the note says). Named
    `<name>-tm<groups>`; every changed value has source "assumption" and says so."""
    if groups < 1:
        raise UserError("--multiplex", f"{groups} groups", "use 1 (no time-multiplexing) or more")
    if groups == 1:
        return hw
    raw = copy.deepcopy(hw.raw)
    raw["name"] = f"{hw.name}-tm{groups}"
    pe = raw["pe"]
    n, w, depth = hw.neurons_per_pe, hw.weights_per_pe, hw.spike_address_depth
    # the notes name the chip, not its calibration: a calibrated copy multiplexed the same way has
    # the same structure (calibrate.structure_of), so its clock applies to the compiled program
    why = f"time-multiplexed from {hw.name.removesuffix('-calibrated')}: {groups} neuron groups per PE, served in turn, one SRAM bank each"
    pe["neurons"] = {"value": n * groups, "source": "assumption", "note": f"{why} ({groups} x {n})"}
    pe["weights"] = {"value": w * groups, "source": "assumption", "note": f"{why} ({groups} x {w})"}
    pe["spike_address_depth"] = {"value": depth * groups, "source": "assumption",
                                 "note": f"{why}: one neuron word per neuron, {groups} x {depth - n} table words"}
    st = raw["energy"]["static_power_mw"]
    raw["energy"]["static_power_mw"] = {**st, "note": st.get("note", "") + f"; unchanged by the {groups}-way "
                                        "time-multiplexing (the extra banks' leakage is not modelled)"}
    return from_dict(raw, where=f"{hw.name} --multiplex {groups}")
