"""The paper's architecture notation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stdbp.errors import UserError
from stdbp.train.arch import parse_arch


def test_paper_cnn_shapes():
    a = parse_arch("28x28-16C5-P2-32C5-P2-800-128-10")
    assert a.input_shape == (1, 28, 28) and a.is_conv and a.pixel_shape == (1, 28, 28)
    assert [(l.kind, l.out_shape) for l in a.layers] == [
        ("conv", (16, 24, 24)), ("pool", (16, 12, 12)), ("conv", (32, 8, 8)), ("pool", (32, 4, 4)),
        ("dense", (800,)), ("dense", (128,)), ("dense", (10,))]
    assert a.layers[4].in_shape == (512,)
    assert a.n_classes == 10


@pytest.mark.parametrize("text, hidden", [("784-800-10", [800]), ("784-400-10", [400]),
                                          ("784-1000-10", [1000]), ("784-10", [])])
def test_paper_dense(text, hidden):
    a = parse_arch(text)
    assert not a.is_conv and a.pixel_shape == (784,)
    assert [l.size for l in a.layers] == hidden + [10]


def test_image_then_dense_flattens():
    a = parse_arch("160x250-4-2")
    assert a.input_shape == (1, 160, 250) and a.layers[0].in_shape == (40000,)
    assert parse_arch("28x28-800-10").layers[0].in_shape == (784,)


@pytest.mark.parametrize("text, words", [
    ("", "need an input"), ("784", "need an input"), ("784--10", "need an input"),
    ("abc-10", "input token"), ("784-16C5-10", "needs an image input"),
    ("28x28-16C30-10", "does not fit"), ("28x28-P2", "last layer"), ("784-800-Q3-10", "cannot parse"),
    ("784-0-10", "no neurons"), ("784-800-1", "at least 2 classes"), ("28x28-800-P2-10", "needs an image input"),
])
def test_bad_strings_raise_user_error(text, words):
    with pytest.raises(UserError) as err:
        parse_arch(text)
    assert words in str(err.value)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 2000), min_size=2, max_size=5).filter(lambda xs: xs[-1] >= 2))
def test_dense_roundtrip(sizes):
    a = parse_arch("-".join(map(str, sizes)))
    assert a.input_shape == (sizes[0],)
    assert [l.size for l in a.layers] == sizes[1:]
    assert all(l.in_shape == (p,) for l, p in zip(a.layers, sizes))
