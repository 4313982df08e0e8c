"""Tests of rdlab.viz.classify_explorer: the self-contained HTML phase-map explorer.

The browser test drives Debian's Chromium headless through Selenium; it is skipped where
Chromium, ChromeDriver or the selenium package is missing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from rdlab import viz
from rdlab.errors import ParameterError
from rdlab.viz.classify_explorer import PROB_DECIMALS

CLASSES = [*"αβγδεζηθικλμν", "π", "L", "H"]
THUMB = 32


@pytest.fixture(scope="module")
def scan():
    """A 6 × 5 scan: k ∈ [0.03, 0.07], f ∈ [0, 0.1]; labels by a rule, point 7 unclassified;
    every third point a homogeneous state (identical frames), the others distinct patterns."""
    rng = np.random.default_rng(7)
    kk, ff = np.meshgrid(np.linspace(0.03, 0.07, 6), np.linspace(0.0, 0.1, 5))
    k, f = kk.ravel(), ff.ravel()
    n = k.size
    labels = (np.arange(n) * 5) % len(CLASSES)
    labels[7] = -1
    probs = rng.dirichlet(np.full(len(CLASSES), 0.3), size=n)
    probs[np.arange(n), np.maximum(labels, 0)] += 2.0
    probs /= probs.sum(axis=1, keepdims=True)
    images = rng.uniform(0, 1, (n, 3, 16, 16)).astype(np.float32)
    images[::3] = 0.25  # homogeneous: the same thumbnail for all ten of them
    return {"k": k, "f": f, "labels": labels, "probs": probs, "images": images}


@pytest.fixture(scope="module")
def page(scan, tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "sub" / "explorer.html"
    out = viz.write_explorer(path, scan["k"], scan["f"], scan["labels"], CLASSES,
                             scan["probs"], scan["images"], thumb_size=THUMB,
                             title="Scan <1> & co")
    assert out == path
    return path


def _data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="scan-data">(.*?)</script>', text, re.S)
    assert m, "no embedded scan data"
    return json.loads(m.group(1))


def _png(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):])))


# ----------------------------------------------------------------------------- static checks


def test_self_contained(page):
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link\b|@import|<iframe\b", text, re.I)
    assert set(re.findall(r"url\(([^)]*)\)", text)) == {"#hatch"}
    assert text.count("<script") == 2  # the data and the code
    # The title is escaped.
    assert "<title>Scan &lt;1&gt; &amp; co</title>" in text


def test_embedded_data(page, scan):
    text = page.read_text(encoding="utf-8")
    data = _data(text)
    n = scan["k"].size
    for key in ("k", "f", "label", "prob", "img"):
        assert len(data[key]) == n, key
    assert data["classes"] == CLASSES
    assert data["colors"] == ["#{:02x}{:02x}{:02x}".format(*c) for c in viz.class_colors(CLASSES)]
    assert data["k"] == scan["k"].tolist() and data["f"] == scan["f"].tolist()
    assert data["label"] == scan["labels"].tolist()
    np.testing.assert_allclose(data["prob"], scan["probs"], atol=10.0**-PROB_DECIMALS)
    # Each cell: one <rect> with its index and exact k, f.
    cells = re.findall(r'<rect [^>]*data-i="(\d+)" data-k="([^"]+)" data-f="([^"]+)"', text)
    assert [int(i) for i, _, _ in cells] == list(range(n))
    assert [(float(a), float(b)) for _, a, b in cells] == list(zip(scan["k"], scan["f"],
                                                                   strict=True))
    # The ten identical homogeneous frames share one thumbnail; the twenty others are distinct.
    homogeneous = {data["img"][i] for i in range(0, n, 3)}
    assert len(homogeneous) == 1
    assert len(data["images"]) == 1 + (n - 10)
    assert sorted(set(data["img"])) == list(range(len(data["images"])))
    with _png(data["images"][data["img"][0]]) as im:
        assert im.size == (THUMB, THUMB)
        assert set(np.asarray(im.convert("RGB")).ravel().tolist()) == {64}  # U = 0.25, grey


def test_script_cannot_be_closed_by_data(tmp_path):
    path = viz.write_explorer(tmp_path / "x.html", [0.05], [0.03], [0], ["</script><b>"],
                              np.ones((1, 1)), np.zeros((1, 4, 4)))
    text = path.read_text(encoding="utf-8")
    assert text.count("</script>") == 2
    assert _data(text)["classes"] == ["</script><b>"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"probabilities": np.full((3, 2), 0.5)}, r"\(n_points, n_classes\) = \(2, 2\)"),
        ({"probabilities": np.array([[0.5, 0.4], [1.0, 0.0]])}, "row 0 sums to 0.9"),
        ({"images": np.zeros((3, 3, 4, 4))}, r"n = 2 points, got \(3, 3, 4, 4\)"),
        ({"images": np.zeros((2, 3, 0, 4))}, r"got \(2, 3, 0, 4\)"),
        ({"labels": [0, 2]}, "label 2 at index 1 is out of range"),
        ({"k": [0.03, np.nan]}, r"k\[1\] = nan"),
        ({"thumb_size": 0}, "thumb_size must be a positive integer, got 0"),
    ],
)
def test_bad_inputs(tmp_path, change, match):
    args = {"k": [0.03, 0.04], "f": [0.01, 0.01], "labels": [0, 1], "classes": ["α", "L"],
            "probabilities": np.eye(2), "images": np.zeros((2, 3, 4, 4)), **change}
    with pytest.raises(ParameterError, match=match):
        viz.write_explorer(tmp_path / "x.html", **args)
    assert not (tmp_path / "x.html").exists()


# ----------------------------------------------------------------------------- in a browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    chromium, driver = (shutil.which(os.path.basename(p)) or (p if os.access(p, os.X_OK) else None)
                        for p in (CHROMIUM, CHROMEDRIVER))
    if chromium is None or driver is None:
        pytest.skip("Chromium / ChromeDriver not installed (Debian: apt-get install chromium "
                    "chromium-driver)")
    profile = tempfile.mkdtemp(prefix="rdlab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1280,900"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _panel(drv) -> dict:
    from selenium.webdriver.common.by import By

    def text(id_: str) -> str:
        return drv.find_element(By.ID, id_).text.strip()

    return {
        "k": text("info-k"), "f": text("info-f"), "class": text("info-class"),
        "probs": [li.text.strip() for li in drv.find_elements(By.CSS_SELECTOR, "#info-probs li")],
        "src": drv.find_element(By.ID, "info-image").get_attribute("src"),
    }


def _expected(scan: dict, data: dict, i: int) -> dict:
    label = int(scan["labels"][i])
    p = np.asarray(data["prob"][i])
    top = sorted(range(len(CLASSES)), key=lambda j: (-p[j], j))[:3]
    return {
        "k": repr(float(scan["k"][i])), "f": repr(float(scan["f"][i])),
        "class": CLASSES[label] if label >= 0 else "unclassified",
        "probs": [f"{CLASSES[j]} {100 * p[j]:.1f}%" for j in top],
        "src": data["images"][data["img"][i]],
    }


def test_click_and_hover_in_browser(browser, page, scan):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    data = _data(page.read_text(encoding="utf-8"))
    browser.get(page.as_uri())
    assert browser.find_element(By.ID, "info-k").text == "–"  # nothing shown yet

    def cell(i: int):
        return browser.find_element(By.CSS_SELECTOR, f'rect[data-i="{i}"]')

    # Click: the panel shows that point (k, f exactly as given, class, pattern, top classes).
    cell(13).click()
    shown = _panel(browser)
    assert shown == _expected(scan, data, 13)
    assert shown["src"].startswith("data:image/png;base64,")
    assert shown["class"] == CLASSES[scan["labels"][13]]

    # Hover another cell: the panel follows the pointer.
    ActionChains(browser).move_to_element(cell(22)).perform()
    assert _panel(browser) == _expected(scan, data, 22)
    # The unclassified point.
    ActionChains(browser).move_to_element(cell(7)).perform()
    assert _panel(browser)["class"] == "unclassified"

    # Leaving the map returns to the pinned point; a second click unpins it.
    ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    assert _panel(browser)["k"] == repr(float(scan["k"][13]))
    highlight = browser.find_element(By.ID, "highlight")
    assert highlight.get_attribute("x") == cell(13).get_attribute("x")
    assert highlight.get_attribute("stroke-dasharray") == "none"
    cell(13).click()
    assert highlight.get_attribute("stroke-dasharray") == "2 1"
    assert browser.execute_script(
        'return document.getElementById("info-image").naturalWidth') == THUMB
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []
