"""NIR export and import of ai.stdbp networks (`stdbp export --format nir`, `stdbp import`).

The exact mapping ("exact" variant), node by node (NIR's equations, no time steps):

- ``RelPspDense`` W, theta  ->  ``Linear(W)`` -> ``I(r=1)`` -> ``IF(r=1, v_threshold=theta, v_reset=-1e30)``.
  The integrator holds the slope: ``I(t) = sum_i W[j, i] H(t - t_i)``, and the IF neuron
  integrates it, ``dv/dt = I``, so ``v(t) = sum_i W[j, i] max(0, t - t_i)``: the ReL-PSP
  membrane exactly. It spikes when v crosses theta; the reset to -1e30 is the one-spike rule
  (no input can bring v back within any window).
- ``RelPspConv2d`` K, strides, pads  ->  ``Conv2d(K, stride, padding, bias=0)`` -> ``I`` -> ``IF`` (the same).
- ``SpikeMinPool`` kernel, strides, pads  ->  ``SumPool2d`` -> ``IF(r=1, v_threshold=0.5, v_reset=-1e30)``:
  the first input spike of the window adds 1 to v at once (a Dirac input into ``dv/dt = r I``)
  and fires it; later ones cannot (reset). Padding never spikes in either op.
- ``Flatten`` -> ``Flatten``.

What NIR has no primitive for goes into the graph's metadata (``stdbp.*`` keys): the input
encoding (pixel -> spike time: ``t = alpha (255 - x) / 255``, silent zero pixels), each layer's
window ``t_max`` (a neuron may fire only at ``t <= t_max``) and the readout (the class is the
output neuron that spikes first). NIR says backends must not depend on metadata; a consumer that
ignores it still runs the network, with late spikes allowed (docs/interop.md measures the effect).
Asymmetric padding has no NIR form and is refused. Import accepts exactly these node patterns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from stdbp.errors import UserError

RESET = -1e30          # v_reset of the one-spike rule
POOL_THRESHOLD = 0.5   # one input spike (v += 1) fires a pooled neuron
META = "stdbp"


def onnx_layers(model) -> tuple[list, list[int], dict]:
    """An ai.stdbp ModelProto -> (graph.Layer list, input shape without batch, metadata dict)."""
    import onnx
    from onnx import numpy_helper

    from stdbp.export.graph import Layer

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Flatten":
            layers.append(Layer("Flatten"))
            continue
        attrs = {k: ([int(x) for x in v] if isinstance(v, (list, tuple)) else v) for k, v in attrs.items()}
        weight = next((inits[i] for i in node.input[1:] if i in inits), None)
        layers.append(Layer(node.op_type, attrs, weight))
    dims = model.graph.input[0].type.tensor_type.shape.dim[1:]
    meta = {p.key: p.value for p in model.metadata_props}
    return layers, [int(d.dim_value) for d in dims], meta


def _sym_pad(pads, where: str) -> tuple[int, int]:
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):
        raise UserError(where, f"asymmetric pads {list(pads)} have no NIR form (NIR pads both sides alike)",
                        "re-train with symmetric padding, or keep this network in ONNX")
    return int(top), int(left)


def _spiking(shape, threshold: float) -> "object":
    import nir

    ones = np.ones(shape, np.float32)
    return nir.IF(r=ones, v_threshold=ones * np.float32(threshold), v_reset=ones * np.float32(RESET))


SNNTORCH_DT = 1e-4      # the step snnTorch's NIR importer assumes (seconds)
SNNTORCH_TAU = 1e4      # "no leak": exp(-dt / tau) is 1 in float32


def _snntorch_neuron(shape, threshold: float, steps_per_alpha: int, alpha: float):
    """snnTorch variant of Linear -> I -> IF: one CubaLIF without leak, in snnTorch's time base.

    snnTorch imports no I node, fixes dt = 1e-4 s per step and maps CubaLIF to
    ``syn = a syn + x``, ``mem = b mem + syn`` with ``a = 1 - dt / tau_syn``, ``b = 1 - dt / tau_mem``
    (requiring ``r = tau_mem / dt``; the input is scaled by ``w_in dt / tau_syn``). With
    tau = 1e4 s both factors are 1 in float32 and ``w_in = tau_syn / dt`` makes the input scale 1,
    so one step of 1e-4 s stands for ``h = alpha / steps_per_alpha`` of stdbp time and
    ``mem_n = sum_i w_i (n - k_i + 1)`` is the ReL-PSP membrane in units of h: the threshold is
    ``theta / h``. snnTorch resets to zero (it ignores v_reset), so a neuron can fire again."""
    import nir

    ones = np.ones(shape, np.float32)
    tau = ones * np.float32(SNNTORCH_TAU)
    h = alpha / steps_per_alpha
    return nir.CubaLIF(tau_syn=tau, tau_mem=tau, r=tau / np.float32(SNNTORCH_DT), v_leak=ones * 0,
                       v_threshold=ones * np.float32(threshold / h), v_reset=ones * np.float32(RESET),
                       w_in=tau / np.float32(SNNTORCH_DT))


def to_nir(model, where: str = "model", variant: str = "exact", steps_per_alpha: int = 255):
    """ai.stdbp ModelProto -> nir.NIRGraph: the exact variant above, or "snntorch" (dense and conv
    layers as leak-free CubaLIF neurons in snnTorch's conventions: `_snntorch_neuron`)."""
    import nir

    if variant not in ("exact", "snntorch"):
        raise UserError("--variant", f"{variant!r} is not a variant", "use exact or snntorch")

    layers, in_shape, meta = onnx_layers(model)
    if not layers or layers[0].op != "SpikeEncode":
        raise UserError(where, "the graph does not start with SpikeEncode", "export a model written by stdbp")
    nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    chain = ["input"]
    shape = list(in_shape)
    windows = []
    for k, lay in enumerate(layers[1:], start=1):
        name = f"{k}_{lay.op}"
        if lay.op == "Flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
            shape = [int(np.prod(shape))]
            chain.append(name)
            continue
        if lay.op == "RelPspDense":
            w = np.asarray(lay.weight, np.float32)
            nodes[f"{name}.linear"] = nir.Linear(weight=w)
            shape = [w.shape[0]]
        elif lay.op == "RelPspConv2d":
            w = np.asarray(lay.weight, np.float32)
            pad = _sym_pad(lay.attrs["pads"], f"{where}: layer {k} ({lay.op})")
            nodes[f"{name}.linear"] = nir.Conv2d(input_shape=tuple(shape[1:]), weight=w,
                                                 stride=tuple(lay.attrs["strides"]), padding=pad, dilation=1,
                                                 groups=1, bias=np.zeros(w.shape[0], np.float32))
            kh, kw = w.shape[2:]
            shape = [w.shape[0]] + [(shape[1 + d] + 2 * pad[d] - (kh, kw)[d]) // lay.attrs["strides"][d] + 1
                                    for d in range(2)]
        elif lay.op == "SpikeMinPool":
            if variant == "snntorch":
                raise UserError(where, f"layer {k} (SpikeMinPool): snnTorch imports no SumPool2d, so a min-pool "
                                "cannot be expressed for it", "use --variant exact (SumPool2d -> IF), or a dense network")
            pad = _sym_pad(lay.attrs["pads"], f"{where}: layer {k} ({lay.op})")
            ks, st = lay.attrs["kernel_shape"], lay.attrs["strides"]
            nodes[f"{name}.linear"] = nir.SumPool2d(kernel_size=np.array(ks), stride=np.array(st),
                                                    padding=np.array(pad))
            shape = [shape[0]] + [(shape[1 + d] + 2 * pad[d] - ks[d]) // st[d] + 1 for d in range(2)]
            nodes[f"{name}.fire"] = _spiking(shape, POOL_THRESHOLD)
            chain += [f"{name}.linear", f"{name}.fire"]
            windows.append(None)
            continue
        else:
            raise UserError(where, f"layer {k}: op {lay.op} has no NIR mapping", "export dense, conv and min-pool layers")
        if variant == "snntorch":
            nodes[f"{name}.fire"] = _snntorch_neuron(shape, float(lay.attrs["threshold"]), steps_per_alpha,
                                                     float(layers[0].attrs.get("alpha", 1.0)))
            chain += [f"{name}.linear", f"{name}.fire"]
        else:
            nodes[f"{name}.slope"] = nir.I(r=np.ones(shape, np.float32))
            nodes[f"{name}.fire"] = _spiking(shape, float(lay.attrs["threshold"]))
            chain += [f"{name}.linear", f"{name}.slope", f"{name}.fire"]
        windows.append(float(lay.attrs["t_max"]))
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    chain.append("output")
    enc = layers[0].attrs
    metadata = {f"{META}.encoding": json.dumps({"alpha": float(enc.get("alpha", 1.0)),
                                                 "silent_zero": int(enc.get("silent_zero", 0)),
                                                 "rule": "t = alpha * (255 - x) / 255; x == 0 never spikes "
                                                         "if silent_zero"}),
                f"{META}.t_max": json.dumps([w if w is None or math.isfinite(w) else "inf" for w in windows]),
                f"{META}.readout": "first-spike: the class is the output neuron that spikes first",
                f"{META}.variant": variant,
                **({f"{META}.time_base": json.dumps({"seconds_per_step": SNNTORCH_DT,
                                                     "alpha_per_step": float(enc.get("alpha", 1.0)) / steps_per_alpha})}
                   if variant == "snntorch" else {}),
                **{f"{META}.onnx.{k.removeprefix('stdbp.')}": v for k, v in meta.items()}}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])), metadata=metadata)


def _chain(graph, where: str) -> list[str]:
    """The node names from input to output (the exported graphs are chains)."""
    nxt = {}
    for a, b in graph.edges:
        if a in nxt:
            raise UserError(where, f"node {a!r} has more than one successor", "import a chain of layers")
        nxt[a] = b
    start = [n for n, node in graph.nodes.items() if type(node).__name__ == "Input"]
    if len(start) != 1:
        raise UserError(where, f"{len(start)} Input nodes", "import a graph with one Input")
    out, cur = [], start[0]
    while cur in nxt:
        cur = nxt[cur]
        out.append(cur)
    return out


def _uniform(arr, where: str, what: str) -> float:
    vals = np.unique(np.asarray(arr, np.float64))
    if vals.size != 1:
        raise UserError(where, f"{what} differs between neurons", "stdbp layers have one value per layer")
    return float(vals[0])


def from_nir(graph, where: str = "graph"):
    """nir.NIRGraph (the exact variant) -> ai.stdbp ModelProto; UserError naming an unsupported node."""
    from stdbp.export.graph import Layer, build_model

    meta = graph.metadata or {}
    if meta.get(f"{META}.variant", "exact") != "exact":
        raise UserError(where, f"a {meta[f'{META}.variant']!r} variant graph (made for one consumer, not exact)",
                        "import the exact variant (`stdbp export --format nir`, the default)")
    try:
        enc = json.loads(meta[f"{META}.encoding"])
        windows = [math.inf if w == "inf" else w for w in json.loads(meta[f"{META}.t_max"])]
    except (KeyError, ValueError, TypeError):
        raise UserError(where, "no stdbp.encoding / stdbp.t_max metadata", "import a graph written by "
                        "`stdbp export --format nir` (the input coding and windows are not NIR nodes)") from None
    names = _chain(graph, where)
    inp = next(n for n in graph.nodes.values() if type(n).__name__ == "Input")
    in_shape = [int(d) for d in np.asarray(inp.input_type["input"]).ravel()]
    layers = [Layer("SpikeEncode", {"alpha": float(enc["alpha"]), "silent_zero": int(enc["silent_zero"])})]
    expect = {"Linear": ("I", "IF"), "Conv2d": ("I", "IF"), "SumPool2d": ("IF",)}
    i = 0
    while i < len(names):
        node, kind = graph.nodes[names[i]], type(graph.nodes[names[i]]).__name__
        here = f"{where}: node {names[i]!r} ({kind})"
        if kind == "Output":
            break
        if kind == "Flatten":
            layers.append(Layer("Flatten"))
            i += 1
            continue
        if kind not in expect:
            raise UserError(here, f"{kind} is not supported", "import Linear/Conv2d -> I -> IF, SumPool2d -> IF "
                            "and Flatten nodes (the graphs `stdbp export --format nir` writes)")
        follow = [type(graph.nodes[n]).__name__ for n in names[i + 1:i + 1 + len(expect[kind])]]
        if tuple(follow) != expect[kind]:
            raise UserError(here, f"followed by {' -> '.join(follow) or 'nothing'}, expected "
                            f"{' -> '.join(expect[kind])}", "import the pattern stdbp exports")
        fire = graph.nodes[names[i + len(expect[kind])]]
        if not np.all(np.asarray(fire.v_reset) <= RESET / 2):
            raise UserError(here, "its IF neurons reset above -1e30: they could fire twice",
                            "stdbp neurons fire once: v_reset must be -1e30")
        if kind != "SumPool2d":
            slope = graph.nodes[names[i + 1]]
            if _uniform(slope.r, here, "I.r") != 1.0 or _uniform(fire.r, here, "IF.r") != 1.0:
                raise UserError(here, "r != 1", "stdbp layers have r = 1 (the weights hold the scale)")
            if not windows:
                raise UserError(where, "more spiking layers than stdbp.t_max entries", "re-export the graph")
            attrs = {"threshold": _uniform(fire.v_threshold, here, "v_threshold"), "t_max": float(windows.pop(0))}
            if kind == "Linear":
                layers.append(Layer("RelPspDense", attrs, np.asarray(node.weight, np.float32)))
            else:
                if np.any(np.asarray(node.bias) != 0) or np.any(np.asarray(node.dilation) != 1) or node.groups != 1:
                    raise UserError(here, "bias, dilation or groups", "stdbp conv layers have none")
                if isinstance(node.padding, str):
                    raise UserError(here, f"padding {node.padding!r}", "use integer padding")
                ph, pw = np.broadcast_to(np.asarray(node.padding), (2,))
                sh, sw = np.broadcast_to(np.asarray(node.stride), (2,))
                w = np.asarray(node.weight, np.float32)
                layers.append(Layer("RelPspConv2d", {**attrs, "kernel_shape": list(w.shape[2:]),
                                                     "strides": [int(sh), int(sw)],
                                                     "pads": [int(ph), int(pw), int(ph), int(pw)]}, w))
        else:
            if windows and windows[0] is None:
                windows.pop(0)
            ph, pw = np.broadcast_to(np.asarray(node.padding), (2,))
            layers.append(Layer("SpikeMinPool", {"kernel_shape": [int(x) for x in np.ravel(node.kernel_size)],
                                                 "strides": [int(x) for x in np.ravel(node.stride)],
                                                 "pads": [int(ph), int(pw), int(ph), int(pw)]}))
        i += 1 + len(expect[kind])
    onnx_meta = {f"stdbp.{k.removeprefix(META + '.onnx.')}": str(v) for k, v in meta.items()
                 if k.startswith(f"{META}.onnx.")}
    try:
        return build_model(layers, in_shape, meta=onnx_meta or None, name="stdbp-from-nir")
    except ValueError as exc:
        raise UserError(where, f"inconsistent shapes: {exc}", "import a graph stdbp exported") from None


def read_graph(path: Path):
    import nir

    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such file", "pass a .nir file written by `stdbp export --format nir`")
    try:
        return nir.read(path)
    except Exception as exc:  # h5py OSError, KeyError of a missing node type, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(path, f"not a readable NIR file ({type(exc).__name__}: {first})",
                        "pass a .nir (HDF5) file written by nir.write") from None


def write_graph(graph, path: Path) -> None:
    """nir.write to a temporary file, then an atomic rename (nothing half-written is left)."""
    import os
    import tempfile

    import nir

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
