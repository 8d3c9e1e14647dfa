"""What a fresh interpreter has imported after some code: for tests that keep imports cheap."""

from __future__ import annotations

import json
import subprocess
import sys


def heavy_modules_after(code: str, heavy: set[str]) -> list[str]:
    """Top-level packages among ``heavy`` that a fresh interpreter has imported after ``code``."""
    script = (
        "import json, sys\n"
        f"{code}\n"
        f"heavy = {sorted(heavy)!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found
