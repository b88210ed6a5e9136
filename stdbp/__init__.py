"""stdbp: ReL-PSP spiking networks trained by STDBP, exported to ONNX, deployed on YOSO.

Importing the package is cheap on purpose (no torch): the compiler and the emulator use
`stdbp.errors` and `stdbp.fileio` without pulling in the training stack.
"""

__version__ = "0.1.0"
