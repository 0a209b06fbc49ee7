"""Batch compliance audits: read a JSONL/CSV of AI outputs, check each one (concurrent, resumable), report.

    reader.py  input rows with per-row validation (a bad row becomes an error row, the run goes on)
    runner.py  the concurrent, resumable runner writing ``verdicts.jsonl`` (append + fsync per row)
    report.py  ``summary.json``, ``report.html`` (inline CSS + SVG charts) and ``report.md``

The command is ``mad-guardrails audit INPUT`` (``guardrails/commands/audit.py``).
"""
