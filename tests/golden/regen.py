"""Regenerate the golden records: `python -m tests.golden.regen [NAME ...]`. Review `git diff` after."""

import sys

from tests.golden.golden import regen

if __name__ == "__main__":
    regen(sys.argv[1:] or None)
