"""The ordered compiler passes (hls4ml style): each is `fn(state) -> None`, testable alone.

    PASSES = [("import", ...), ("drc", ...), ("quantise", ...), ("partition", ...), ("place", ...), ("emit", ...)]

`compiler.compile_model` runs them in order; tests call any one on a state prepared by hand.
"""

from __future__ import annotations

from compiler.passes.drc import design_rule_check
from compiler.passes.emit import emit_program
from compiler.passes.partition import partition
from compiler.passes.place import place
from compiler.passes.quantise import quantise

# import is not listed: it needs the model path (compiler.compile_model does it first)
PASSES = [("drc", design_rule_check), ("quantise", quantise), ("partition", partition),
          ("place", place), ("emit", emit_program)]

__all__ = ["PASSES", "design_rule_check", "quantise", "partition", "place", "emit_program"]
