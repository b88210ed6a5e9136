"""The compiled model `model.yoso/`: data structures, SRAM word layouts, load/save/verify.

Layout of the directory (docs/yoso-spec.md section 6):

    model.yoso/
      manifest.json            format, hardware description + sha256, model, layers, PEs, sha256 of every file
      program.bin              little-endian uint32 configuration words (header, layers, PEs, destinations)
      program.txt              the same, readable, plus per-neuron threshold and weight digests (diffs well)
      pe/pe_NN/weight.bin      weight SRAM image      (depth pe.weights,   bits.weight words, signed)
      pe/pe_NN/neuron.bin      neuron SRAM image      (depth pe.neurons,   64-bit words: V | theta | flags)
      pe/pe_NN/accw.bin        accumulated-weight SRAM (depth pe.neurons,  bits.accumulated_weight words)
      pe/pe_NN/spike_addr.bin  spike-address SRAM     (depth pe.spike_address_depth: flit templates, and for
                                                        each local neuron the (first, count) of its destinations)

SRAM images are raw little-endian words in the smallest unsigned container (u1/u2/u4/u8) that holds
the word; signed fields are two's complement within their bit width. This module never imports onnx
or torch: the emulator and the integer reference load programs with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stdbp.errors import UserError
from stdbp.fileio import public_mode
from yoso_backend.hardware import KIND_SPIKE, KIND_TO_HOST, HardwareDescription, from_dict, hardware_hash

FORMAT = "stdbp-yoso-program"
FORMAT_VERSION = 2  # 2: conv and pool layers, per-neuron destination ranges
MAGIC = 0x4F534F59  # b"YOSO" little-endian
HOST = -1  # destination id of the host in PEMap.dests
SRAM_NAMES = ("weight", "neuron", "accw", "spike_addr")
OUTPUT_MODES = ("ttfs", "softmax")

# neuron SRAM word (64 bits): V two's complement in bits [0, bits.potential), threshold unsigned in
# bits [32, 32 + bits.threshold), bit 62 = enabled (a mapped neuron), bit 63 = fired.
NEURON_V_SHIFT, NEURON_THETA_SHIFT, NEURON_ENABLED_BIT, NEURON_FIRED_BIT = 0, 32, 62, 63
LAYER_KINDS = ("dense", "conv", "pool")
LAYER_RECORD_WORDS = 24


def range_bits(hw: HardwareDescription) -> int:
    """Width of the `first` and `count` fields of a spike-address neuron word (spec section 6)."""
    return int(hw.spike_address_depth).bit_length()


def _container(bits: int) -> np.dtype:
    for dt in ("<u1", "<u2", "<u4", "<u8"):
        if bits <= np.dtype(dt).itemsize * 8:
            return np.dtype(dt)
    raise ValueError(f"no container for {bits}-bit words")


def to_twos(values: np.ndarray, bits: int) -> np.ndarray:
    """Signed ints -> unsigned two's complement words of `bits` bits (uint64)."""
    values = np.asarray(values, dtype=np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"value outside the signed {bits}-bit range")
    return (values.astype(np.uint64) & np.uint64((1 << bits) - 1))


def from_twos(words: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned two's complement words of `bits` bits -> int64."""
    w = np.asarray(words, dtype=np.uint64) & np.uint64((1 << bits) - 1)
    w = w.astype(np.int64)
    return np.where(w >= (1 << (bits - 1)), w - (1 << bits), w)


@dataclass(frozen=True)
class SramSpec:
    name: str
    depth: int
    word_bits: int

    @property
    def dtype(self) -> np.dtype:
        return _container(self.word_bits)

    def to_json(self) -> dict:
        return {"depth": self.depth, "word_bits": self.word_bits, "dtype": self.dtype.str}


def sram_specs(hw: HardwareDescription) -> dict[str, SramSpec]:
    return {
        "weight": SramSpec("weight", hw.weights_per_pe, hw.weight_bits),
        "neuron": SramSpec("neuron", hw.neurons_per_pe, 64),
        "accw": SramSpec("accw", hw.neurons_per_pe, hw.acc_bits),
        # word j < N: flit template (bits [0, flit_bits)) | first << flit_bits | count << (flit_bits + r):
        # neuron j's destinations are table words N + first .. N + first + count - 1
        "spike_addr": SramSpec("spike_addr", hw.spike_address_depth, hw.flit_bits + 2 * range_bits(hw)),
    }


@dataclass
class LayerMap:
    """One layer as compiled: float attributes, integer parameters, its PEs.

    kind "dense", "conv" (kernel shared by each output channel) or "pool" (min-pool: no weights);
    geometry (conv, pool): the 14 words of `yoso_backend.geometry.Window.to_list()`.
    """

    index: int
    name: str
    n_in: int
    n_out: int
    threshold: float            # float theta of the ONNX node
    t_max: float                # float window of the ONNX node (may be +inf)
    window_steps: int           # last step at which a neuron of this layer may fire
    scale_mode: str             # "layer" or "neuron"
    scales: np.ndarray          # float64 [n_out]: w_int = round(w * scale) (equal entries in layer mode)
    threshold_int: np.ndarray   # int64 [n_out]: round(theta * scale * steps_per_alpha / alpha)
    pes: list[int]              # PE ids holding this layer, in neuron order
    fires: bool = True          # False: output layer in softmax mode (potentials are read out)
    kind: str = "dense"
    geometry: list[int] | None = None

    def window(self):
        from yoso_backend.geometry import Window

        return Window.from_list(self.kind, self.geometry)


@dataclass
class PEMap:
    """One PE: which neurons of which layer it holds, where its spikes go."""

    pe: int
    x: int
    y: int
    layer: int
    neuron_start: int
    neuron_count: int
    fan_in: int
    dests: list[int]            # destination table (PE ids; HOST = -1): each neuron sends to a range of it


@dataclass(eq=False)
class YosoProgram:
    hw: HardwareDescription
    n_inputs: int
    n_classes: int
    alpha: float
    silent_zero: bool
    steps_per_alpha: int
    output_mode: str            # "ttfs" or "softmax"
    early_stop: bool            # TTFS only: the frame ends after the step of the first output spike
    layers: list[LayerMap]
    pes: list[PEMap]
    input_dests: list[int]      # the host's destination table (PEs of layer 0)
    sram: dict[int, dict[str, np.ndarray]]  # pe id -> SRAM name -> words (container dtype)
    meta: dict = field(default_factory=dict)  # quantisation report, warnings, source, stats (JSON)
    input_ranges: np.ndarray | None = None  # int64 [n_inputs, 2]: (first, count) into input_dests; None = all

    def __post_init__(self) -> None:
        if self.input_ranges is None:
            self.input_ranges = np.tile(np.array([[0, len(self.input_dests)]], np.int64), (self.n_inputs, 1))
        self.input_ranges = np.asarray(self.input_ranges, np.int64).reshape(self.n_inputs, 2)

    # --- derived views used by the reference and the emulator -------------------------------
    @property
    def steps_per_unit(self) -> float:
        """Integer steps per unit of float time: step = t * steps_per_alpha / alpha."""
        return self.steps_per_alpha / self.alpha

    def pe_map(self, pe: int) -> PEMap:
        for p in self.pes:
            if p.pe == pe:
                return p
        raise KeyError(pe)

    def pe_weights(self, pe: int) -> np.ndarray:
        """Dense PE: int64 [neuron_count, fan_in] decoded from the weight SRAM (address i * count + j)."""
        p = self.pe_map(pe)
        used = p.fan_in * p.neuron_count
        w = from_twos(self.sram[pe]["weight"][:used], self.hw.weight_bits)
        return w.reshape(p.fan_in, p.neuron_count).T.copy()

    def pe_weight_words(self, pe: int) -> int:
        """Weight SRAM words in use: dense fan_in x neurons; conv the kernels of its channels; pool 0."""
        p = self.pe_map(pe)
        kind = self.layers[p.layer].kind
        if kind == "dense":
            return p.fan_in * p.neuron_count
        if kind == "pool":
            return 0
        lo, hi = self.pe_channels(pe)
        return (hi - lo + 1) * p.fan_in

    def pe_thresholds(self, pe: int) -> np.ndarray:
        p = self.pe_map(pe)
        words = self.sram[pe]["neuron"][: p.neuron_count].astype(np.uint64)
        return ((words >> np.uint64(NEURON_THETA_SHIFT)) & np.uint64((1 << self.hw.threshold_bits) - 1)).astype(np.int64)

    def pe_channels(self, pe: int) -> tuple[int, int]:
        """Conv or pool PE: the output channels [first, last] its neuron range touches."""
        p = self.pe_map(pe)
        g = self.layers[p.layer].window()
        per = g.out_shape[1] * g.out_shape[2]
        return p.neuron_start // per, (p.neuron_start + p.neuron_count - 1) // per

    def pe_kernel(self, pe: int) -> np.ndarray:
        """Conv PE: int64 [channels, C_in, kh, kw], the kernels of its channels (address
        (o - first) * K + (c * kh + a) * kw + b, K = C_in * kh * kw), decoded from the weight SRAM."""
        p = self.pe_map(pe)
        g = self.layers[p.layer].window()
        lo, hi = self.pe_channels(pe)
        used = (hi - lo + 1) * g.kernel_words
        w = from_twos(self.sram[pe]["weight"][:used], self.hw.weight_bits)
        return w.reshape(hi - lo + 1, g.in_shape[0], *g.kernel)

    def layer_kernel(self, layer: int) -> np.ndarray:
        """Conv layer: int64 [C_out, C_in, kh, kw], each channel from the first PE that holds it."""
        lay = self.layers[layer]
        g = lay.window()
        out = np.zeros((g.out_channels, g.in_shape[0], *g.kernel), np.int64)
        for pe in reversed(lay.pes):
            lo, hi = self.pe_channels(pe)
            out[lo:hi + 1] = self.pe_kernel(pe)
        return out

    def pe_ranges(self, pe: int) -> np.ndarray:
        """int64 [neuron_count, 2]: (first, count) of each local neuron's destinations, from the SRAM."""
        p = self.pe_map(pe)
        r = range_bits(self.hw)
        words = self.sram[pe]["spike_addr"][: p.neuron_count].astype(np.uint64)
        mask = np.uint64((1 << r) - 1)
        first = (words >> np.uint64(self.hw.flit_bits)) & mask
        count = (words >> np.uint64(self.hw.flit_bits + r)) & mask
        return np.stack([first, count], axis=1).astype(np.int64)

    def layer_weights(self, layer: int) -> np.ndarray:
        """int64 [n_out, n_in] of a dense or conv layer (conv: the equivalent dense matrix, zeros where
        not connected), assembled from its PEs' weight SRAMs."""
        lay = self.layers[layer]
        if lay.kind == "conv":
            from yoso_backend.geometry import toeplitz

            return toeplitz(lay.window(), self.layer_kernel(layer))
        if lay.kind != "dense":
            raise ValueError(f"layer {layer} ({lay.kind}) has no weights")
        return np.concatenate([self.pe_weights(pe) for pe in lay.pes], axis=0)

    def layer_thresholds(self, layer: int) -> np.ndarray:
        return np.concatenate([self.pe_thresholds(pe) for pe in self.layers[layer].pes])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, YosoProgram):
            return NotImplemented
        if _manifest_core(self) != _manifest_core(other) or self.sram.keys() != other.sram.keys():
            return False
        return all(np.array_equal(self.sram[pe][n], other.sram[pe][n]) and
                   self.sram[pe][n].dtype == other.sram[pe][n].dtype
                   for pe in self.sram for n in SRAM_NAMES)


# --- SRAM images ------------------------------------------------------------------------------
def build_sram_images(hw: HardwareDescription, pe: PEMap, weights: np.ndarray, thresholds: np.ndarray,
                      ranges: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """SRAM images of one PE.

    weights     dense: int [neuron_count, fan_in] (stored input-major, address i * count + j);
                conv: int 1-D, the kernel words in address order; pool: empty
    thresholds  int [neuron_count]
    ranges      int [neuron_count, 2]: (first, count) of each neuron's destinations in `pe.dests`
                (default: all of them)
    """
    specs = sram_specs(hw)
    n, m = pe.neuron_count, pe.fan_in
    weights = np.asarray(weights, dtype=np.int64)
    if weights.ndim == 2:
        if weights.shape != (n, m):
            raise ValueError(f"PE {pe.pe}: weights {weights.shape} are not {n} x {m}")
        words = weights.T.reshape(-1)  # input-major: addr = i * n + j
    else:
        words = weights.reshape(-1)
    if words.size > hw.weights_per_pe or n > hw.neurons_per_pe:
        raise ValueError(f"PE {pe.pe}: {words.size} weights / {n} neurons do not fit")
    if words.size and np.abs(words).max() > hw.w_max:
        raise ValueError(f"PE {pe.pe}: weight outside +-{hw.w_max}")
    wimg = np.zeros(specs["weight"].depth, dtype=np.uint64)
    wimg[: words.size] = to_twos(words, hw.weight_bits)

    theta = np.asarray(thresholds, dtype=np.int64)
    if theta.size and (theta.min() < 1 or theta.max() > hw.theta_max):
        raise ValueError(f"PE {pe.pe}: threshold outside [1, {hw.theta_max}]")
    nimg = np.zeros(specs["neuron"].depth, dtype=np.uint64)
    nimg[:n] = (theta.astype(np.uint64) << np.uint64(NEURON_THETA_SHIFT)) | np.uint64(1 << NEURON_ENABLED_BIT)

    aimg = np.zeros(specs["accw"].depth, dtype=np.uint64)

    flit = hw.flit
    r = range_bits(hw)
    if ranges is None:
        ranges = np.tile(np.array([[0, len(pe.dests)]], np.int64), (n, 1))
    ranges = np.asarray(ranges, np.int64).reshape(n, 2)
    if n and (ranges.min() < 0 or (ranges[:, 0] + ranges[:, 1]).max() > len(pe.dests)):
        raise ValueError(f"PE {pe.pe}: a destination range lies outside its table of {len(pe.dests)}")
    simg = np.zeros(specs["spike_addr"].depth, dtype=np.uint64)
    simg[:n] = [flit.pack(0, 0, 0, pe.neuron_start + j, 0) for j in range(n)]
    simg[:n] |= (ranges[:, 0].astype(np.uint64) << np.uint64(hw.flit_bits)) | \
        (ranges[:, 1].astype(np.uint64) << np.uint64(hw.flit_bits + r))
    if hw.neurons_per_pe + len(pe.dests) > specs["spike_addr"].depth:
        raise ValueError(f"PE {pe.pe}: {len(pe.dests)} destinations do not fit the spike-address SRAM")
    for d, dest in enumerate(pe.dests):
        if dest == HOST:
            word = flit.pack(hw.host_x, hw.host_y, KIND_TO_HOST, 0, 0)
        else:
            x, y = hw.pe_xy(dest)
            word = flit.pack(x, y, KIND_SPIKE, 0, 0)
        simg[hw.neurons_per_pe + d] = word
    images = {"weight": wimg, "neuron": nimg, "accw": aimg, "spike_addr": simg}
    return {k: v.astype(specs[k].dtype) for k, v in images.items()}


# --- manifest ---------------------------------------------------------------------------------
def _float_json(x: float) -> float | None:
    return None if math.isinf(x) else float(x)  # null = +inf (strict JSON has no infinity)


def _manifest_core(prog: YosoProgram) -> dict:
    hw = prog.hw
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hardware": {"name": hw.name, "revision": hw.revision, "sha256": hw.sha256, "description": hw.to_dict()},
        "model": {"n_inputs": prog.n_inputs, "n_classes": prog.n_classes, "alpha": float(prog.alpha),
                  "silent_zero": bool(prog.silent_zero), "steps_per_alpha": prog.steps_per_alpha,
                  "output_mode": prog.output_mode, "early_stop": bool(prog.early_stop)},
        "layers": [{"index": l.index, "name": l.name, "kind": l.kind, "geometry": l.geometry,
                    "n_in": l.n_in, "n_out": l.n_out,
                    "threshold": float(l.threshold), "t_max": _float_json(l.t_max),
                    "window_steps": l.window_steps, "scale_mode": l.scale_mode,
                    "scales": [float(s) for s in l.scales], "threshold_int": [int(t) for t in l.threshold_int],
                    "pes": list(l.pes), "fires": bool(l.fires)} for l in prog.layers],
        "pes": [{"pe": p.pe, "x": p.x, "y": p.y, "layer": p.layer, "neuron_start": p.neuron_start,
                 "neuron_count": p.neuron_count, "fan_in": p.fan_in, "dests": list(p.dests)} for p in prog.pes],
        "input_dests": list(prog.input_dests),
        "input_ranges": _runs(prog.input_ranges),
        "sram": {k: v.to_json() for k, v in sram_specs(hw).items()},
        "meta": json.loads(json.dumps(prog.meta, allow_nan=False, default=_json_default)),
    }


def _runs(ranges: np.ndarray) -> list[list[int]]:
    """(first, count) per input, run-length coded: [[first, count, repeat], ...] (dense: one run)."""
    r = np.asarray(ranges, np.int64).reshape(-1, 2)
    out: list[list[int]] = []
    for f, c in r.tolist():
        if out and out[-1][0] == f and out[-1][1] == c:
            out[-1][2] += 1
        else:
            out.append([f, c, 1])
    return out


def _unruns(runs) -> np.ndarray:
    rows = [[int(f), int(c)] for f, c, n in runs for _ in range(int(n))]
    return np.asarray(rows, np.int64).reshape(-1, 2)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def pe_dir(pe: int) -> str:
    return f"pe/pe_{pe:02d}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def program_files(prog: YosoProgram) -> dict[str, bytes]:
    """Every file of model.yoso/ except manifest.json, by relative path."""
    files = {"program.bin": encode_program_bin(prog), "program.txt": render_program_text(prog).encode()}
    specs = sram_specs(prog.hw)
    for p in prog.pes:
        for name in SRAM_NAMES:
            img = np.ascontiguousarray(prog.sram[p.pe][name], dtype=specs[name].dtype)
            files[f"{pe_dir(p.pe)}/{name}.bin"] = img.tobytes()
    return files


def manifest_of(prog: YosoProgram, files: dict[str, bytes] | None = None) -> dict:
    files = program_files(prog) if files is None else files
    man = _manifest_core(prog)
    man["files"] = {path: {"sha256": _sha(data), "bytes": len(data)} for path, data in sorted(files.items())}
    return man


def save_program(prog: YosoProgram, out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Write model.yoso/ atomically: build it in a temporary sibling directory, then rename.

    Refuses to replace an existing `out_dir` unless `force`.
    """
    out = Path(out_dir)
    if out.exists() and not force:
        raise UserError(out, "already exists", "pass --force to overwrite, or choose another path")
    files = program_files(prog)
    man = manifest_of(prog, files)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    public_mode(tmp, directory=True)
    try:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        (tmp / "manifest.json").write_text(json.dumps(man, indent=1, sort_keys=True, allow_nan=False) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.rmdir(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_program(path: str | os.PathLike, verify: bool = True) -> YosoProgram:
    """Load model.yoso/; with `verify`, check every file's sha256 and program.bin against the manifest."""
    root = Path(path)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise UserError(root, "not a compiled YOSO model (no manifest.json)", "compile one with stdbp-compile")
    try:
        man = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(mpath, f"unreadable manifest: {err}", "recompile the model") from None
    if man.get("format") != FORMAT:
        raise UserError(mpath, f"format {man.get('format')!r} is not {FORMAT!r}", "recompile the model")
    if man.get("format_version") != FORMAT_VERSION:
        raise UserError(mpath, f"format_version {man.get('format_version')!r} unsupported (reads {FORMAT_VERSION})",
                        "recompile the model with this stdbp")
    try:
        hwd = man["hardware"]
        hw = from_dict(hwd["description"], where=f"{mpath} hardware.description")
        if hardware_hash(hw.raw) != hwd["sha256"]:
            raise UserError(mpath, "hardware description does not match its sha256", "recompile the model")
        files = {}
        for rel, info in man["files"].items():
            fpath = root / rel
            if not fpath.is_file():
                raise UserError(fpath, "missing file listed in the manifest", "recompile the model")
            data = fpath.read_bytes()
            if verify and (_sha(data) != info["sha256"] or len(data) != info["bytes"]):
                raise UserError(fpath, "sha256 does not match the manifest (corrupted or edited)", "recompile the model")
            files[rel] = data
        prog = _program_from_manifest(man, hw, files, root)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise UserError(mpath, f"malformed manifest or program: {type(err).__name__}: {err}", "recompile the model") from None
    if verify:
        expect = decode_program_bin(encode_program_bin(prog))
        if decode_program_bin(files["program.bin"]) != expect:
            raise UserError(root / "program.bin", "does not match manifest.json", "recompile the model")
        if files["program.txt"].decode() != render_program_text(prog):
            raise UserError(root / "program.txt", "does not match the program", "recompile the model")
    return prog


def _program_from_manifest(man: dict, hw: HardwareDescription, files: dict[str, bytes], root: Path) -> YosoProgram:
    mod = man["model"]
    layers = [LayerMap(index=int(l["index"]), name=str(l["name"]), n_in=int(l["n_in"]), n_out=int(l["n_out"]),
                       threshold=float(l["threshold"]),
                       t_max=math.inf if l["t_max"] is None else float(l["t_max"]),
                       window_steps=int(l["window_steps"]), scale_mode=str(l["scale_mode"]),
                       scales=np.asarray(l["scales"], dtype=np.float64),
                       threshold_int=np.asarray(l["threshold_int"], dtype=np.int64),
                       pes=[int(p) for p in l["pes"]], fires=bool(l["fires"]), kind=str(l.get("kind", "dense")),
                       geometry=None if l.get("geometry") is None else [int(v) for v in l["geometry"]])
              for l in man["layers"]]
    for l in layers:
        if l.kind not in LAYER_KINDS or (l.kind != "dense") != (l.geometry is not None and len(l.geometry) == 14):
            raise ValueError(f"layer {l.index}: kind {l.kind!r} with geometry {l.geometry}")
    pes = [PEMap(pe=int(p["pe"]), x=int(p["x"]), y=int(p["y"]), layer=int(p["layer"]),
                 neuron_start=int(p["neuron_start"]), neuron_count=int(p["neuron_count"]),
                 fan_in=int(p["fan_in"]), dests=[int(d) for d in p["dests"]]) for p in man["pes"]]
    specs = sram_specs(hw)
    sram: dict[int, dict[str, np.ndarray]] = {}
    for p in pes:
        sram[p.pe] = {}
        for name in SRAM_NAMES:
            rel = f"{pe_dir(p.pe)}/{name}.bin"
            if rel not in files:
                raise UserError(root / rel, "SRAM image missing from the manifest", "recompile the model")
            img = np.frombuffer(files[rel], dtype=specs[name].dtype).copy()
            if img.size != specs[name].depth:
                raise UserError(root / rel, f"{img.size} words, expected depth {specs[name].depth}", "recompile the model")
            sram[p.pe][name] = img
    return YosoProgram(hw=hw, n_inputs=int(mod["n_inputs"]), n_classes=int(mod["n_classes"]),
                       alpha=float(mod["alpha"]), silent_zero=bool(mod["silent_zero"]),
                       steps_per_alpha=int(mod["steps_per_alpha"]), output_mode=str(mod["output_mode"]),
                       early_stop=bool(mod["early_stop"]), layers=layers, pes=pes,
                       input_dests=[int(d) for d in man["input_dests"]], sram=sram, meta=man.get("meta", {}),
                       input_ranges=_unruns(man["input_ranges"]))


# program.bin / program.txt live in yoso_backend/program_codec.py (it imports this module's constants)
def encode_program_bin(prog: YosoProgram) -> bytes:
    from yoso_backend.program_codec import encode_program_bin as encode

    return encode(prog)


def decode_program_bin(data: bytes) -> dict[str, Any]:
    from yoso_backend.program_codec import decode_program_bin as decode

    return decode(data)


def render_program_text(prog: YosoProgram) -> str:
    from yoso_backend.program_codec import render_program_text as render

    return render(prog)
