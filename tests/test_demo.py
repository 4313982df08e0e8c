"""``rdlab demo --quick`` end to end: the report and everything it shows exist."""

import json
import re

from typer.testing import CliRunner

from rdlab.cli import app


# The main job's tour, so it stays in the default suite (about 60 s on two cores).
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
    assert des["engine"] == "compiled"  # model.engine auto: the compiled engine on the CPU
    assert set(des["controls"]["dt/10"]["summary"]) == {"Optimized", "Random X0",
                                                        "Initial θΨ", "Random θΨ"}
    for name in ("target.png", "timelapse.png", "reaction_graph.png", "network.xml"):
        assert (out / "design" / name).stat().st_size > 1000, name


def _fail_after_the_gallery(monkeypatch):
    import rdlab.demo as demo
    from rdlab.errors import SimulationError

    def gallery(folder, n_steps, seed=0):
        (folder.path / "gray_scott_gallery.png").write_bytes(b"png")
        return {}

    def dense(folder, n_steps, seed=0):
        raise SimulationError("simulation blew up in the dense section (test)")

    monkeypatch.setattr(demo, "gray_scott_gallery", gallery)
    monkeypatch.setattr(demo, "dense_network_run", dense)


def test_a_failing_demo_section_leaves_no_report(tmp_path, monkeypatch):
    from cli_contract import assert_refused

    _fail_after_the_gallery(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert_refused(["demo", "--quick", "--out", "demo"], tmp_path, r"dense section")
    assert not (tmp_path / "demo").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith((".lock", ".owner"))] == []


def test_a_failing_demo_leaves_the_previous_report_untouched(tmp_path, monkeypatch):
    from cli_contract import assert_refused

    old = tmp_path / "demo"
    old.mkdir()
    (old / "config.yaml").write_text("command: demo\n")
    (old / "index.html").write_text("<p>the previous report</p>")
    _fail_after_the_gallery(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert_refused(["demo", "--quick", "--out", "demo"], tmp_path, r"dense section")
    assert (old / "index.html").read_text() == "<p>the previous report</p>"
    assert sorted(p.name for p in old.iterdir()) == ["config.yaml", "index.html"]
