"""An audit's rows and results without holding them: what lets ``audit --engine ray`` run past memory.

* :class:`RowSource`: the input file, read again block by block on every pass (JSONL line by line, Parquet a record
  batch at a time; see :func:`~mad_guardrails.guardrails.audit.reader.iter_rows`), never a list of rows;
* :class:`IdStore`: the results file of the local engine (``verdicts.jsonl``: append + fsync per row, the first row
  per id wins, repaired on open, rewritten in input order at the end) keeping per id only its decision, not the row;
* :class:`ResultFile`: the finished results read back from that file when the reports ask for them.

What the driver still holds per row is its id (to refuse a duplicate id, skip finished ones and put the file in input
order): tens of bytes, not the row or its verdict.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "in.jsonl").write_text('{"id": "a", "output": "x"}\\n{"id": "a", "output": "y"}\\n')
    >>> src = RowSource(d / "in.jsonl")
    >>> [r.id for r in src], len(src)
    (['a', 'a#line2'], 2)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from mad_guardrails.core.errors import InputError
from mad_guardrails.guardrails.audit.reader import DEFAULT_MAX_CHARS, AuditRow, iter_rows
from mad_guardrails.guardrails.audit.runner import ResultRow, ResultStore, atomic_write, file_lines, scan_results


class RowSource:
    """The rows of an input file as an iterable read afresh on each pass (file-level problems, and an input without
    rows, raise :class:`InputError` at once); ``len()`` is known after the first full pass."""

    def __init__(self, path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS, limit: int | None = None):
        self.path, self.max_chars, self.limit = Path(path), max_chars, limit
        self._len: int | None = None
        if next(iter(self), None) is None:
            raise InputError("the input has no rows", where=str(self.path),
                             fix="write one JSON object per line (JSONL) or a header plus rows (CSV), each with "
                                 "'output'")

    def __iter__(self) -> Iterator[AuditRow]:
        n = 0
        for row in iter_rows(self.path, max_chars=self.max_chars, limit=self.limit):
            n += 1
            yield row
        self._len = n

    def __len__(self) -> int:
        if self._len is None:
            for _ in self:
                pass
        return self._len or 0


class Brief(NamedTuple):
    """What the driver keeps of a finished row (named as on :class:`ResultRow`, so ``Counts.add_row`` takes it)."""

    decision: str
    infra_fault: bool

    @classmethod
    def of(cls, row: ResultRow) -> Brief:
        return cls(row.decision, row.infra_fault)


class IdStore(ResultStore):
    """:class:`~mad_guardrails.guardrails.audit.runner.ResultStore` over the same file with the same rules, read and
    rewritten line by line; ``rows`` maps each finished id to its :class:`Brief`, not to the row."""

    rows: dict[str, Brief]  # type: ignore[assignment]

    def load(self) -> dict[str, Brief]:
        self.rows, self.repaired = {}, []
        keep: list[int] = []  # offsets of the lines kept, for a repair
        for offset, row in scan_results(self.path, self.repaired):
            self.rows[row.id] = Brief.of(row)
            keep.append(offset)
        if self.repaired:
            self._copy(keep)
        return self.rows

    def _copy(self, offsets: Iterable[int]) -> None:
        """Rewrite the file as the lines starting at ``offsets``, in that order (atomically, fsynced)."""
        self.close()

        def lines() -> Iterator[bytes]:
            with open(self.path, "rb") as src:
                for off in offsets:
                    src.seek(off)
                    yield src.readline()

        atomic_write(self.path, lines())

    def _offsets(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for offset, line in file_lines(self.path) if self.path.exists() else ():
            if line.strip():
                out.setdefault(json.loads(line)["id"], offset)
        return out

    def append(self, row: ResultRow) -> None:
        super().append(row)
        self.rows[row.id] = Brief.of(row)

    def drop(self, ids: Iterable[str]) -> int:
        gone = {i for i in ids if i in self.rows}
        if gone:
            for i in gone:
                del self.rows[i]
            self._copy(off for i, off in self._offsets().items() if i not in gone)
        return len(gone)

    def finalize(self, order: Iterable[str]) -> int:  # type: ignore[override]
        """Rewrite the file in input ``order``, one row per input id (ids not in the input dropped); returns how many
        rows it holds."""
        offsets = self._offsets()
        kept: list[int] = []
        rows: dict[str, Brief] = {}
        for i in order:
            if i in offsets and i not in rows:
                kept.append(offsets[i])
                rows[i] = self.rows[i]
        if kept != sorted(offsets.values()):  # not already the file as it stands
            self._copy(kept)
        self.rows = rows
        return len(rows)


class ResultFile(Sequence):
    """The rows of a finished ``verdicts.jsonl``, parsed from the file on each pass (what the reports iterate)."""

    def __init__(self, path: Path, n: int):
        self.path, self.n = Path(path), n

    def __iter__(self) -> Iterator[ResultRow]:
        if not self.n:
            return
        with open(self.path, "rb") as f:
            for line in f:
                if line.strip():
                    yield ResultRow.model_validate_json(line)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, step = i.indices(self.n)
            if step < 0:
                return list(self)[i]
            return list(islice(self, start, stop, step))
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        return next(islice(self, i, None))


__all__ = ["Brief", "IdStore", "ResultFile", "RowSource"]
