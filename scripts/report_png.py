"""Render an audit's HTML report to PNG pages, to look at it as a reader would (no browser needed).

    pip install weasyprint pypdfium2          # a CSS layout engine and a PDF rasteriser (not project dependencies)
    python scripts/report_png.py OUT_DIR/report.html --width 1280 --width 390 --out /tmp/report-png

WeasyPrint lays out HTML and CSS (no JavaScript: the report's filters and sorting are not exercised, the static
layout, the cards and the inline SVG charts are); each width is one tall page per screen's worth, written as
``report_<width>_<n>.png``. The narrow width is a phone's.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--width", type=int, action="append", help="page width in CSS px (repeatable)")
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--pages", type=int, default=3, help="pages to rasterise per width")
    ap.add_argument("--out", type=Path, default=Path("report-png"))
    a = ap.parse_args()
    import pypdfium2
    import weasyprint

    a.out.mkdir(parents=True, exist_ok=True)
    for w in a.width or [1280, 390]:
        pdf_path = a.out / f"report_{w}.pdf"
        css = weasyprint.CSS(string=f"@page {{ size: {w}px {a.height}px; margin: 0 }}")
        weasyprint.HTML(str(a.report)).write_pdf(pdf_path, stylesheets=[css])
        pdf = pypdfium2.PdfDocument(str(pdf_path))
        for i in range(min(a.pages, len(pdf))):
            png = a.out / f"report_{w}_{i}.png"
            pdf[i].render(scale=1).to_pil().save(png)
            print(png)


if __name__ == "__main__":
    main()
