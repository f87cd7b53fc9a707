"""docs/python-api.md is a walkthrough whose code runs here, block after block in one namespace."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_walkthrough_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = _blocks()
    assert len(blocks) >= 4
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["scores"]["directions"]["anatomy_valid_frac"] == "higher"


def test_the_documented_metric_values():
    import cardiobench as cb

    namespace: dict = {"cb": cb}
    exec(_blocks()[-1], namespace)  # noqa: S102

    pred, target = namespace["pred"], namespace["target"]
    assert cb.metrics.dice(pred, target).tolist() == [[0.8]]
    assert cb.metrics.hd95(pred, target, spacing=(10.0, 1.5, 1.5)).tolist() == [[1.5]]


def test_import_is_light_and_names_are_public():
    code = ("import sys, cardiobench as cb; assert 'torch' not in sys.modules; cb.run; cb.metrics.dice; "
            "assert set(cb.__all__) >= {'run', 'train', 'load_model', 'sample', 'evaluate', 'metrics'}; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_warnings_point_at_the_caller_not_into_cardiobench():
    """A library warning (here torch-fidelity's set-size adaptation, raised several calls deep) is attributed to
    the user's line."""
    import warnings

    import numpy as np

    import cardiobench as cb

    masks = np.zeros((4, 16, 16), np.uint8)
    masks[:, 4:12, 4:12] = 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cb.evaluate(masks, dataset="phantom", data_options={"train_patients": 2, "test_patients": 1},
                    metrics=["fidelity"])
    assert caught and {w.filename for w in caught} == {__file__}, [(w.filename, str(w.message)) for w in caught]
