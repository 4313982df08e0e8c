"""A small static HTML report: headings, paragraphs, images and tables in one file.

Images are **referenced by relative path** (``<img src="figures/sweep.png">``), not embedded:
the HTML stays small and diffable, and the report folder (HTML plus its images) is what you
copy or archive. All text — headings, paragraphs, captions, table cells, the title — is
HTML-escaped, so names such as ``A + 2B -> 3B`` or ``<x>`` show literally. The page needs
no script and no network access (styles are inline).

>>> report = HtmlReport("Gray-Scott sweep")
>>> report.add_heading("Final states")
>>> report.add_image("sweep.png", caption="f × k, species V")
>>> report.add_table([[0.03, 0.06, "spots"]], header=["f", "k", "class"])
>>> report.write("runs/sweep/report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np

from rdlab.errors import ParameterError

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 70em; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #555; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; }
""".strip()


@dataclass(frozen=True)
class _Image:
    """An image block of a report: path, caption, alt text and CSS width."""

    path: str | Path
    caption: str | None
    alt: str | None
    width: int | None


def _format_cell(value: object, float_format: str) -> tuple[str, bool]:
    """Return the text of a table cell and whether it is numeric."""
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        return format(value, float_format), True
    if isinstance(value, np.integer):
        return str(int(value)), True
    if isinstance(value, np.floating):
        return format(float(value), float_format), True
    return ("" if value is None else str(value)), False


class HtmlReport:
    """Builder of one static HTML page. Add blocks in order, then :meth:`write`.

    Parameters
    ----------
    title : str
        Title of the page (its ``<title>`` and ``<h1>``).
    """

    def __init__(self, title: str) -> None:
        self.title = str(title)
        self._blocks: list[str | _Image] = []

    def add_heading(self, text: str, level: int = 2) -> None:
        """Add a heading ``<h{level}>``.

        Parameters
        ----------
        text : str
            The heading.
        level : int, default 2
            1–6 (the title is already an ``<h1>``).

        Raises
        ------
        ParameterError
            For a level outside 1–6.
        """
        if level not in range(1, 7):
            raise ParameterError(f"heading level must be 1–6, got {level!r}")
        self._blocks.append(f"<h{level}>{html.escape(str(text))}</h{level}>")

    def add_paragraph(self, text: str) -> None:
        """Add a paragraph of plain text (escaped; blank lines start new paragraphs).

        Parameters
        ----------
        text : str
            The text.
        """
        for part in str(text).split("\n\n"):
            if part.strip():
                self._blocks.append(f"<p>{html.escape(part.strip())}</p>")

    def add_preformatted(self, text: str) -> None:
        """Add a block of monospaced text (e.g. reaction lists or a config), escaped.

        Parameters
        ----------
        text : str
            The text.
        """
        self._blocks.append(f"<pre>{html.escape(str(text))}</pre>")

    def add_image(
        self,
        path: str | Path,
        caption: str | None = None,
        *,
        alt: str | None = None,
        width: int | None = None,
    ) -> None:
        """Add an image by path **relative to the report file**.

        An absolute path is made relative to the report's folder when written.

        Parameters
        ----------
        path : str or Path
            The image.
        caption : str or None, optional
            Caption below the image.
        alt : str or None, optional
            Alternative text.
        width : int or None, optional
            Display width in CSS pixels.

        Raises
        ------
        ParameterError
            For a width that is not a positive integer.
        """
        if width is not None and (int(width) != width or width < 1):
            raise ParameterError(f"image width must be a positive integer, got {width!r}")
        self._blocks.append(_Image(path, caption, alt, width))

    def add_table(
        self,
        rows: Iterable[Sequence[object]],
        header: Sequence[str] | None = None,
        *,
        float_format: str = ".4g",
        caption: str | None = None,
    ) -> None:
        """Add a table.

        Cells are escaped text; numbers are formatted with ``float_format`` and right-aligned.

        Parameters
        ----------
        rows : iterable of sequence
            The rows.
        header : sequence of str or None, optional
            Column headings.
        float_format : str, default ".4g"
            Format of numeric cells.
        caption : str or None, optional
            Caption of the table.

        Raises
        ------
        ParameterError
            For a row with another number of cells than the header.
        """
        rows = [list(r) for r in rows]
        width = len(header) if header is not None else (len(rows[0]) if rows else 0)
        for i, r in enumerate(rows):
            if header is not None and len(r) != width:
                raise ParameterError(f"table row {i} has {len(r)} cells; header has {width}")
        parts = ["<table>"]
        if caption:
            parts.append(f"<caption>{html.escape(str(caption))}</caption>")
        if header is not None:
            cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            parts.append(f"<thead><tr>{cells}</tr></thead>")
        parts.append("<tbody>")
        for r in rows:
            cells = []
            for value in r:
                text, numeric = _format_cell(value, float_format)
                cls = ' class="num"' if numeric else ""
                cells.append(f"<td{cls}>{html.escape(text)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
        self._blocks.append("".join(parts))

    def _image_html(self, img: _Image, base: Path | None) -> str:
        """Return the HTML of one image, its path made relative to ``base``."""
        p = Path(img.path)
        if p.is_absolute():
            if base is None:
                raise ParameterError(
                    f"image path {str(p)!r} is absolute; pass a path relative to the report "
                    f"or write the report to a file"
                )
            p = Path(os.path.relpath(p, base))
        src = quote(PurePosixPath(*p.parts).as_posix(), safe="/._-~")
        alt = img.alt if img.alt is not None else (img.caption or p.name)
        width = f' width="{int(img.width)}"' if img.width is not None else ""
        tag = f'<img src="{html.escape(src)}" alt="{html.escape(alt)}"{width}>'
        cap = f"<figcaption>{html.escape(img.caption)}</figcaption>" if img.caption else ""
        return f"<figure>{tag}{cap}</figure>"

    def image_paths(self) -> list[Path]:
        """Return the image paths added so far, as given.

        Returns
        -------
        list of Path
            The paths.
        """
        return [Path(b.path) for b in self._blocks if isinstance(b, _Image)]

    def to_html(self, base: str | Path | None = None) -> str:
        """Return the whole page.

        Parameters
        ----------
        base : str or Path or None, optional
            The report's folder (to relativise absolute image paths).

        Returns
        -------
        str
            The HTML.

        Raises
        ------
        ParameterError
            For an absolute image path without ``base``.
        """
        base_path = Path(base) if base is not None else None
        body = [
            b if isinstance(b, str) else self._image_html(b, base_path) for b in self._blocks
        ]
        title = html.escape(self.title)
        return "\n".join([
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title}</title>",
            f"<style>\n{_STYLE}\n</style>",
            "</head>",
            "<body>",
            f"<h1>{title}</h1>",
            *body,
            "</body>",
            "</html>",
            "",
        ])

    def write(self, path: str | Path, *, check_images: bool = True) -> Path:
        """Write the page to ``path`` (UTF-8; parent folders created).

        Parameters
        ----------
        path : str or Path
            The HTML file.
        check_images : bool, default True
            Refuse to write a page whose referenced images are missing from the report's
            folder (so a broken report is not written silently).

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        FileNotFoundError
            Naming every referenced image that is missing (with ``check_images``).
        """
        path = Path(path)
        base = path.parent.resolve()
        if check_images:
            missing = [
                str(p) for p in self.image_paths()
                if not (p if p.is_absolute() else base / p).is_file()
            ]
            if missing:
                raise FileNotFoundError(
                    f"report images not found (paths are relative to {base}): {missing}"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(base), encoding="utf-8")
        return path
