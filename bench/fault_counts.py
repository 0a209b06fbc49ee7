"""Run the fault-injection suite (``tests/test_faults_*.py``) and print what it injected and what survived.

    GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/fault_counts.py

Each test records what it did (``tests/fault_server.py:record``) into a temporary JSONL file: a fault injected and
whether the guardrail survived it (never ``allow``, the failure named, the documented exit code, a damaged index
refused), a bad input tried and whether it was handled (a clear error naming file/line/field, the other rows kept), and
for every audit run the rows in / out / lost / duplicated. A test records only after its assertions held, so a fault
whose test failed is missing from the counts, and the run reports the failed tests. Exit code 0 only when pytest
passed, everything recorded survived / was handled, and no row was lost or duplicated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        counts = Path(tmp) / "counts.jsonl"
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "FAULT_COUNTS_FILE": str(counts)}
        tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_faults_*.py"))
        proc = subprocess.run([sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                               *tests], cwd=ROOT, env=env, capture_output=True, text=True)
        records = [json.loads(x) for x in counts.read_text().splitlines()] if counts.exists() else []
        failed = _failed_tests(junit)
    faults = [r for r in records if r["kind"] == "fault"]
    inputs = [r for r in records if r["kind"] == "input"]
    audits = [r for r in records if r["kind"] == "audit"]
    survived = sum(1 for r in faults if r.get("survived"))
    handled = sum(1 for r in inputs if r.get("handled"))
    lost = sum(r["lost"] for r in audits)
    dup = sum(r["duplicated"] for r in audits)
    by_group = Counter(r["name"].split("-", 1)[0] if r["name"].startswith(("index", "audit")) else "backend"
                       for r in faults)
    print(f"pytest: {' '.join(proc.stdout.strip().splitlines()[-1:])} ({len(tests)} files)")
    print(f"faults injected {len(faults)}, survived {survived} "
          f"(backend {by_group['backend']}, audit {by_group['audit']}, index {by_group['index']})")
    print(f"bad inputs tried {len(inputs)}, handled {handled}")
    print(f"audit runs {len(audits)}: rows in {sum(r['rows_in'] for r in audits)}, out "
          f"{sum(r['rows_out'] for r in audits)}, lost {lost}, duplicated {dup}")
    if failed:
        print("FAILED tests: " + ", ".join(failed))
    ok = proc.returncode == 0 and survived == len(faults) and handled == len(inputs) and not lost and not dup
    print("all survived, 0 lost" if ok else "NOT all survived / handled, or rows lost")
    return 0 if ok else 1


def _failed_tests(junit: Path) -> list[str]:
    if not junit.exists():
        return ["(no junit report: pytest did not run)"]
    import xml.etree.ElementTree as ET

    out = []
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            out.append(f"{case.get('classname')}::{case.get('name')}")
    return out


if __name__ == "__main__":
    sys.exit(main())
