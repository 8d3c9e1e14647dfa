"""Benchmark-only ONNX Runtime knob, loaded by every Python process started with this folder on
``PYTHONPATH`` (a server and the worker processes it spawns).

``CLFSERVE_BENCH_ORT_SPINNING=0`` adds ``session.intra_op.allow_spinning=0`` to the options of
every `onnxruntime.InferenceSession`: idle intra-op threads sleep at once instead of spinning
(ORT's default), leaving the cores to the event loop. It is a harness knob for measuring that
choice, not a clfserve setting.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if os.environ.get("CLFSERVE_BENCH_ORT_SPINNING") == "0":
    import onnxruntime as ort

    _original_init = ort.InferenceSession.__init__

    def _no_spinning_init(
        self: Any, path_or_bytes: Any, sess_options: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        options = sess_options if sess_options is not None else ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        print(f"[pid {os.getpid()}] ORT intra-op spinning off", file=sys.stderr, flush=True)
        _original_init(self, path_or_bytes, options, *args, **kwargs)

    ort.InferenceSession.__init__ = _no_spinning_init  # type: ignore[method-assign]
