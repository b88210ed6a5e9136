"""Expected synaptic events per frame, measured by the integer reference on sample frames.

The compile summary always gives the upper bound (every input and neuron spiking once); with a
sample (`--sample auto` finds models/sample/<dataset>-test-sample.npz from the model's
`stdbp.dataset` metadata) it also gives the measured mean per layer, on the compiled program.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "models" / "sample"


def find_sample(metadata: dict, spec: str) -> Path | None:
    """`auto` -> the bundled sample of the model's data set (if any); `none` -> None; else a path."""
    if spec == "none":
        return None
    if spec != "auto":
        return Path(spec)
    name = metadata.get("stdbp.dataset", "")
    path = SAMPLE_DIR / f"{name}-test-sample.npz"
    return path if name and path.is_file() else None


def measure_events(program, path: Path, limit: int = 200) -> dict:
    import numpy as np

    from stdbp.errors import UserError
    from yoso_backend.reference import run

    try:
        with np.load(path) as data:
            images = data["images"][:limit]
    except (OSError, KeyError, ValueError) as err:
        raise UserError(path, f"cannot read sample images ({err})", "pass an .npz with an `images` uint8 array") from None
    pixels = np.ascontiguousarray(images.reshape(len(images), -1))
    res = run(program, pixels)
    c = res.counters
    return {"sample": str(path), "frames": int(len(pixels)), "synaptic_events_mean": c["synaptic_events_mean"],
            "per_layer": c["per_layer"],
            "silent_frames": int((res.predictions < 0).sum())}
