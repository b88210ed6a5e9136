"""Backend registry: `get_backend(name)` -> a fresh, unprepared backend.

"onnxruntime" lives here; "yoso" is imported lazily from `yoso_backend.runtime_backend`
(the emulator package), so the runtime works without it.
"""

from __future__ import annotations

from stdbp.errors import UserError

BACKENDS = ("onnxruntime", "yoso")


def get_backend(name: str):
    if name == "onnxruntime":
        from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    if name == "yoso":
        try:
            from yoso_backend.runtime_backend import YosoBackend
        except ImportError as exc:
            raise UserError("--backend yoso", f"the YOSO backend is not available ({exc})",
                            "install the yoso_backend package or use --backend onnxruntime") from None
        return YosoBackend()
    raise UserError("--backend", f"unknown backend {name!r}", f"choose one of {', '.join(BACKENDS)}")
