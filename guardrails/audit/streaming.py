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
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from mad_guardrails.core.errors import InputError
from mad_guardrails.guardrails.audit.reader import DEFAULT_MAX_CHARS, AuditRow, iter_rows
from mad_guardrails.guardrails.audit.runner import ResultRow, ResultStore, _fsync_dir, _valid_row


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
    """What the driver keeps of a finished row."""

    decision: str
    infra: bool

    @classmethod
    def of(cls, row: ResultRow) -> Brief:
        return cls(row.decision, row.infra_fault)


class IdStore(ResultStore):
    """:class:`~mad_guardrails.guardrails.audit.runner.ResultStore` over the same file with the same rules, read and
    rewritten line by line; ``rows`` maps each finished id to its :class:`Brief`, not to the row."""

    rows: dict[str, Brief]  # type: ignore[assignment]

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of each line, the newline included (a last line without one is cut short)."""
        if not self.path.exists():
            return
        offset = 0
        with open(self.path, "rb") as f:
            for line in f:
                yield offset, line
                offset += len(line)

    def load(self) -> dict[str, Brief]:
        self.rows, self.repaired = {}, []
        if not self.path.exists():
            return self.rows
        bad = dup = 0
        keep: list[int] = []  # offsets of the lines kept, only when a line must go
        clean = True
        for offset, line in self._lines():
            if not line.endswith(b"\n"):
                if line.strip():
                    self.repaired.append(f"dropped a partially written last line ({len(line)} bytes)")
                    clean = False
                break
            if not line.strip():
                continue
            row = _valid_row(line)
            if row is None or row.id in self.rows:
                bad, dup = bad + (row is None), dup + (row is not None)
                clean = False
                continue
            self.rows[row.id] = Brief.of(row)
            keep.append(offset)
        if bad:
            self.repaired.append(f"dropped {bad} unreadable line(s)")
        if dup:
            self.repaired.append(f"dropped {dup} duplicate row(s) (kept the first per id)")
        if not clean:
            self._copy(keep)
        return self.rows

    def _copy(self, offsets: Iterable[int]) -> None:
        """Rewrite the file as the lines starting at ``offsets``, in that order (atomically, fsynced)."""
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            for off in offsets:
                src.seek(off)
                dst.write(src.readline())
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def _offsets(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for offset, line in self._lines():
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
