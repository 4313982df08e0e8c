"""A self-contained HTML explorer of a parameter scan.

:func:`write_explorer` writes one HTML file — no other files, no network, no library — that
shows the (k, f) phase map as an inline SVG (one ``<rect>`` per point, coloured as in
:func:`rdlab.viz.classify_figures.class_colors`, legend of the class symbols) and a side
panel. Hovering over a cell shows that point's pattern (a small PNG embedded as a data
URI), its ``k`` and ``f`` at full precision and its most probable classes; a click pins
the point (the panel then returns to it when the pointer leaves the map; a second click
unpins).

All per-point data live in one JSON object inside ``<script type="application/json"
id="scan-data">``: ``classes``, ``colors`` (``#rrggbb``), ``k``, ``f``, ``label`` (−1:
unclassified), ``prob`` (rows rounded to :data:`PROB_DECIMALS` decimals), ``img`` (index into
``images``, data URIs; identical thumbnails, e.g. of homogeneous states, are stored once) and
``top``. Each cell carries ``data-i`` (point index), ``data-k`` and ``data-f`` (the values as
Python's ``repr`` writes them). Panel elements: ``#info-image``, ``#info-k``, ``#info-f``,
``#info-class``, ``#info-probs``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from rdlab.errors import ParameterError
from rdlab.viz.classify_figures import (
    UNCLASSIFIED_NAME,
    cell_size,
    class_colors,
    pattern_rgb,
)
from rdlab.viz.classify_map_inputs import (
    check_classes,
    check_coords,
    check_labels,
    check_positive_ints,
    check_probabilities,
)

#: Decimals kept of each class probability in the embedded data.
PROB_DECIMALS = 6
#: Longer side of the map drawing, CSS pixels (cells are square, 3–24 px).
MAP_PX = 620
#: Palette size of colour (time-dependent) thumbnails; grey ones are stored losslessly.
THUMB_COLORS = 128
#: Points converted to thumbnails at a time (bounds the float64 working memory).
_CHUNK = 128

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1em;
       color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .5em 0; }
#wrap { display: flex; align-items: flex-start; gap: 1.5em; flex-wrap: wrap; }
#map { flex: none; user-select: none; }
#map rect[data-i] { cursor: pointer; }
#map text { font-size: 11px; fill: #333; }
#panel { position: sticky; top: 1em; width: 17em; border: 1px solid #ccc; border-radius: 4px;
         padding: .8em; background: #fafafa; }
#info-image { display: block; image-rendering: pixelated; background: #eee;
              border: 1px solid #bbb; margin-bottom: .6em; object-fit: contain; }
.row { margin: .15em 0; font-variant-numeric: tabular-nums; }
.lbl { color: #666; }
#info-probs { margin: .4em 0 0 0; padding-left: 1.4em; }
#info-probs li { font-variant-numeric: tabular-nums; }
.sw { display: inline-block; width: .9em; height: .9em; border: 1px solid #555;
      vertical-align: -.1em; margin-right: .35em; }
.hatch { background: repeating-linear-gradient(45deg, #fff 0 2px, #999 2px 3px); }
#legend { list-style: none; padding: 0; margin: .8em 0 0 0; columns: 2; font-size: .95em; }
#legend li { margin: .1em 0; }
#hint { color: #666; font-size: .85em; margin-top: .8em; }
""".strip()

_SCRIPT = """
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("scan-data").textContent);
  var map = document.getElementById("map");
  var cells = map.querySelectorAll("rect[data-i]");
  var hl = document.getElementById("highlight");
  var img = document.getElementById("info-image");
  var ek = document.getElementById("info-k");
  var ef = document.getElementById("info-f");
  var ec = document.getElementById("info-class");
  var ep = document.getElementById("info-probs");
  var pinned = -1;
  var shown = -1;

  function swatch(color) {
    var s = document.createElement("span");
    s.className = "sw";
    if (color) { s.style.background = color; } else { s.className = "sw hatch"; }
    return s;
  }

  function indexOf(el) {
    if (!el || !el.getAttribute) { return -1; }
    var v = el.getAttribute("data-i");
    return v === null ? -1 : parseInt(v, 10);
  }

  function show(i) {
    if (i < 0 || i >= cells.length) { return; }
    shown = i;
    var cell = cells[i];
    img.src = D.images[D.img[i]];
    img.alt = "pattern at k = " + cell.getAttribute("data-k") +
      ", f = " + cell.getAttribute("data-f");
    ek.textContent = cell.getAttribute("data-k");
    ef.textContent = cell.getAttribute("data-f");
    var lab = D.label[i];
    ec.textContent = "";
    ec.appendChild(swatch(lab >= 0 ? D.colors[lab] : null));
    ec.appendChild(document.createTextNode(lab >= 0 ? D.classes[lab] : D.unclassified));
    var p = D.prob[i];
    var order = p.map(function (_, j) { return j; });
    order.sort(function (a, b) { return p[b] - p[a] || a - b; });
    ep.textContent = "";
    for (var r = 0; r < Math.min(D.top, order.length); r++) {
      var j = order[r];
      var li = document.createElement("li");
      li.appendChild(swatch(D.colors[j]));
      li.appendChild(document.createTextNode(
        D.classes[j] + " " + (100 * p[j]).toFixed(1) + "%"));
      ep.appendChild(li);
    }
    hl.setAttribute("x", cell.getAttribute("x"));
    hl.setAttribute("y", cell.getAttribute("y"));
    hl.setAttribute("visibility", "visible");
    hl.setAttribute("stroke-dasharray", i === pinned ? "none" : "2 1");
  }

  map.addEventListener("mouseover", function (e) {
    var i = indexOf(e.target);
    if (i >= 0) { show(i); }
  });
  map.addEventListener("mouseleave", function () {
    if (pinned >= 0) { show(pinned); }
  });
  map.addEventListener("click", function (e) {
    var i = indexOf(e.target);
    if (i < 0) { return; }
    pinned = (pinned === i) ? -1 : i;
    show(i);
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { pinned = -1; if (shown >= 0) { show(shown); } }
  });
})();
""".strip()


def _hex(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def _script_json(obj: object) -> str:
    r"""Return JSON text safe inside a ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as ``\u003c`` … escapes (so no ``</script>`` or
    ``<!--`` can appear); still valid JSON.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _encode_png(im: Image.Image) -> bytes:
    """Return the PNG bytes of an RGB thumbnail.

    8-bit grey when the three channels agree within one level (a stationary pattern), else a
    :data:`THUMB_COLORS`-colour adaptive palette.
    """
    a = np.asarray(im, dtype=np.int16)
    spread = np.abs(a - a[..., 1:2]).max()
    if int(spread) <= 1:
        out = Image.fromarray(np.ascontiguousarray(np.asarray(im)[..., 1]))
    else:
        out = im.quantize(colors=THUMB_COLORS, method=Image.Quantize.MEDIANCUT,
                          dither=Image.Dither.NONE)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _thumbnails(images: np.ndarray, thumb_size: int) -> tuple[list[str], list[int]]:
    """Return PNG data URIs of the distinct thumbnails and, per point, the index of its own.

    ``images (n, y, x)`` or ``(n, C, y, x)`` → RGB as in :func:`pattern_rgb`, resized so the
    longer side is ``thumb_size`` pixels (box filter when shrinking, nearest when enlarging).
    """
    h, w = images.shape[-2:]
    scale = thumb_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.NEAREST
    uris: list[str] = []
    seen: dict[bytes, int] = {}
    index: list[int] = []
    for start in range(0, images.shape[0], _CHUNK):
        rgb = pattern_rgb(images[start:start + _CHUNK])
        for panel in rgb:
            im = Image.fromarray(panel)
            if size != (w, h):
                im = im.resize(size, resample)
            png = _encode_png(im)
            j = seen.get(png)
            if j is None:
                j = seen[png] = len(uris)
                uris.append("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
            index.append(j)
    return uris, index


def _ticks(lo: float, hi: float) -> np.ndarray:
    from matplotlib.ticker import MaxNLocator

    t = MaxNLocator(nbins=6).tick_values(lo, hi)
    span = hi - lo
    return t[(t >= lo - 1e-9 * span) & (t <= hi + 1e-9 * span)]


def _svg(k: np.ndarray, f: np.ndarray, lab: np.ndarray, colors: list[str], dk: float,
         df: float) -> str:
    """Return the map: an ``<svg id="map">`` with one ``<rect data-i data-k data-f>`` per point."""
    kmin, kmax = float(k.min()), float(k.max())
    fmin, fmax = float(f.min()), float(f.max())
    nx = (kmax - kmin) / dk + 1.0
    ny = (fmax - fmin) / df + 1.0
    cell = min(24.0, max(3.0, MAP_PX / max(nx, ny)))
    left, top, right, bottom = 62.0, 10.0, 12.0, 44.0
    pw, ph = nx * cell, ny * cell
    width, height = left + pw + right, top + ph + bottom

    def px(kv: float) -> float:
        return left + ((kv - kmin) / dk + 0.5) * cell

    def py(fv: float) -> float:
        return top + ((fmax - fv) / df + 0.5) * cell

    out = [
        f'<svg id="map" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.2f} {height:.2f}" '
        f'shape-rendering="crispEdges" role="img" aria-label="phase map, x = k, y = f">',
        '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="4" height="4" fill="#fff"/>'
        '<line x1="0" y1="0" x2="0" y2="4" stroke="#999" stroke-width="1.5"/></pattern></defs>',
        f'<rect x="{left:.2f}" y="{top:.2f}" width="{pw:.2f}" height="{ph:.2f}" fill="#fff" '
        f'stroke="#888" stroke-width="0.5"/>',
        '<g id="cells">',
    ]
    size = f"{cell:.3f}"
    for i in range(k.size):
        x = px(k[i]) - cell / 2
        y = py(f[i]) - cell / 2
        fill = colors[lab[i]] if lab[i] >= 0 else "url(#hatch)"
        out.append(
            f'<rect x="{x:.2f}" y="{y:.2f}" width="{size}" height="{size}" fill="{fill}" '
            f'data-i="{i}" data-k="{float(k[i])!r}" data-f="{float(f[i])!r}"/>'
        )
    out.append("</g>")
    # Axes: ticks, tick labels and axis names.
    axis = ['<g id="axes" stroke="#333" stroke-width="0.8" shape-rendering="auto">']
    x_axis, y_axis = top + ph, left
    for t in _ticks(kmin - dk / 2, kmax + dk / 2):
        x = px(float(t))
        axis.append(f'<line x1="{x:.2f}" y1="{x_axis:.2f}" x2="{x:.2f}" y2="{x_axis + 5:.2f}"/>')
        axis.append(f'<text x="{x:.2f}" y="{x_axis + 17:.2f}" text-anchor="middle" '
                    f'stroke="none">{float(t):.4g}</text>')
    for t in _ticks(fmin - df / 2, fmax + df / 2):
        y = py(float(t))
        axis.append(f'<line x1="{y_axis - 5:.2f}" y1="{y:.2f}" x2="{y_axis:.2f}" y2="{y:.2f}"/>')
        axis.append(f'<text x="{y_axis - 8:.2f}" y="{y + 4:.2f}" text-anchor="end" '
                    f'stroke="none">{float(t):.4g}</text>')
    axis.append(f'<text x="{left + pw / 2:.2f}" y="{height - 6:.2f}" text-anchor="middle" '
                f'stroke="none" font-style="italic" style="font-size:14px">k</text>')
    axis.append(f'<text x="16" y="{top + ph / 2:.2f}" text-anchor="middle" stroke="none" '
                f'font-style="italic" style="font-size:14px">f</text>')
    axis.append("</g>")
    out.extend(axis)
    out.append(f'<rect id="highlight" x="0" y="0" width="{size}" height="{size}" fill="none" '
               f'stroke="#000" stroke-width="2" pointer-events="none" visibility="hidden" '
               f'shape-rendering="auto"/>')
    out.append("</svg>")
    return "\n".join(out)


def write_explorer(
    path: str | Path,
    k: np.ndarray | Sequence[float],
    f: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    classes: Sequence[str],
    probabilities: np.ndarray,
    images: np.ndarray,
    *,
    title: str = "Gray–Scott phase map",
    thumb_size: int = 64,
    top: int = 3,
    unlabelled: str = UNCLASSIFIED_NAME,
) -> Path:
    """Write a self-contained, interactive HTML phase map of a scan.

    The map draws cells in the given order, so a later point at the same (k, f) covers an
    earlier one (as in the paper's plot of overlapping scan blocks); each point still has its
    own cell element.

    Parameters
    ----------
    path : str or Path
        The HTML file to write (UTF-8; parent folders created).
    k, f : array_like
        ``(n,)`` Gray–Scott parameters of each point (x and y of the map).
    labels : array_like of int
        ``(n,)`` predicted class index into ``classes``; −1 = unclassified (hatched).
    classes : sequence of str
        Class symbols (e.g. ``["α", …, "ν", "L", "H"]``), coloured with
        :func:`~rdlab.viz.classify_figures.class_colors`.
    probabilities : numpy.ndarray
        ``(n, len(classes))`` class probabilities, rows summing to 1 (±1e-3).
    images : numpy.ndarray
        ``(n, C, y, x)`` U at ``C`` snapshot times (first, middle and last shown as R, G, B;
        the paper's three snapshots) or ``(n, y, x)``; the fixed display range is
        U ∈ [0, 1] (clipped). Each becomes a PNG thumbnail whose longer side is
        ``thumb_size`` pixels.
    title : str, optional
        Page title and heading (escaped).
    thumb_size : int, optional
        Thumbnail size in pixels (default 64: about 2–8 kB per distinct non-uniform
        pattern; use 48 or 32 to shrink a large scan's file).
    top : int, optional
        How many of the most probable classes the panel lists (default 3).
    unlabelled : str, optional
        What points labelled −1 are called (default "unclassified"; a classification with
        a confidence threshold calls them "unconfident").

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        Length mismatches, labels out of range, badly shaped or unnormalised
        probabilities, badly shaped images, non-positive ``thumb_size`` or ``top``.
    """
    k_arr, f_arr = check_coords(k, f)
    names = check_classes(classes)
    n = k_arr.size
    lab = check_labels(labels, n, len(names))
    prob = check_probabilities(probabilities, n, len(names))
    imgs = _check_images(images, n)
    check_positive_ints(thumb_size=thumb_size, top=top)
    dk, df = cell_size(k_arr, f_arr)
    colors = [_hex(c) for c in class_colors(names)]
    uris, img_index = _thumbnails(imgs, int(thumb_size))
    data = {
        "title": str(title), "classes": names, "colors": colors,
        "unclassified": str(unlabelled), "top": int(top),
        "k": [float(v) for v in k_arr], "f": [float(v) for v in f_arr],
        "label": [int(v) for v in lab], "prob": np.round(prob, PROB_DECIMALS).tolist(),
        "img": img_index, "images": uris,
    }
    page = _page(str(title), _svg(k_arr, f_arr, lab, colors, dk, df),
                 _legend(names, colors, lab, str(unlabelled)), data, n, int(thumb_size),
                 int(top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _check_images(images: np.ndarray, n: int) -> np.ndarray:
    """Return ``images`` as an array of ``n`` patterns, ``(n, C, y, x)`` or ``(n, y, x)``."""
    imgs = np.asarray(images)
    if imgs.ndim not in (3, 4) or imgs.shape[0] != n or 0 in imgs.shape[1:]:
        raise ParameterError(
            f"images must have shape (n, C, y, x) or (n, y, x) with n = {n} points, "
            f"got {imgs.shape}"
        )
    return imgs


def _legend(names: list[str], colors: list[str], lab: np.ndarray,
            unlabelled: str = UNCLASSIFIED_NAME) -> str:
    """Return the legend's items: each class present, then the unlabelled (−1), with counts."""
    present = [c for c in range(len(names)) if np.any(lab == c)]
    legend = [
        f'<li><span class="sw" style="background:{colors[c]}"></span>'
        f"{html.escape(names[c])} <span class=\"lbl\">({int(np.sum(lab == c))})</span></li>"
        for c in present
    ]
    if np.any(lab < 0):
        legend.append(f'<li><span class="sw hatch"></span>{html.escape(unlabelled)} '
                      f'<span class="lbl">({int(np.sum(lab < 0))})</span></li>')
    return "".join(legend)


def _page(title: str, svg: str, legend: str, data: dict, n: int, thumb_size: int,
          top: int) -> str:
    """Return the HTML page: the map, the side panel, the embedded data and the script."""
    esc_title = html.escape(title)
    thumb_px = max(96, min(256, 3 * thumb_size))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc_title}</title>",
        f"<style>\n{_STYLE}\n#info-image {{ width: {thumb_px}px; height: {thumb_px}px; }}\n"
        "</style>",
        "</head>",
        "<body>",
        f"<h1>{esc_title}</h1>",
        '<div id="wrap">',
        svg,
        '<div id="panel">',
        '<img id="info-image" alt="no point selected">',
        '<div class="row"><span class="lbl">k = </span><span id="info-k">–</span></div>',
        '<div class="row"><span class="lbl">f = </span><span id="info-f">–</span></div>',
        '<div class="row"><span class="lbl">class: </span><span id="info-class">–</span></div>',
        f'<div class="row lbl">top {top} probabilities:</div>',
        '<ol id="info-probs"></ol>',
        f'<ul id="legend">{legend}</ul>',
        f'<p id="hint">{n} points. Hover over a cell to see its pattern (U at the '
        "first, middle and last snapshot as R, G, B; grey = stationary); click to pin it, "
        "click again or press Esc to unpin.</p>",
        "</div>",
        "</div>",
        f'<script type="application/json" id="scan-data">{_script_json(data)}</script>',
        f"<script>\n{_SCRIPT}\n</script>",
        "</body>",
        "</html>",
        "",
    ])
