"""Golden program.txt and SRAM digests of a small fixed model.

They change only through `python -m compiler.golden --regen` (never from a test).
"""

from __future__ import annotations

import json

from compiler.golden import GOLDEN_DIR, build


def test_golden_program_and_digests():
    got = build()
    want_txt = (GOLDEN_DIR / "program.txt").read_text()
    assert got["program.txt"] == want_txt, "program.txt changed: if intended, run `python -m compiler.golden --regen`"
    want = json.loads((GOLDEN_DIR / "digests.json").read_text())
    assert got["digests"] == want, "artifact digests changed: if intended, run `python -m compiler.golden --regen`"
    assert any(k.endswith("weight.bin") for k in want) and "program.bin" in want
