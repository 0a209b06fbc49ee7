"""Plain-text loader: each paragraph (block separated by blank lines) becomes a unit ``sec_N`` (kind ``text``).

A short first line without a final period (a title) is kept as the heading of every unit rather than made a unit.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "policy.txt"
    >>> _ = p.write_text("Acme AI policy\\n\\nModels are tested first.\\n\\nIncidents are reported in 24 hours.\\n")
    >>> [(u.local_id, u.text) for u in load_text(p, "acme")]
    [('sec_1', 'Models are tested first.'), ('sec_2', 'Incidents are reported in 24 hours.')]
    >>> load_text(p, "acme")[1].heading
    'Acme AI policy — paragraph 2'
"""

from __future__ import annotations

import re
from pathlib import Path

from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.ingest.base import check_doc_id, make_unit, read_text


def paragraphs(text: str) -> list[str]:
    return [b.strip("\n") for b in re.split(r"\n[ \t]*\n", text) if b.strip()]


def load_text(path: str | Path, doc: str) -> list[Unit]:
    path = Path(path)
    doc = check_doc_id(doc, str(path))
    blocks = paragraphs(read_text(path, expected="a UTF-8 text file"))
    title = ""
    if len(blocks) > 1 and "\n" not in blocks[0] and len(blocks[0].split()) <= 12 and \
            not blocks[0].rstrip().endswith((".", ";", ":", ",")):
        title = blocks.pop(0).strip()
    units = []
    for n, b in enumerate(blocks, start=1):
        heading = f"{title} — paragraph {n}" if title else f"Paragraph {n}"
        units.append(make_unit(doc, f"sec_{n}", "text", b, source_file=path.name, heading=heading, number=str(n)))
    return units
