"""docs/ops.md is generated from the specs; a stale file fails here (regenerate: python -m stdbp.ops.docs)."""

from stdbp.ops import OPS
from stdbp.ops.docs import DOC_PATH, main, render


def test_docs_ops_md_is_fresh():
    assert DOC_PATH.read_text() == render(), "run `python -m stdbp.ops.docs` and commit docs/ops.md"
    assert main(["--check"]) == 0


def test_every_op_semantics_rendered():
    text = render()
    for spec in OPS.values():
        assert f"## {spec.name}" in text and spec.semantics in text
        for a in spec.attributes:
            assert f"`{a.name}`" in text
