"""The YOSO emulator: runs a compiled ``model.yoso/`` on a modelled mesh, bit-exact and cycle-counted.

    emu = Emulator.load("model.yoso/")             # or Emulator(YosoProgram)
    res = emu.run(pixels, record=True)             # uint8 [N, 784]
    res.fire[1]                                    # int [N, n_hidden] fire steps, -1 = never fired
    res.cycles, res.frame_counters, res.pe_counters, res.layer_counters, emu.init

It reads only the program: weights and thresholds are decoded from the PEs' weight and neuron SRAM
images, destinations from the PE records (the spike-address SRAM), timing parameters from the
program's hardware description. Data path and cycle model: `kernels.py` (spec section 4 semantics,
one global time base); the NoC: `noc.py`; energy: `energy.py`. Timing never feeds back into the
data (tested by changing every timing parameter).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from yoso_backend import counters as CN
from yoso_backend import kernels as KN
from stdbp.errors import UserError
from stdbp.threads import num_threads
from yoso_backend.artifact import HOST, LAYER_KINDS, YosoProgram, load_program
from yoso_backend.geometry import targets
from yoso_backend.hardware import KIND_SPIKE, KIND_TO_HOST
from yoso_backend.noc import N_PORTS, n_links, route_table, route_to_eject
from numba import njit


@dataclass(frozen=True)
class Timing:
    """Cycle-model parameters; ``from_hw`` reads them from the description ([router], [core])."""

    hop_cycles: int = 2          # router.cycles_per_hop (1-stage OpenSMART router)
    flits_per_packet: int = 1    # router.flits_per_packet
    fifo_depth: int = 8          # core.fifo_depth: router-interface FIFO, packets
    router_buffer: int = 4       # router.fifo_depth: flits per router input port
    load_cycles: int = 1         # core.load_cycles: decode a packet
    pipe_cycles: int = 3         # core.sram_read_latency + compute_cycles + store_cycles
    sweep_latency: int = 3       # pipeline fill of a step's sweep (same stages)
    lanes: int = 1               # core.lanes: neurons per cycle
    step_overhead: int = 1       # core.step_barrier_cycles: the global step barrier

    @classmethod
    def from_hw(cls, hw, **overrides) -> "Timing":
        v = hw.value
        pipe = v("core", "sram_read_latency") + v("core", "compute_cycles") + v("core", "store_cycles")
        t = cls(hop_cycles=v("router", "cycles_per_hop"), flits_per_packet=v("router", "flits_per_packet"),
                fifo_depth=v("core", "fifo_depth"), router_buffer=v("router", "fifo_depth"), load_cycles=v("core", "load_cycles"), pipe_cycles=pipe,
                sweep_latency=pipe, lanes=v("core", "lanes"))
        if "step_barrier_cycles" in hw.raw["core"]:
            t = replace(t, step_overhead=v("core", "step_barrier_cycles"))
        return replace(t, **overrides)


@dataclass
class EmuResult:
    fire: list[np.ndarray]            # per node layer (0 = inputs): int64 [N, n], -1 = silent
    out_potential: np.ndarray         # int64 [N, n_out]: output V at the end of the frame
    spike_times: np.ndarray           # float64 [N, n_out]: step * alpha / steps_per_alpha, +inf = silent
    predictions: np.ndarray           # int64 [N]
    cycles: np.ndarray                # int64 [N]: cycles per frame (inference phase)
    steps: np.ndarray                 # int64 [N]: time steps run
    frame_counters: np.ndarray        # int64 [N, K]: summed over PEs
    pe_counters: np.ndarray           # int64 [n_pe, K]: summed over frames
    layer_counters: np.ndarray        # int64 [L + 1, K]: row 0 = PEs holding no layer (host router)
    mode: str = "ttfs"
    early_stop: bool = False
    frame_pe_counters: np.ndarray | None = None   # record: int64 [N, n_pe, K]
    step_start: np.ndarray | None = None          # record: int64 [N, T + 2]: cycle each step began (then the end)
    v_trace: np.ndarray | None = None             # record: int64 [N, T + 1, n_out]: output V after each step's sweep

    def counters_dict(self) -> dict[str, int]:
        return CN.as_dict(self.frame_counters)


class Emulator:
    def __init__(self, program: YosoProgram, timing: Timing | None = None):
        self.program = program
        self.hw = program.hw
        self.timing = timing or Timing.from_hw(program.hw)
        self._flat = _flatten(program)
        self._init: dict | None = None

    @classmethod
    def load(cls, path: str | Path, **kw) -> "Emulator":
        return cls(load_program(path), **kw)

    @property
    def sizes(self) -> list[int]:
        return [self.program.n_inputs] + [lay.n_out for lay in self.program.layers]

    def cfg(self, softmax: bool, record: bool, early_stop: bool) -> np.ndarray:
        hw, t = self.hw, self.timing
        c = np.zeros(KN.N_CFG, np.int64)
        c[KN.CFG_A_LO], c[KN.CFG_A_HI] = hw.acc_min, hw.acc_max
        c[KN.CFG_V_LO], c[KN.CFG_V_HI] = hw.v_min, hw.v_max
        c[KN.CFG_WIDTH] = hw.mesh_width
        c[KN.CFG_NPE] = hw.n_pe
        c[KN.CFG_HOP] = t.hop_cycles
        c[KN.CFG_FLITS] = t.flits_per_packet
        c[KN.CFG_FIFO] = t.fifo_depth
        c[KN.CFG_DECODE] = t.load_cycles
        c[KN.CFG_PIPE] = t.pipe_cycles
        c[KN.CFG_SWEEP_LAT] = t.sweep_latency
        c[KN.CFG_STEP_OVH] = t.step_overhead
        c[KN.CFG_HOST] = hw.pe_id(hw.host_x, hw.host_y)
        c[KN.CFG_SOFTMAX] = int(softmax)
        c[KN.CFG_EARLY_STOP] = int(early_stop)
        c[KN.CFG_RECORD] = int(record)
        c[KN.CFG_LANES] = t.lanes
        c[KN.CFG_RBUF] = t.router_buffer
        return c

    def in_steps(self, pixels: np.ndarray) -> np.ndarray:
        """Spec section 3: ``k = ((255 - s) * spa + 127) // 255``; zero pixels silent with silent_zero."""
        from yoso_backend.reference import input_steps

        return np.ascontiguousarray(input_steps(self.program, pixels), dtype=np.int64)

    def run(self, pixels: np.ndarray, mode: str | None = None, record: bool = False,
            early_stop: bool | None = None, chunk: int = 256, threads: int | None = None,
            progress: Callable[[int], None] | None = None) -> EmuResult:
        """Run frames. ``mode``/``early_stop`` default to the program's; ``threads`` (default: the
        cores this process may use, or $STDBP_NUM_THREADS) split every chunk of frames;
        ``progress(n_done)`` after every chunk."""
        prog = self.program
        mode = mode or prog.output_mode
        if mode not in ("ttfs", "softmax"):
            raise ValueError(f"mode must be ttfs or softmax, not {mode!r}")
        early = prog.early_stop if early_stop is None else bool(early_stop)
        early = early and mode == "ttfs"
        fl = self._flat
        in_steps = self.in_steps(pixels)
        N = len(in_steps)
        n_nodes = int(fl["node_off"][-1])
        n_out = self.sizes[-1]
        T = int(fl["window"].max())
        n_pe = self.hw.n_pe
        cfg = self.cfg(mode == "softmax", record, early)
        fire = np.empty((N, n_nodes), np.int64)
        v_out = np.empty((N, n_out), np.int64)
        cycles = np.empty(N, np.int64)
        steps = np.empty(N, np.int64)
        frame_counters = np.empty((N, CN.K), np.int64)
        pe_counters = np.zeros((n_pe, CN.K), np.int64)
        rec_pe = np.empty((N, n_pe, CN.K), np.int64) if record else None
        step_start = np.full((N if record else 1, T + 2), -1, np.int64)
        v_trace = np.zeros((N if record else 1, T + 1 if record else 1, n_out), np.int64)
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            cnt = np.zeros((b - a, n_pe, CN.K), np.int64)
            args = (in_steps[a:b], cfg, fl["window"], fl["dense"], fl["kind"], fl["links"], fl["n_hops"], fl["node_off"],
                    fl["node_pe"], fl["pe_lo"], fl["pe_hi"], fl["pe_layer"], fl["layer_pe_off"], fl["layer_pes"],
                    fl["dests"], fl["in_dests"], fl["nd0"], fl["nd1"], fl["seg_base"], fl["seg_lo"], fl["seg_hi"],
                    fl["tgt_a"], fl["tgt_w"], fl["w_flat"], fl["w_off"], fl["theta"], fire[a:b],
                    v_out[a:b], cnt, cycles[a:b], steps[a:b], step_start[a:b] if record else step_start,
                    v_trace[a:b] if record else v_trace)
            _parallel(KN.run_frames, b - a, args, threads)
            frame_counters[a:b] = cnt.sum(axis=1)
            pe_counters += cnt.sum(axis=0)
            if record:
                rec_pe[a:b] = cnt
            if progress is not None:
                progress(b)
        off = fl["node_off"]
        fires = [fire[:, off[c]:off[c + 1]] for c in range(len(off) - 1)]
        layer_counters = np.zeros((len(prog.layers) + 1, CN.K), np.int64)
        np.add.at(layer_counters, np.maximum(fl["pe_layer"], 0), pe_counters)
        out = fires[-1]
        if mode == "softmax":
            pred = np.argmax(v_out, axis=1).astype(np.int64)
            spike_times = np.full(out.shape, np.inf)
        else:
            big = np.iinfo(np.int64).max
            s = np.where(out < 0, big, out)
            pred = np.where((out >= 0).any(axis=1), np.argmin(s, axis=1), -1).astype(np.int64)
            spike_times = np.where(out >= 0, out * (prog.alpha / prog.steps_per_alpha), np.inf)
        return EmuResult(fire=fires, out_potential=v_out, spike_times=spike_times, predictions=pred, cycles=cycles,
                         steps=steps, frame_counters=frame_counters, pe_counters=pe_counters,
                         layer_counters=layer_counters, mode=mode, early_stop=early, frame_pe_counters=rec_pe,
                         step_start=step_start if record else None, v_trace=v_trace if record else None)

    def packets(self, res: EmuResult, frame: int = 0) -> np.ndarray:
        """The spike flits of one frame, as the spec's words (section 5), in sending order per step:
        structured array (step, layer, src_pe, dst_pe, index, flit); the host is -1. Built from the
        fire steps and the spike-address SRAM: neuron j's word holds its flit template and the range
        (first, count) of its destinations, ``flit = spike_addr[N + first + d] | template_j | step``;
        the host's input flits carry the pixel index and use the host's table and ranges."""
        prog, hw = self.program, self.hw
        flit = hw.flit
        N = hw.neurons_per_pe
        tmask = np.uint64((1 << hw.flit_bits) - 1)
        end = int(res.steps[frame]) - 1  # last step run
        parts = []

        def block(step, layer, src, index, src_word, ranges, dests, dest_words):
            # every selected spike x its destinations, in table order
            count = ranges[:, 1]
            rep = np.repeat(np.arange(len(step)), count)
            pos = np.repeat(ranges[:, 0] - np.concatenate([[0], np.cumsum(count)[:-1]]), count) + np.arange(len(rep))
            parts.append((step[rep], np.full(len(rep), layer), np.full(len(rep), src),
                          np.asarray(dests, np.int64)[pos] if len(rep) else np.zeros(0, np.int64), index[rep],
                          (src_word[rep] & tmask) | step[rep].astype(np.uint64) | dest_words[pos]))

        for lay in prog.layers:
            c = lay.index + 1
            steps = res.fire[c - 1][frame]
            last = min(lay.window_steps, end)
            if c == 1:
                idx = np.nonzero((steps >= 0) & (steps <= last))[0]
                words = np.array([flit.pack(*hw.pe_xy(d), KIND_SPIKE, 0, 0) for d in prog.input_dests], np.uint64)
                block(steps[idx], 0, -1, idx, idx.astype(np.uint64) << np.uint64(flit.index_shift),
                      prog.input_ranges[idx], prog.input_dests, words)
                continue
            for p in prog.layers[c - 2].pes:
                self._pe_block(block, p, steps, last, c - 1, N)
        if res.mode == "ttfs":  # output spikes to the host
            out = res.fire[-1][frame]
            for p in prog.layers[-1].pes:
                self._pe_block(block, p, out, 1 << 62, len(prog.layers), N)
        dt = np.dtype([("step", "i8"), ("layer", "i8"), ("src_pe", "i8"), ("dst_pe", "i8"), ("index", "i8"),
                       ("flit", "u8")])
        arr = np.zeros(sum(len(x[0]) for x in parts), dt)
        for name, col in zip(dt.names, zip(*parts) if parts else [[]] * 6):
            if len(col):
                arr[name] = np.concatenate(col)
        return arr[np.lexsort((arr["index"], arr["layer"], arr["step"]))]  # stable: destination order kept

    def _pe_block(self, block, p: int, steps: np.ndarray, last: int, layer: int, N: int) -> None:
        prog = self.program
        pm = prog.pe_map(p)
        img = prog.sram[p]["spike_addr"].astype(np.uint64)
        loc = steps[pm.neuron_start: pm.neuron_start + pm.neuron_count]
        j = np.nonzero((loc >= 0) & (loc <= last))[0]
        block(loc[j].astype(np.int64), layer, p, pm.neuron_start + j, img[j], prog.pe_ranges(p)[j], pm.dests,
              img[N: N + len(pm.dests)])

    # ---- initialisation phase: the model download over the NoC ------------------------------------
    @property
    def init(self) -> dict:
        """The model download, counted apart from the frames: one configuration flit per SRAM word
        with non-reset content (weights m*n, neuron words n, spike-address words n + destinations;
        the A SRAM resets to 0), injected by the host one per cycle and routed X-Y to each PE."""
        if self._init is None:
            prog, hw = self.program, self.hw
            pes = np.array([p.pe for p in prog.pes], np.int64)
            words = np.array([[prog.pe_weight_words(p.pe), p.neuron_count, 0, p.neuron_count + len(p.dests)]
                              for p in prog.pes], np.int64).reshape(-1, 4)
            cycles, hops, flits = _download(pes, words.sum(axis=1), hw.mesh_width, hw.n_pe,
                                            hw.pe_id(hw.host_x, hw.host_y), self.timing.hop_cycles)
            self._init = {"cycles": int(cycles), "flits": int(flits), "flit_hops": int(hops),
                          "sram_writes": {"w": int(words[:, 0].sum()), "v": int(words[:, 1].sum()),
                                          "a": 0, "s": int(words[:, 3].sum())}}
        return self._init


_POOL: dict[int, ThreadPoolExecutor] = {}


def _parallel(kernel, n: int, args: tuple, threads: int | None) -> None:
    """kernel(lo, hi, *args) over ``threads`` contiguous frame ranges (the kernel releases the GIL)."""
    k = max(1, min(threads or num_threads(), n))
    if k == 1:
        kernel(0, n, *args)
        return
    pool = _POOL.setdefault(k, ThreadPoolExecutor(max_workers=k, thread_name_prefix="yoso-emu"))
    futures = [pool.submit(kernel, n * i // k, n * (i + 1) // k, *args) for i in range(k)]
    for f in futures:
        f.result()


@njit(cache=True)
def _download(pes, flits_per_pe, width, n_pe, host, hop):
    link_free = np.zeros(n_links(n_pe), np.int64)
    link_flits = np.zeros(n_links(n_pe), np.int64)
    t_end = 0
    hops_total = 0
    n = 0
    for q in range(pes.shape[0]):
        for _ in range(flits_per_pe[q]):
            t, h, _s = route_to_eject(host, pes[q], 0, width, n_pe, hop, 1, link_free, link_flits,
                                      n_pe * (N_PORTS + 1))
            t_end = max(t_end, t + hop)
            hops_total += h
            n += 1
    return t_end, hops_total, n


def sram_dests(prog: YosoProgram, p) -> list[int]:
    """Destinations of PE ``p`` as its spike-address SRAM holds them (words N + d: x, y, kind);
    they must agree with the program record (else the artifact is inconsistent)."""
    hw = prog.hw
    words = prog.sram[p.pe]["spike_addr"][hw.neurons_per_pe: hw.neurons_per_pe + len(p.dests)]
    out = []
    for w in words:
        f = hw.flit.unpack(int(w))
        out.append(HOST if f["kind"] == KIND_TO_HOST else hw.pe_id(f["x"], f["y"]))
    if out != list(p.dests):
        raise UserError(f"PE {p.pe} spike-address SRAM", f"destinations {out} differ from the program's {p.dests}",
                        "recompile the model")
    return out


def _flatten(prog: YosoProgram) -> dict[str, np.ndarray]:
    """The flat arrays the kernel takes. Nodes: inputs, then layer by layer; compute layer c = index + 1."""
    hw = prog.hw
    L = len(prog.layers)
    sizes = [prog.n_inputs] + [lay.n_out for lay in prog.layers]
    node_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_nodes = int(node_off[-1])
    n_pe = hw.n_pe
    host = hw.pe_id(hw.host_x, hw.host_y)
    node_pe = np.full(n_nodes, host, np.int64)
    pe_lo = np.zeros(n_pe, np.int64)
    pe_hi = np.zeros(n_pe, np.int64)
    pe_layer = np.zeros(n_pe, np.int64)  # 0 = no layer
    dest_lists: list[list[int]] = [[] for _ in range(n_pe)]
    for p in prog.pes:
        c = p.layer + 1
        lo = node_off[c] + p.neuron_start
        pe_lo[p.pe], pe_hi[p.pe], pe_layer[p.pe] = lo, lo + p.neuron_count, c
        node_pe[lo:lo + p.neuron_count] = p.pe
        dest_lists[p.pe] = [-1 if d == HOST else d for d in sram_dests(prog, p)]
    layer_pes = [p for lay in prog.layers for p in lay.pes]
    layer_pe_off = np.zeros(L + 2, np.int64)
    layer_pe_off[2:] = np.cumsum([len(lay.pes) for lay in prog.layers])
    dest_off = np.concatenate([[0], np.cumsum([len(d) for d in dest_lists])]).astype(np.int64)
    dests = np.array([d for ds in dest_lists for d in ds], np.int64)
    # per node: its destinations dests[nd0:nd1] (inputs: in_dests), from the spike-address SRAM ranges
    nd0 = np.zeros(n_nodes, np.int64)
    nd1 = np.zeros(n_nodes, np.int64)
    nd0[:prog.n_inputs] = prog.input_ranges[:, 0]
    nd1[:prog.n_inputs] = prog.input_ranges[:, 0] + prog.input_ranges[:, 1]
    for p in prog.pes:
        r = prog.pe_ranges(p.pe)
        lo = node_off[p.layer + 1] + p.neuron_start
        if len(r) and (r[:, 0] + r[:, 1]).max() > len(p.dests):
            raise UserError(f"PE {p.pe} spike-address SRAM", "a destination range lies outside its table",
                            "recompile the model")
        nd0[lo:lo + p.neuron_count] = dest_off[p.pe] + r[:, 0]
        nd1[lo:lo + p.neuron_count] = dest_off[p.pe] + r[:, 0] + r[:, 1]
    kind = np.zeros(L + 1, np.int64)
    for lay in prog.layers:
        kind[lay.index + 1] = LAYER_KINDS.index(lay.kind)
    dense_layers = [l for l in range(L) if prog.layers[l].kind == "dense"]
    w_t = [np.ascontiguousarray(prog.layer_weights(l).T, dtype=np.int64).ravel() if l in dense_layers
           else np.zeros(0, np.int64) for l in range(L)]
    w_off = np.concatenate([[0], np.cumsum([w.size for w in w_t])]).astype(np.int64)
    theta = np.concatenate([prog.layer_thresholds(l) for l in range(L)]).astype(np.int64)
    window = np.array([0] + [lay.window_steps for lay in prog.layers], np.int64)
    in_dests = np.array(prog.input_dests, np.int64)
    seg = _segments(prog, node_off, nd0, nd1, dests, in_dests)
    # dense[c] = 1 when every spike into dense layer c goes to each of its PEs exactly once (the kernel then
    # updates the whole layer's A row in one loop; same per-neuron order, so the same bits)
    dense = np.zeros(L + 1, np.int64)
    for c in range(1, L + 1):
        if prog.layers[c - 1].kind != "dense":
            continue
        want = np.array(sorted(prog.layers[c - 1].pes), np.int64)
        lo, hi = node_off[c - 1], node_off[c]
        table = in_dests if c == 1 else dests
        dense[c] = int(all(np.array_equal(np.sort(table[a:b]), want) for a, b in
                           {(int(a), int(b)) for a, b in zip(nd0[lo:hi], nd1[lo:hi])}))
    links, n_hops = route_table(hw.mesh_width, n_pe)
    return dict(window=window, dense=dense, kind=kind, links=links, n_hops=n_hops, node_off=node_off,
                node_pe=node_pe, pe_lo=pe_lo, pe_hi=pe_hi, pe_layer=pe_layer, layer_pe_off=layer_pe_off,
                layer_pes=np.array(layer_pes, np.int64), dests=dests, in_dests=in_dests, nd0=nd0, nd1=nd1, **seg,
                w_flat=np.concatenate(w_t), w_off=w_off, theta=theta)


def _segments(prog: YosoProgram, node_off, nd0, nd1, dests, in_dests) -> dict[str, np.ndarray]:
    """Targets of every packet into a conv or pool layer, from the geometry and the PEs' kernels.

    For input i of layer c (node n) the targets (ascending) split into runs by PE; run d must be the
    PE of destination d of n (else the spike-address SRAM and the geometry disagree)."""
    n_nodes = int(node_off[-1])
    seg_base = np.full(n_nodes, -1, np.int64)
    parts_lo, parts_hi, parts_a, parts_w = [], [], [], []
    n_seg = n_tgt = 0
    for lay in prog.layers:
        if lay.kind == "dense":
            continue
        c = lay.index + 1
        g = lay.window()
        off, tgt, wpos = targets(g)
        starts = np.array([prog.pe_map(p).neuron_start for p in lay.pes], np.int64)
        pe_idx = np.searchsorted(starts, tgt, side="right") - 1
        inp = np.repeat(np.arange(g.n_in), np.diff(off))
        new = np.ones(len(tgt), bool)
        new[1:] = (inp[1:] != inp[:-1]) | (pe_idx[1:] != pe_idx[:-1])
        run_start = np.nonzero(new)[0]
        run_end = np.append(run_start[1:], len(tgt))
        run_pe = np.array(lay.pes, np.int64)[pe_idx[run_start]]
        runs_per_input = np.bincount(inp[run_start], minlength=g.n_in)
        nodes = np.arange(node_off[c - 1], node_off[c])
        table = in_dests if c == 1 else dests
        want = np.concatenate([table[a:b] for a, b in zip(nd0[nodes], nd1[nodes])]) if len(nodes) else run_pe
        if not (np.array_equal(nd1[nodes] - nd0[nodes], runs_per_input) and np.array_equal(want, run_pe)):
            raise UserError(f"layer {lay.index} ({lay.name})", "the destination ranges of its inputs do not match "
                            "the PEs that hold their targets", "recompile the model")
        seg_base[nodes] = n_seg + np.concatenate([[0], np.cumsum(runs_per_input)[:-1]])
        parts_lo.append(n_tgt + run_start)
        parts_hi.append(n_tgt + run_end)
        parts_a.append(node_off[c] - prog.n_inputs + tgt)  # A index of the target neuron
        if lay.kind == "conv":  # each target's weight from its own PE's copy of the kernel
            kflat = [prog.pe_kernel(p).reshape(-1) for p in lay.pes]
            koff = np.concatenate([[0], np.cumsum([k.size for k in kflat])[:-1]])
            first_ch = np.array([prog.pe_channels(p)[0] for p in lay.pes], np.int64)
            parts_w.append(np.concatenate(kflat)[koff[pe_idx] + wpos - first_ch[pe_idx] * g.kernel_words])
        else:
            parts_w.append(np.zeros(len(tgt), np.int64))
        n_seg += len(run_start)
        n_tgt += len(tgt)

    def cat(xs):
        return np.ascontiguousarray(np.concatenate(xs), np.int64) if xs else np.zeros(1, np.int64)

    return dict(seg_base=seg_base, seg_lo=cat(parts_lo), seg_hi=cat(parts_hi), tgt_a=cat(parts_a), tgt_w=cat(parts_w))
