"""Loss Eq. 12, schedule, prediction, and a tiny synthetic STDBP run."""

from __future__ import annotations

import math

import torch

from stdbp.train.arch import parse_arch
from stdbp.train.loop import evaluate, lr_at, spike_loss, train_epoch
from stdbp.train.models import build_ann, build_snn, predict

INF = math.inf


def test_loss_is_cross_entropy_of_negative_times():
    t = torch.tensor([[0.5, 1.0, 2.0]], requires_grad=True)
    loss, silent = spike_loss(t, torch.tensor([0]))
    expected = -torch.log_softmax(-t.detach(), 1)[0, 0]
    assert silent == 0 and torch.allclose(loss, expected)


def test_silent_output_uses_t_max_with_zero_gradient():
    t = torch.tensor([[INF, 1.0, 2.0]], requires_grad=True)
    loss, silent = spike_loss(t, torch.tensor([0]), t_max=4.0)
    assert silent == 1 and torch.isfinite(loss)
    ref = -torch.log_softmax(-torch.tensor([[4.0, 1.0, 2.0]]), 1)[0, 0]
    assert torch.allclose(loss, ref)
    loss.backward()
    assert t.grad[0, 0] == 0 and torch.isfinite(t.grad).all() and t.grad[0, 1] != 0


def test_silent_output_infinite_window_stand_in():
    t = torch.tensor([[INF, 1.0, 3.0], [INF, INF, INF]], requires_grad=True)
    loss, silent = spike_loss(t, torch.tensor([1, 2]))
    assert silent == 1 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(t.grad).all()


def test_lr_schedule_endpoints():
    assert lr_at(0, 150, 2e-4, 5e-5) == 2e-4
    assert math.isclose(lr_at(149, 150, 2e-4, 5e-5), 5e-5)
    vals = [lr_at(e, 150, 2e-4, 5e-5) for e in range(150)]
    assert all(a > b for a, b in zip(vals, vals[1:]))


def test_predict_ties_and_silence():
    t = torch.tensor([[1.0, 1.0, 2.0], [INF, INF, INF], [INF, 0.3, INF]])
    assert predict(t).tolist() == [0, -1, 1]


def _synthetic(n=256, seed=0):
    """Two classes of 8x8 'images': bright left half vs bright right half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randint(0, 60, (n, 8, 8), generator=g)
    bright = torch.randint(150, 256, (n, 8, 4), generator=g)
    x[y == 0, :, :4] = bright[y == 0]
    x[y == 1, :, 4:] = bright[y == 1]
    return x.to(torch.uint8).reshape(n, 64), y


def test_tiny_scratch_run_loss_falls_accuracy_rises():
    torch.manual_seed(0)
    x, y = _synthetic()
    model = build_snn(parse_arch("64-16-2"), t_max=4.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = evaluate(model, x, y)["accuracy"]
    losses = []
    for ep in range(6):
        r = train_epoch(model, x, y, opt, batch_size=32, t_max=4.0, shuffle_gen=torch.Generator().manual_seed(ep))
        losses.append(r.loss)
    after = evaluate(model, x, y)
    assert losses[-1] < 0.8 * losses[0]
    assert after["accuracy"] > max(before, 0.9)
    assert len(after["fired_fraction"]) == 2 and 0 < after["fired_fraction"][0] <= 1


def test_tiny_conv_net_trains():
    torch.manual_seed(0)
    x, y = _synthetic(128)
    x = x.reshape(-1, 1, 8, 8)
    arch = parse_arch("8x8-4C3-P2-2")
    model = build_snn(arch, t_max=4.0)
    ann = build_ann(arch)
    assert ann(x.float() / 255).shape == (128, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = train_epoch(model, x, y, opt, batch_size=32, t_max=4.0, shuffle_gen=torch.Generator().manual_seed(0))
    for ep in range(1, 5):
        last = train_epoch(model, x, y, opt, batch_size=32, t_max=4.0,
                           shuffle_gen=torch.Generator().manual_seed(ep))
    assert last.loss < first.loss
    assert evaluate(model, x, y)["accuracy"] > 0.8


def test_silent_target_push_raises_target_potential():
    from stdbp.train.loop import silent_target_push

    t_hidden = torch.tensor([[0.5, 1.0, INF], [0.2, 0.3, 0.4]])
    w = torch.tensor([[0.1, 0.1, 0.1], [0.2, -0.1, 0.3]], requires_grad=True)
    t_out = torch.tensor([[INF, 1.0], [0.9, INF]])
    target = torch.tensor([0, 0])  # row 0: silent target, row 1: target fired
    loss = silent_target_push(t_hidden, w, t_out, target, threshold=1.0, t_horizon=4.0)
    # only row 0 counts: V = 0.1 * 3.5 + 0.1 * 3.0 (the +inf input never arrives)
    assert torch.isclose(loss, torch.tensor((1.0 - 0.65) / 2))
    loss.backward()
    assert torch.allclose(w.grad[0], torch.tensor([-3.5 / 2, -3.0 / 2, 0.0]))
    assert (w.grad[1] == 0).all()
    none = silent_target_push(t_hidden, w, torch.zeros(2, 2), target, 1.0, 4.0)
    assert float(none.detach()) == 0.0


def test_ann_dropout_only_in_training():
    arch = parse_arch("784-32-10")
    ann = build_ann(arch, dropout=0.5)
    assert any(isinstance(m, torch.nn.Dropout) for m in ann)
    x = torch.rand(4, 784)
    ann.eval()
    assert torch.equal(ann(x), ann(x))
    assert len([m for m in ann if isinstance(m, torch.nn.Linear)]) == 2


def test_augment_transforms_the_pixels_the_network_sees():
    """train_epoch hands every batch's uint8 pixels to `augment` before encoding them."""
    x, y = _synthetic()
    seen = []

    def blank(pixels, *rows):
        seen.append(pixels.shape[0])
        return torch.zeros_like(pixels)  # every input black: nothing left to learn from

    torch.manual_seed(0)
    model = build_snn(parse_arch("64-16-2"), t_max=4.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    r = train_epoch(model, x, y, opt, batch_size=32, t_max=4.0,
                    shuffle_gen=torch.Generator().manual_seed(0), augment=blank)
    assert sum(seen) == len(y)
    assert r.train_accuracy <= 0.75  # identical inputs: at best the majority class
