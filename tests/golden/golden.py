"""Golden outputs of the shipped models on the bundled samples: any silent change of numbers fails CI.

For each shipped model the golden record holds
  - onnxruntime (float model, custom op): predictions and output spike times;
  - the compiled YOSO program: sha256 of program.bin, program.txt and every SRAM image;
  - the YOSO emulator: predictions, output fire steps, and the report's figures (cycles, latency,
    power, energy, breakdown), with a tolerance per key.
Arrays live in `<name>.npz`, everything else in `<name>.json`, both beside this file.

Regenerate only on purpose, and review the diff:  python -m tests.golden.regen  (or `make golden-regen`).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class GoldenCase:
    name: str
    model: Path
    sample: str   # runtime.cli sample name
    hw: str = "yoso-6x7"


CASES = [
    GoldenCase("mnist-fc800", REPO / "models" / "mnist-fc800" / "model.onnx", "sample"),
    # 784-1000-10 needs 51 PEs: the 8 x 7 variant
    GoldenCase("fashion-fc1000", REPO / "models" / "fashion-fc1000" / "model.onnx", "sample-fashion-mnist", "yoso-8x7"),
    # the CNN needs 88 PEs and a 14-bit index field: the extrapolated 16 x 16 mesh
    GoldenCase("mnist-cnn", REPO / "models" / "mnist-cnn" / "model.onnx", "sample", "yoso-16x16"),
]

# report figures and their relative tolerances: counts are exact, float figures allow round-off only
FIGURES = {
    "accuracy": 0.0,
    "cycles_per_frame.mean": 0.0,
    "cycles_per_frame.max": 0.0,
    "steps_per_frame": 0.0,
    "latency_ms.mean": 1e-9,
    "fps": 1e-9,
    "power_mw": 1e-9,
    "energy_uj_per_frame": 1e-9,
    "node_28nm.energy_uj_per_frame": 1e-9,
    "breakdown_uj_per_frame.*": 1e-9,
    "counters_per_frame.*": 0.0,
}
ORT_TIME_RTOL = 1e-5  # float32 custom-op kernel; the chip's integer results are compared exactly


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _figures(rep: dict) -> dict[str, float]:
    out = {}
    for key in FIGURES:
        if key.endswith(".*"):
            for sub, v in _get(rep, key[:-2]).items():
                out[f"{key[:-2]}.{sub}"] = float(v)
        else:
            out[key] = float(_get(rep, key))
    return out


def tolerance(key: str) -> float:
    if key in FIGURES:
        return FIGURES[key]
    return FIGURES[key.rsplit(".", 1)[0] + ".*"]


def build(case: GoldenCase) -> tuple[dict, dict[str, np.ndarray]]:
    """Run the whole path for one shipped model; returns (json record, arrays)."""
    from runtime.backends import get_backend
    from runtime.cli import load_data
    from runtime.compile_glue import compile_for_yoso
    from yoso_backend.artifact import load_program

    images, labels, _ = load_data(case.sample, "test", None, None)
    ort = get_backend("onnxruntime")
    ort.prepare(str(case.model), threads=1)
    o = ort.run(images)
    with tempfile.TemporaryDirectory() as tmp:
        yoso_dir, _ = compile_for_yoso(case.model, Path(tmp) / "model.yoso", hw=case.hw)
        manifest = json.loads((yoso_dir / "manifest.json").read_text())
        spa = load_program(yoso_dir).steps_per_alpha
        yoso = get_backend("yoso")
        yoso.prepare(str(yoso_dir))
        y = yoso.run(images)
        rep = yoso.report(labels)
    steps = np.where(np.isfinite(y.spike_times), np.rint(y.spike_times * spa), -1).astype(np.int64)
    record = {
        "model": case.model.name, "sample": case.sample, "hardware": case.hw, "images": int(len(labels)),
        "onnxruntime_accuracy": float((o.predictions == labels).mean()),
        "program_digests": {path: info["sha256"] for path, info in sorted(manifest["files"].items())},
        "hardware_sha256": manifest["hardware"]["sha256"],
        "yoso_figures": _figures(rep),
    }
    arrays = {"ort_predictions": o.predictions.astype(np.int64), "ort_spike_times": o.spike_times.astype(np.float32),
              "yoso_predictions": y.predictions.astype(np.int64), "yoso_fire_steps": steps}
    return record, arrays


def paths(case: GoldenCase, directory: Path = GOLDEN_DIR) -> tuple[Path, Path]:
    return directory / f"{case.name}.json", directory / f"{case.name}.npz"


def compare(case: GoldenCase, directory: Path = GOLDEN_DIR) -> list[str]:
    """Differences between a fresh run and the stored golden record, one line each (empty = equal)."""
    jpath, npath = paths(case, directory)
    want = json.loads(jpath.read_text())
    with np.load(npath) as z:
        want_arrays = {k: z[k] for k in z.files}
    got, arrays = build(case)
    diffs = []
    for key in ("images", "onnxruntime_accuracy", "hardware_sha256"):
        if got[key] != want[key]:
            diffs.append(f"{key}: golden {want[key]!r}, now {got[key]!r}")
    for path in sorted(set(want["program_digests"]) | set(got["program_digests"])):
        if want["program_digests"].get(path) != got["program_digests"].get(path):
            diffs.append(f"program file {path}: sha256 changed")
    for key in sorted(set(want["yoso_figures"]) | set(got["yoso_figures"])):
        a, b = want["yoso_figures"].get(key), got["yoso_figures"].get(key)
        if a is None or b is None or not math.isclose(a, b, rel_tol=tolerance(key), abs_tol=0.0):
            diffs.append(f"yoso figure {key}: golden {a}, now {b} (rel tol {tolerance(key)})")
    for key in ("ort_predictions", "yoso_predictions", "yoso_fire_steps"):
        bad = np.flatnonzero((want_arrays[key] != arrays[key]).reshape(len(arrays[key]), -1).any(axis=1))
        if bad.size:
            diffs.append(f"{key}: {bad.size} images differ (first: {bad[:5].tolist()})")
    wt, gt = want_arrays["ort_spike_times"], arrays["ort_spike_times"]
    if not np.array_equal(np.isinf(wt), np.isinf(gt)):
        diffs.append(f"ort_spike_times: silent outputs differ in {int((np.isinf(wt) != np.isinf(gt)).sum())} places")
    else:
        fin = np.isfinite(wt)
        rel = np.abs(wt[fin] - gt[fin]) / np.maximum(np.abs(wt[fin]), 1e-12)
        if rel.size and rel.max() > ORT_TIME_RTOL:
            diffs.append(f"ort_spike_times: max relative change {rel.max():.3g} > {ORT_TIME_RTOL}")
    return diffs


def regen(names: list[str] | None = None, cases: list[GoldenCase] = CASES,
          directory: Path = GOLDEN_DIR) -> list[Path]:
    from stdbp.fileio import atomic_write, atomic_write_json

    written = []
    for case in cases:
        if names and case.name not in names:
            continue
        if not case.model.is_file():
            print(f"skip {case.name}: {case.model} not shipped")
            continue
        record, arrays = build(case)
        jpath, npath = paths(case, directory)
        atomic_write_json(jpath, record)
        atomic_write(npath, lambda p: np.savez_compressed(open(p, "wb"), **arrays))
        written += [jpath, npath]
        print(f"wrote {jpath.name}, {npath.name}")
    return written
