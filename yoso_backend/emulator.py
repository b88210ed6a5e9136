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
from yoso_backend.artifact import HOST, YosoProgram, load_program
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
            args = (in_steps[a:b], cfg, fl["window"], fl["dense"], fl["links"], fl["n_hops"], fl["node_off"],
                    fl["node_pe"], fl["pe_lo"], fl["pe_hi"], fl["pe_layer"], fl["layer_pe_off"], fl["layer_pes"],
                    fl["dest_off"], fl["dests"], fl["in_dests"], fl["w_flat"], fl["w_off"], fl["theta"], fire[a:b],
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
        """The spike flits of one frame, as the spec's 32-bit words (section 5), in sending order
        per step: structured array (step, layer, src_pe, dst_pe, index, flit); the host is -1.
        Built from the fire steps and the spike-address SRAM templates
        (``spike_addr[N + d] | spike_addr[j] | step``); the host's input flits carry the pixel index."""
        prog, hw = self.program, self.hw
        flit = hw.flit
        N = hw.neurons_per_pe
        end = int(res.steps[frame]) - 1  # last step run
        parts = []

        def block(step, layer, src, index, src_word, dests, dest_words):
            # every selected spike x every destination, destinations in sending order
            nd = len(dests)
            parts.append((np.repeat(step, nd), np.full(len(step) * nd, layer), np.full(len(step) * nd, src),
                          np.tile(np.asarray(dests, np.int64), len(step)), np.repeat(index, nd),
                          np.repeat(src_word | step.astype(np.uint64), nd) | np.tile(dest_words, len(step))))

        for lay in prog.layers:
            c = lay.index + 1
            steps = res.fire[c - 1][frame]
            last = min(lay.window_steps, end)
            if c == 1:
                idx = np.nonzero((steps >= 0) & (steps <= last))[0]
                words = np.array([flit.pack(*hw.pe_xy(d), KIND_SPIKE, 0, 0) for d in prog.input_dests], np.uint64)
                block(steps[idx], 0, -1, idx, idx.astype(np.uint64) << np.uint64(flit.index_shift),
                      prog.input_dests, words)
                continue
            for p in prog.layers[c - 2].pes:
                pm = prog.pe_map(p)
                img = prog.sram[p]["spike_addr"].astype(np.uint64)
                loc = steps[pm.neuron_start: pm.neuron_start + pm.neuron_count]
                j = np.nonzero((loc >= 0) & (loc <= last))[0]
                block(loc[j], c - 1, p, pm.neuron_start + j, img[j], pm.dests, img[N: N + len(pm.dests)])
        if res.mode == "ttfs":  # output spikes to the host
            out = res.fire[-1][frame]
            for p in prog.layers[-1].pes:
                pm = prog.pe_map(p)
                img = prog.sram[p]["spike_addr"].astype(np.uint64)
                loc = out[pm.neuron_start: pm.neuron_start + pm.neuron_count]
                j = np.nonzero(loc >= 0)[0]
                block(loc[j], len(prog.layers), p, pm.neuron_start + j, img[j], pm.dests, img[N: N + len(pm.dests)])
        dt = np.dtype([("step", "i8"), ("layer", "i8"), ("src_pe", "i8"), ("dst_pe", "i8"), ("index", "i8"),
                       ("flit", "u4")])
        arr = np.zeros(sum(len(x[0]) for x in parts), dt)
        for name, col in zip(dt.names, zip(*parts) if parts else [[]] * 6):
            if len(col):
                arr[name] = np.concatenate(col)
        return arr[np.lexsort((arr["index"], arr["layer"], arr["step"]))]  # stable: destination order kept

    # ---- initialisation phase: the model download over the NoC ------------------------------------
    @property
    def init(self) -> dict:
        """The model download, counted apart from the frames: one configuration flit per SRAM word
        with non-reset content (weights m*n, neuron words n, spike-address words n + destinations;
        the A SRAM resets to 0), injected by the host one per cycle and routed X-Y to each PE."""
        if self._init is None:
            prog, hw = self.program, self.hw
            pes = np.array([p.pe for p in prog.pes], np.int64)
            words = np.array([[p.fan_in * p.neuron_count, p.neuron_count, 0, p.neuron_count + len(p.dests)]
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
    n_pe = hw.n_pe
    host = hw.pe_id(hw.host_x, hw.host_y)
    node_pe = np.full(int(node_off[-1]), host, np.int64)
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
    w_t = [np.ascontiguousarray(prog.layer_weights(l).T, dtype=np.int64).ravel() for l in range(L)]
    w_off = np.concatenate([[0], np.cumsum([w.size for w in w_t])]).astype(np.int64)
    theta = np.concatenate([prog.layer_thresholds(l) for l in range(L)]).astype(np.int64)
    window = np.array([0] + [lay.window_steps for lay in prog.layers], np.int64)
    # dense[c] = 1 when every spike into layer c goes to each of its PEs exactly once (the kernel then
    # updates the whole layer's A row in one loop; same per-neuron order, so the same bits)
    dense = np.zeros(L + 1, np.int64)
    for c in range(1, L + 1):
        want = sorted(prog.layers[c - 1].pes)
        srcs = [prog.input_dests] if c == 1 else [[d for d in p.dests if d != HOST] for p in prog.pes
                                                   if p.layer == c - 2]
        dense[c] = int(all(sorted(s) == want for s in srcs))
    links, n_hops = route_table(hw.mesh_width, n_pe)
    return dict(window=window, dense=dense, links=links, n_hops=n_hops, node_off=node_off, node_pe=node_pe, pe_lo=pe_lo, pe_hi=pe_hi, pe_layer=pe_layer,
                layer_pe_off=layer_pe_off, layer_pes=np.array(layer_pes, np.int64), dest_off=dest_off,
                dests=dests, in_dests=np.array(prog.input_dests, np.int64), w_flat=np.concatenate(w_t),
                w_off=w_off, theta=theta)
