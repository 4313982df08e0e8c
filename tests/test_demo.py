"""``rdlab demo --quick`` end to end: the report and everything it shows exist."""

import json
import re

from typer.testing import CliRunner

from rdlab.cli import app


def test_quick_demo_writes_a_complete_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text()
    images = re.findall(r'src="([^"]+)"', html)
    assert len(images) >= 5
    for name in images:
        assert (out / name).stat().st_size > 1000, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gray_scott_gallery"]["samples"] == 12
    ev = metrics["dense_network"]["explained_variance_ratio"]
    assert len(ev) == 3 and 0.5 < sum(ev) <= 1.0 + 1e-9
    disc = metrics["discover"]
    assert disc["converged"] and disc["exact"], disc["table"]
    assert disc["max_rate_error"] < 1e-2
    assert (out / "discover" / "mechanism.xml").stat().st_size > 1000
    des = metrics["design"]
    assert des["steps"] == 20 and -1.0 <= des["window_r"] <= 1.0
    assert set(des["controls"]["dt/10"]["summary"]) == {"Optimized", "Random X0",
                                                        "Initial θΨ", "Random θΨ"}
    for name in ("target.png", "timelapse.png", "reaction_graph.png", "network.xml"):
        assert (out / "design" / name).stat().st_size > 1000, name
