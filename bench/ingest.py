"""Corpus ingestion speed: all acts of the shared corpus (or --corpus DIR), per act and per format.

    python bench/ingest.py [--corpus ../shared/data/corpus] [--repeat 3] [--formats]

Prints, measured in this run: seconds to ingest each act folder (structured JSONL + NIST Markdown prose, with the
paragraph/point sub-units), unit and passage counts, save/load of the ingested corpus, and with --formats the
alternative loaders (EUR-Lex HTML, Markdown, PDF) on the shared sample files. Target (issue "Foundation and
regulatory retrieval"): all eight acts in < 20 s on the CPU of the dev machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), out


def main() -> None:
    from mad_guardrails.core.paths import shared_corpus
    from mad_guardrails.retrieval.corpus import Corpus, load_corpus
    from mad_guardrails.retrieval.ingest import act_folders, ingest_act_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpus())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", action="store_true", help="also time the HTML / Markdown / PDF loaders")
    args = ap.parse_args()
    if args.corpus is None:
        raise SystemExit("no corpus: pass --corpus DIR (a folder like shared/data/corpus)")

    print(f"corpus: {args.corpus}  (best / median of {args.repeat})")
    print(f"{'act':<15} {'best s':>7} {'med s':>7} {'top':>6} {'units':>7}")
    for folder in act_folders(args.corpus):
        best, med, (units, _) = _best(lambda f=folder: ingest_act_dir(f, f.name), args.repeat)
        c = Corpus()
        c.add_act(folder.name, units)
        print(f"{folder.name:<15} {best:7.3f} {med:7.3f} {len(c.top_units()):6d} {len(units):7d}")

    best, med, corpus = _best(lambda: load_corpus(args.corpus), args.repeat)
    print(f"{'ALL (load_corpus)':<15} {best:7.3f} {med:7.3f} {len(corpus.top_units()):6d} {len(corpus):7d}")
    best, med, ps = _best(lambda: corpus.passages(max_words=180), args.repeat)
    print(f"passages(max_words=180): {len(ps)} in {best:.3f} s (median {med:.3f})")
    with tempfile.TemporaryDirectory() as d:
        best, _, _ = _best(lambda: corpus.save(d), args.repeat)
        print(f"save: {best:.3f} s", end="  ")
        best, _, _ = _best(lambda: Corpus.load(d), args.repeat)
        print(f"load saved: {best:.3f} s")

    if args.formats:
        from mad_guardrails.retrieval.ingest import load_file

        samples = [
            ("eu-ai-act", args.corpus / "eu-ai-act" / "source" / "L_202401689EN.000101.fmx.xml.html"),
            ("eu-ai-act", args.corpus / "eu-ai-act" / "eu_ai_act_2024-1689_en.md"),
            ("nist-csf-2.0", args.corpus / "nist-csf-2.0" / "NIST.CSWP.29.pdf"),
        ]
        for doc, path in samples:
            if path.exists():
                best, _, units = _best(lambda p=path, d=doc: load_file(p, d), 1)
                print(f"{path.suffix:<6} {path.name:<45} {best:7.3f} s  {len(units)} units")


if __name__ == "__main__":
    main()
