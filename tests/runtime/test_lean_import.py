"""The runtime must stay lean: predicting pulls in no training or registry stack."""

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "optimum", "mlflow", "sklearn")

SCRIPT = """
import json, sys
from clfserve.runtime import Classifier
clf = Classifier.load(sys.argv[1])
clf.predict(["a gorgeous, witty, seductive movie", "dull"])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})))
"""


def test_import_and_predict_leave_heavy_modules_out(tiny_artefact: Path) -> None:
    script = SCRIPT.format(heavy=set(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_artefact)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == []


def test_generic_top_level_names_are_not_importable(tmp_path: Path) -> None:
    for name in ("runtime", "service", "export", "registry", "evaluation", "cli"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True
        )
        assert done.returncode != 0, f"`import {name}` should fail outside the repo"
