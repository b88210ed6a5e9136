"""One error type for everything a user can get wrong, and the CLI guard that prints it.

A `UserError` names the file (or object), the item inside it and the fix. The CLI prints it as
one line on stderr and exits with code 2: no traceback, ever, for bad input.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input: `where` (a file or object), `item` (what inside it), `fix` (what to do)."""

    def __init__(self, where: str, item: str, fix: str = ""):
        self.where, self.item, self.fix = str(where), item, fix
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.item}"
        return f"{text} (fix: {self.fix})" if self.fix else text


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a UserError (and Ctrl-C) into one line on stderr and exit code 2 (130 for Ctrl-C)."""
    try:
        yield
    except UserError as err:
        print(f"error: {err.line()}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
