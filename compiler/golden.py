"""Golden files of the compiler: a small fixed model, its program.txt and the sha256 of every file.

    python -m compiler.golden --check   # compare (what tests/compiler/test_golden.py does)
    python -m compiler.golden --regen   # rewrite tests/compiler/golden/ -- the ONLY way to change them

Regenerate only for an intended change of the compiler or the artifact format, and say why in the
commit message.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "compiler" / "golden"
GOLDEN_SIZES = (784, 48, 10)
GOLDEN_SEED = 7


def golden_model():
    from compiler.testmodels import dense_model

    return dense_model(GOLDEN_SIZES, seed=GOLDEN_SEED, threshold=0.1, t_max=2.0)


def build() -> dict[str, str | dict]:
    """Compile the golden model; return {"program.txt": text, "digests": {path: sha256}}."""
    from compiler import CompileOptions, compile_model
    from yoso_backend.artifact import save_program

    state = compile_model(golden_model(), CompileOptions(hw="yoso-6x7"))
    with tempfile.TemporaryDirectory() as tmp:
        out = save_program(state.program, Path(tmp) / "golden.yoso")
        manifest = json.loads((out / "manifest.json").read_text())
        text = (out / "program.txt").read_text()
    digests = {path: info["sha256"] for path, info in manifest["files"].items()}
    return {"program.txt": text, "digests": digests}


def compare() -> list[str]:
    got = build()
    problems = []
    want_txt = (GOLDEN_DIR / "program.txt").read_text()
    if got["program.txt"] != want_txt:
        problems.append("program.txt differs")
    want = json.loads((GOLDEN_DIR / "digests.json").read_text())
    for path in sorted(set(want) | set(got["digests"])):
        if want.get(path) != got["digests"].get(path):
            problems.append(f"{path}: {want.get(path)} != {got['digests'].get(path)}")
    return problems


def regen() -> None:
    got = build()
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    (GOLDEN_DIR / "program.txt").write_text(got["program.txt"])
    (GOLDEN_DIR / "digests.json").write_text(json.dumps(got["digests"], indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiler.golden", description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--regen", action="store_true", help="rewrite tests/compiler/golden/")
    g.add_argument("--check", action="store_true", help="compare with tests/compiler/golden/")
    args = ap.parse_args(argv)
    if args.regen:
        regen()
        print(f"wrote {GOLDEN_DIR}")
        return 0
    problems = compare()
    for p in problems:
        print(p)
    print("golden files match" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
