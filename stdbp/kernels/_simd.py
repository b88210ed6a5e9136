"""`prefer_512()`: let LLVM vectorise the calling numba function with 512-bit registers.

LLVM's x86 tuning for AVX-512 server CPUs prefers 256-bit vectors (older parts slowed their
clock for 512-bit code), and numba offers no per-function switch. Calling this intrinsic as a
kernel's first statement adds the LLVM function attribute "prefer-vector-width"="512" to that
kernel only, so its vector loops use zmm registers where the CPU has AVX-512 (16 float32 per
instruction instead of 8). It changes no result: the same IEEE operations in the same order
per element, only more elements per instruction. Without AVX-512 it has no effect.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

_ATTR = '"prefer-vector-width"="512"'


@intrinsic
def prefer_512(typingctx):
    def codegen(context, builder, signature, args):
        # llvmlite's AttributeSet.add() accepts only enum attributes; this is a string
        # attribute, which the IR printer writes as given
        set.add(builder.function.attributes, _ATTR)
        return context.get_dummy_value()

    return types.none(), codegen
