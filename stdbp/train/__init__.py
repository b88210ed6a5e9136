"""stdbp-train: STDBP training of ReL-PSP networks (paper Tables I-II), plots and model cards.

Modules: `arch` (the paper's architecture notation), `models` (SNN and equal-shape ANN),
`ann_init` (ANN pre-training and conversion), `datasets` (MNIST-like arrays and image folders),
`loop` (one epoch, evaluation, loss Eq. 12), `checkpoint` (atomic save/resume), `runner`
(the run directory: config, metrics, checkpoints), `ddp` (torch.distributed helpers),
`cli` / `plot_cli` (typer apps).
"""
