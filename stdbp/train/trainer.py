"""The training procedure behind stdbp-train: data, init (ANN or scratch), STDBP epochs,
metrics, checkpoints, resume, Ctrl-C, divergence, final export."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import torch

from stdbp.errors import UserError
from stdbp.train.runner import Run, TrainConfig


class Reporter(Protocol):
    def start(self, phase: str, total: int, epoch: int, epochs: int) -> None: ...
    def advance(self, n: int, loss: float | None = None, acc: float | None = None) -> None: ...
    def stop(self) -> None: ...
    def line(self, text: str) -> None: ...


class QuietReporter:
    def start(self, phase, total, epoch, epochs):
        pass

    def advance(self, n, loss=None, acc=None):
        pass

    def stop(self):
        pass

    def line(self, text):
        pass


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except Exception:
        return None


def _broadcast_params(model: torch.nn.Module) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for p in model.parameters():
            dist.broadcast(p.data, src=0)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def export_onnx(model, cfg: TrainConfig, path: Path, accuracy: float) -> str:
    """Final ONNX export through stdbp.export if it is installed; returns a status string."""
    if cfg.neuron != "relpsp":
        from stdbp.alpha import NO_EXPORT

        return f"skipped: {NO_EXPORT}"
    try:
        from stdbp.export import to_onnx
    except ImportError as exc:
        return f"skipped: stdbp.export not available ({exc})"
    try:
        from stdbp.train.arch import parse_arch

        proto = to_onnx(model, dataset=cfg.data, accuracy=accuracy, arch=cfg.arch,
                        input_shape=parse_arch(cfg.arch).pixel_shape)
        from stdbp.fileio import atomic_write_bytes

        atomic_write_bytes(path, proto.SerializeToString())
    except Exception as exc:  # the exporter's own errors must not lose the trained run
        return f"failed: {type(exc).__name__}: {exc}"
    return "ok"


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, force: bool = False, epochs_given: bool = True,
          reporter: Reporter | None = None, rank: int = 0, world: int = 1,
          stop_after: int | None = None) -> dict:
    """Run (or resume) a training run in `out`; returns a summary dict.

    `stop_after`: end this call after that many epochs (the schedule still spans cfg.epochs);
    continue later with `resume=True`.
    """
    from stdbp.data import SpikeJitter
    from stdbp.train import ann_init
    from stdbp.train.arch import parse_arch
    from stdbp.train.checkpoint import epoch_generator, load_checkpoint, save_checkpoint
    from stdbp.train.datasets import load_train_data
    from stdbp.train.loop import Diverged, evaluate, lr_at, train_epoch
    from stdbp.train.models import build_ann, build_snn, spiking_layer_names

    rep = reporter or QuietReporter()
    run = Run(out, writer=rank == 0)
    ckpt_path = run.dir / "checkpoint.pt"
    state = None
    if resume:
        saved = run.read_config()
        # the only thing a resume may change: run longer (or shorter), when the caller says so
        state = load_checkpoint(ckpt_path)
        if epochs_given and cfg.epochs != saved.epochs:
            # recorded in config.json, so that a later plain --resume keeps the new length
            run.update_config_epochs(cfg.epochs)
            run.log({"phase": "resume", "epoch": state["epoch"], "epochs": cfg.epochs,
                     "previous_epochs": saved.epochs})
            saved.epochs = cfg.epochs
        cfg = saved
    elif (run.dir / "config.json").exists() and not force:
        raise UserError(run.dir, "already holds a run", "pass --resume to continue it or --force to start over")
    elif force and run.dir.exists() and rank == 0:
        for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "ann.pt", "model.onnx",
                     "interrupted.pt"):
            (run.dir / name).unlink(missing_ok=True)
    cfg.validate()
    arch = parse_arch(cfg.arch)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_train_data(cfg.data, arch.pixel_shape, image_shape=arch.input_shape, data_dir=cfg.data_dir, train_subset=cfg.train_subset,
                           test_subset=cfg.test_subset, seed=cfg.seed, val_split=cfg.val_split,
                           image_size=cfg.image_size, per_class=cfg.per_class)
    image_hw = _image_hw(cfg, arch)
    if int(data.y_train.max()) >= arch.n_classes:
        raise UserError(f"--arch {cfg.arch}", f"{arch.n_classes} outputs but labels go up to {int(data.y_train.max())}",
                        f"end the architecture with {int(data.y_train.max()) + 1} or more outputs")
    model = build_snn(arch, threshold=cfg.threshold, t_max=cfg.t_max, alpha=cfg.alpha,
                      silent_zero=cfg.silent_zero, delta_clip=cfg.delta_clip, backend=cfg.backend,
                      neuron=cfg.neuron, tau=cfg.tau).to(device)
    layer_names = spiking_layer_names(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    start_epoch, best_acc = 0, -1.0   # best_acc: the selection score (validation, else test accuracy)
    best_test = -1.0                  # test accuracy of the selected epoch

    def evaluate_all():
        """Test metrics, plus the validation accuracy and the selection score."""
        ev = evaluate(model, data.x_test, data.y_test, batch_size=cfg.eval_batch_size, device=device)
        val = None
        if data.x_val is not None:
            val = evaluate(model, data.x_val, data.y_val, batch_size=cfg.eval_batch_size, device=device)["accuracy"]
        return ev, val, (ev["accuracy"] if val is None else val)

    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best_acc = state["epoch"], state["best_accuracy"]
        best_test = state["extra"].get("best_test_accuracy", best_acc)
        run.truncate_metrics(lambda r: r.get("phase") != "snn" or r.get("epoch", 0) <= start_epoch)
        rep.line(f"resuming {run.dir} after epoch {start_epoch} (best {_selected_on(cfg)} accuracy {best_acc:.4f})")
    else:
        run.write_config(cfg, {"_commit": _git_commit(), "_world_size": world, "_torch": torch.__version__})
        if rank == 0:
            _initialise(cfg, arch, model, data, run, rep, build_ann, ann_init, image_hw)
        _broadcast_params(model)
        ev, val, best_acc = evaluate_all()
        best_test = ev["accuracy"]
        run.log({"phase": "init", "epoch": 0, "init": cfg.init, "test_accuracy": ev["accuracy"],
                 **({} if val is None else {"val_accuracy": val}),
                 "fired_fraction": ev["fired_fraction"], "dead_fraction": ev["dead_fraction"],
                 "silent_output_rows": ev["silent_output_rows"], "layers": layer_names})
        rep.line(f"init ({cfg.init}): SNN test accuracy {ev['accuracy'] * 100:.2f} %"
                 + ("" if val is None else f", validation {val * 100:.2f} %"))
        if rank == 0:
            save_checkpoint(ckpt_path, model=model, optimizer=opt, epoch=0, best_accuracy=best_acc,
                            config=asdict(cfg), extra={"best_test_accuracy": best_test})
            shutil.copyfile(ckpt_path, run.dir / "best.pt")
    _barrier()

    sigma = math.sqrt(cfg.jitter_variance)
    best_loss = math.inf
    last_epoch = start_epoch
    status = "finished"
    message = ""
    epoch = start_epoch
    try:
        end = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
        for epoch in range(start_epoch + 1, end + 1):
            lr = lr_at(epoch - 1, cfg.epochs, cfg.lr, cfg.lr_final)
            for g in opt.param_groups:
                g["lr"] = lr
            # the same stream on every rank: each slices its rows of the global batch's noise
            jitter = SpikeJitter(sigma, epoch_generator(cfg.seed, epoch, 1)) if sigma > 0 else None
            t0 = time.perf_counter()
            rep.start("train", len(data.y_train), epoch, cfg.epochs)
            try:
                res = train_epoch(model, data.x_train, data.y_train, opt, batch_size=cfg.batch_size,
                                  t_max=cfg.t_max, shuffle_gen=epoch_generator(cfg.seed, epoch, 0),
                                  jitter=jitter, device=device,
                                  on_batch=lambda n, loss, acc: rep.advance(n, loss, acc),
                                  push=cfg.silent_target_push,
                                  augment=_shifter(cfg, image_hw, epoch_generator(cfg.seed, epoch, 2)))
            finally:
                rep.stop()
            train_s = time.perf_counter() - t0
            if not math.isfinite(res.loss) or res.loss > cfg.divergence_factor * best_loss:
                raise Diverged(f"epoch loss {res.loss:.4g} vs best {best_loss:.4g}")
            best_loss = min(best_loss, res.loss)
            t1 = time.perf_counter()
            ev, val, score = evaluate_all()
            eval_s = time.perf_counter() - t1
            record = {
                "phase": "snn", "epoch": epoch, "lr": lr, "loss": res.loss,
                "train_accuracy": res.train_accuracy, "test_accuracy": ev["accuracy"],
                **({} if val is None else {"val_accuracy": val}),
                "layers": layer_names,
                "fired_fraction_train": res.fired_fraction, "fired_fraction": ev["fired_fraction"],
                "dead_fraction": ev["dead_fraction"], "silent_targets": res.silent_targets,
                "silent_target_fraction": res.silent_targets / max(1, res.n_samples),
                "silent_output_rows": ev["silent_output_rows"], "clipped_gradients": res.clipped_gradients,
                "mean_decision_time": ev["mean_decision_time"],
                "epoch_seconds": train_s, "eval_seconds": eval_s,
            }
            record["wall_clock"] = time.time()
            run.log(record)
            improved = score > best_acc
            if improved:
                best_acc, best_test = score, ev["accuracy"]
            if rank == 0:
                save_checkpoint(ckpt_path, model=model, optimizer=opt, epoch=epoch,
                                best_accuracy=best_acc, config=asdict(cfg), extra={"best_test_accuracy": best_test})
                if improved:
                    shutil.copyfile(ckpt_path, run.dir / "best.pt")
            last_epoch = epoch
            rep.line(f"epoch {epoch}/{cfg.epochs}  loss {res.loss:.4f}  train {res.train_accuracy * 100:.2f} %  "
                     f"test {ev['accuracy'] * 100:.2f} %  " + ("" if val is None else f"val {val * 100:.2f} %  ")
                     + f"fired {'/'.join(f'{f:.2f}' for f in ev['fired_fraction'])}  "
                     f"silent targets {res.silent_targets}  {train_s:.1f} s")
            _barrier()
    except Diverged as exc:
        status, message = "diverged", (f"training diverged in epoch {epoch}: {exc}; the last good state "
                                       f"(epoch {last_epoch}) is in {ckpt_path}")
        run.log({"phase": "stopped", "epoch": epoch, "reason": "diverged", "detail": str(exc)})
    except KeyboardInterrupt:
        status = "interrupted"
        if rank == 0:
            save_checkpoint(run.dir / "interrupted.pt", model=model, optimizer=opt, epoch=last_epoch,
                            best_accuracy=best_acc, config=asdict(cfg),
                            extra={"partial_epoch": epoch, "best_test_accuracy": best_test})
        message = (f"interrupted in epoch {epoch}; {ckpt_path} holds epoch {last_epoch} "
                   f"(continue with --resume); the partial state is in interrupted.pt")
        run.log({"phase": "stopped", "epoch": epoch, "reason": "interrupted"})
    # best_test_accuracy: the test accuracy of best.pt, the epoch chosen on `selected_on`
    summary = {"status": status, "epochs_done": last_epoch, "best_test_accuracy": best_test,
               "selected_on": _selected_on(cfg), "run_dir": str(run.dir), "message": message}
    if status == "finished" and last_epoch < cfg.epochs:
        status = "paused"
        message = f"stopped after epoch {last_epoch} of {cfg.epochs} (--stop-after); continue with --resume"
    if status == "finished" and rank == 0:
        best = load_checkpoint(run.dir / "best.pt")
        export_model = build_snn(arch, threshold=cfg.threshold, t_max=cfg.t_max, alpha=cfg.alpha,
                                 silent_zero=cfg.silent_zero, neuron=cfg.neuron, tau=cfg.tau)
        export_model.load_state_dict(best["model"])
        summary["onnx"] = export_onnx(export_model, cfg, run.dir / "model.onnx",
                                      best["extra"].get("best_test_accuracy", best["best_accuracy"]))
        run.log({"phase": "export", "onnx": summary["onnx"], "best_test_accuracy": best_test,
                 "selected_on": _selected_on(cfg)})
    if message:
        rep.line(message)
    return summary


def _selected_on(cfg) -> str:
    """What best.pt is chosen on: the held-out validation images, or (paper style) the test set."""
    return "validation" if cfg.val_split or str(cfg.data).startswith("imagefolder:") else "test"


def _image_hw(cfg, arch) -> tuple[int, int] | None:
    """(H, W) of the input images, for --augment-shift: an HxW architecture input, or the 28x28
    of MNIST / Fashion-MNIST. Asking for shifts without a known image size is an error."""
    from stdbp.data import DATASETS

    if len(arch.input_shape) == 3:
        return tuple(arch.input_shape[1:])
    if cfg.data in DATASETS:
        return (28, 28)
    if cfg.augment_shift:
        raise UserError(f"--arch {cfg.arch}", "--augment-shift needs the image height and width",
                        "start the architecture with HxW, e.g. 28x28-800-10")
    return None


def _shifter(cfg, image_hw, generator):
    """The epoch's RandomShift, or None when --augment-shift is 0 (the paper)."""
    from stdbp.data import RandomShift

    return RandomShift(cfg.augment_shift, image_hw, generator) if cfg.augment_shift else None


def _initialise(cfg, arch, model, data, run: Run, rep: Reporter, build_ann, ann_init, image_hw=None) -> None:
    """ANN pre-training + conversion, or the SNN layers' own from-scratch initialisation."""
    if cfg.init == "scratch" or cfg.ann_epochs == 0:
        return
    ann = build_ann(arch, cfg.ann_dropout).to(next(model.parameters()).device)
    if cfg.ann_from:
        try:
            _load_ann_weights(ann, torch.load(cfg.ann_from, map_location="cpu", weights_only=True))
        except FileNotFoundError:
            raise UserError(cfg.ann_from, "ANN checkpoint not found", "point --ann-from at a run's ann.pt") from None
        except Exception as exc:
            raise UserError(cfg.ann_from, f"not an ANN of {cfg.arch} ({type(exc).__name__})",
                            "use the ann.pt of a run with the same --arch") from None
        run.log({"phase": "ann", "epoch": 0, "from": str(cfg.ann_from),
                 "test_accuracy": ann_init.ann_accuracy(ann, data.x_test, data.y_test)})
    else:
        _train_ann(cfg, ann, data, run, rep, ann_init, image_hw)
    _convert(cfg, ann, model, data, run, rep, ann_init)


def _load_ann_weights(ann, state: dict) -> None:
    """Copy the weight tensors of an ann.pt into `ann` in layer order (the module indices differ
    when one ANN was built with dropout and the other without)."""
    from torch import nn

    keys = sorted((k for k in state if k.endswith("weight")), key=lambda k: int(k.split(".")[0]))
    layers = [m for m in ann if isinstance(m, (nn.Linear, nn.Conv2d))]
    if len(keys) != len(layers):
        raise ValueError(f"{len(keys)} weight tensors for {len(layers)} layers")
    with torch.no_grad():
        for k, m in zip(keys, layers):
            if state[k].shape != m.weight.shape:
                raise ValueError(f"{k}: shape {tuple(state[k].shape)} != {tuple(m.weight.shape)}")
            m.weight.copy_(state[k])


def _train_ann(cfg, ann, data, run: Run, rep: Reporter, ann_init, image_hw=None) -> None:
    from stdbp.train.checkpoint import epoch_generator

    clock = [time.perf_counter()]

    def on_epoch(ep, loss, acc):
        rep.stop()
        now = time.perf_counter()
        run.log({"phase": "ann", "epoch": ep + 1, "loss": loss, "test_accuracy": acc,
                 "epoch_seconds": now - clock[0]})
        clock[0] = now
        rep.line(f"ANN epoch {ep + 1}/{cfg.ann_epochs}  loss {loss:.4f}  test {acc * 100:.2f} %")
        if ep + 1 < cfg.ann_epochs:
            rep.start("ANN", len(data.y_train), ep + 2, cfg.ann_epochs)

    rep.start("ANN", len(data.y_train), 1, cfg.ann_epochs)
    try:
        ann_init.train_ann(ann, data.x_train, data.y_train, data.x_test, data.y_test, epochs=cfg.ann_epochs,
                           lr=cfg.ann_lr, lr_final=cfg.ann_lr_final, batch_size=cfg.batch_size, seed=cfg.seed,
                           on_epoch=on_epoch, on_batch=lambda n: rep.advance(n),
                           augment=lambda ep: _shifter(cfg, image_hw, epoch_generator(cfg.seed, ep + 1, 3)))
    finally:
        rep.stop()
    from stdbp.fileio import atomic_write_bytes
    import io

    buf = io.BytesIO()
    torch.save(ann.state_dict(), buf)
    atomic_write_bytes(run.dir / "ann.pt", buf.getvalue())


def _convert(cfg, ann, model, data, run: Run, rep: Reporter, ann_init) -> None:
    n_cal = min(cfg.calibration_samples, len(data.y_train))
    g = torch.Generator().manual_seed(cfg.seed + 7)
    idx = torch.randperm(len(data.y_train), generator=g)[:n_cal]
    t0 = time.perf_counter()
    if cfg.coverage_search:
        report = ann_init.convert_search(
            ann, model, data.x_train[idx], data.y_train[idx],
            on_candidate=lambda c, acc: rep.line(f"conversion coverage {c:.2f}: calibration accuracy "
                                                 f"{acc * 100:.1f} %"))
        rep.line(f"conversion coverage chosen: {report['coverage_chosen']:.2f}")
    else:
        report = ann_init.convert(ann, model, data.x_train[idx], data.y_train[idx], coverage=cfg.coverage)
    report["seconds"] = time.perf_counter() - t0
    run.log({"phase": "convert", **report})
    rep.line("conversion scales " + ", ".join(f"{s:.3g}" for s in report["scales"]))
