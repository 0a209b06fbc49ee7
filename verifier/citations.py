"""Citation validity: the cited id exists and was among the evidence the agents were shown.

A citation of ``X`` is *retrieved* when some retrieved evidence id ``R`` is ``X``, encloses it (``R = nis2:art_23``,
``X = nis2:art_23.4.a``: the agents saw the whole article) or is a point of it (``R = nis2:art_23.4.a``,
``X = nis2:art_23``) — :func:`mad_guardrails.core.units.id_covers` both ways. Policy rules (``policy:<rule_id>``) are valid
whenever the rule exists: the agents are shown the screened rules, not retrieved passages.

A *citation-index slip* is a correct quote under the wrong id: the quote is not in the cited unit but is, verbatim
(up to content normalisation), in another retrieved unit. It fails with ``quote belongs to [X], not [Y]``.

    >>> texts = {"nis2:art_23.4.a": "in any event within 24 hours of becoming aware",
    ...          "nis2:art_23.4.b": "in any event within 72 hours of becoming aware"}
    >>> r = citation_validity([Quote(doc_id="nis2:art_23.4.a", text="within 72 hours of becoming aware")],
    ...                       set(texts), texts.__contains__, lookup=texts.get)
    >>> r.status, r.failures[0].split(":")[0:2]
    ('fail', ['[nis2', 'art_23.4.a] quote belongs to [nis2'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from mad_guardrails.core.debate import Quote
from mad_guardrails.core.units import id_covers
from mad_guardrails.core.verdict import CheckResult
from mad_guardrails.verifier.normalize import content_equal_in
from mad_guardrails.verifier.verbatim import Lookup, _short, clean_id, dedupe_quotes, resolve_text

Known = Callable[[str], bool]


def is_policy_id(unit_id: str) -> bool:
    return clean_id(unit_id).startswith("policy:")


def covered_by_retrieved(unit_id: str, retrieved_ids: Iterable[str]) -> bool:
    """True when ``unit_id`` is a retrieved id, a point of one, or encloses one."""
    return any(id_covers(r, unit_id) or id_covers(unit_id, r) for r in retrieved_ids)


def _depth(unit_id: str) -> tuple[int, int]:
    local = unit_id.partition(":")[2]
    return local.count("."), len(local)


def find_owner(text: str, cited: str, retrieved_ids: Iterable[str], *, lookup: Lookup | None = None,
               retrieved_texts: Mapping[str, str] | None = None) -> str | None:
    """The most specific retrieved unit (other than the cited one) whose text contains ``text``, or None."""
    owners = []
    for rid in retrieved_ids:
        if rid == cited:
            continue
        texts = []
        if retrieved_texts and retrieved_texts.get(rid):
            texts.append(retrieved_texts[rid])
        if lookup is not None:
            full = lookup(rid)
            if full:
                texts.append(full)
        if any(content_equal_in(text, t) for t in texts):
            owners.append(rid)
    if not owners:
        return None
    # prefer an owner that is not an ancestor of the cited unit (that would contain the cited point anyway)
    owners.sort(key=lambda r: (id_covers(r, cited), tuple(-x for x in _depth(r))))
    return owners[0]


def citation_validity(quotes: list[Quote], retrieved_ids: set[str], known: Known, *, lookup: Lookup | None = None,
                      retrieved_texts: Mapping[str, str] | None = None) -> CheckResult:
    """Each quote cites an existing unit that was retrieved, and is not a citation-index slip.

    ``known(id)`` says whether a unit (or ``policy:<rule_id>``) exists. With ``lookup`` (full unit text by id) and/or
    ``retrieved_texts`` (evidence id → evidence text), slips are detected; without them only the ids are checked.
    """
    qs = dedupe_quotes(quotes)
    if not qs:
        return CheckResult(name="citation_validity", status="skipped", detail="no citations to check")
    retrieved = {clean_id(r) for r in retrieved_ids}
    failures: list[str] = []
    slips = 0
    for q in qs:
        uid = clean_id(q.doc_id)
        qtxt = f'"{_short(q.text)}"'
        if ":" not in uid:
            failures.append(f"[{uid}] malformed id (expected '<doc>:<unit>', e.g. 'nis2:art_23.4.a'): {qtxt}")
            continue
        if not known(uid):
            failures.append(f"[{uid}] unknown id, no such unit: {qtxt}")
            continue
        if is_policy_id(uid):
            continue
        if not covered_by_retrieved(uid, retrieved):
            failures.append(f"[{uid}] not among the retrieved evidence: {qtxt}")
            continue
        if lookup is None and not retrieved_texts:
            continue
        cited_texts = []
        if lookup is not None:
            res = resolve_text(uid, lookup)
            if res:
                cited_texts.append(res[1])
        if retrieved_texts and retrieved_texts.get(uid):
            cited_texts.append(retrieved_texts[uid])
        if any(content_equal_in(q.text, t) for t in cited_texts):
            continue
        owner = find_owner(q.text, uid, retrieved, lookup=lookup, retrieved_texts=retrieved_texts)
        if owner is not None:
            slips += 1
            failures.append(f"[{uid}] quote belongs to [{owner}], not [{uid}]: {qtxt}")
    n = len(qs)
    ok = n - len(failures)
    return CheckResult(name="citation_validity", status="pass" if not failures else "fail", score=ok / n,
                       failures=failures,
                       detail=f"{ok}/{n} citations valid; {slips} citation-index slip(s)")
