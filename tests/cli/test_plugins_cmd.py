"""``cardiobench plugins``: a metric's dictionaries are summarised in the table, whole in ``--json``."""

from __future__ import annotations

import json

from cardiobench.cli.plugins_cmd import _meta_text
from cardiobench.testing.cli import invoke


def test_the_direction_dictionary_is_one_summary_in_the_table():
    result = invoke("plugins", "--kind", "metric", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "'anatomy_holes_in_lv'" not in text and "'lower'" not in text
    assert "direction=(9 values: 4 higher, 3 lower, 2 none)" in text  # fidelity
    assert "direction=(4 values: 4 higher)" in text  # dice
    data = json.loads(invoke("plugins", "--kind", "metric", "--json").stdout)
    anatomy = next(c for c in data["components"] if c["name"] == "anatomy")
    assert anatomy["metadata"]["direction"]["anatomy_holes_in_lv"] == "lower"  # the whole dict in --json
    assert len(anatomy["metadata"]["direction"]) > 10


def test_meta_text():
    meta = {"tasks": ("generation",), "direction": {f"v{i}": "higher" if i < 12 else "lower" for i in range(20)},
            "counts": {"a": "a_n", "b": "b_n", "c": "c_n", "d": "d_n"}, "default": True}
    assert _meta_text(meta) == ("tasks=generation direction=(20 values: 12 higher, 8 lower) "
                                "counts=(4 values: a, b, c, ...) default=True")
