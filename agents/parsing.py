"""Reading model answers: debater turns (JSON) and the coordinator's EVIDENCE/ANSWER contract (text or JSON).

The coordinator contract (``prompts/coordinator.j2``)::

    EVIDENCE:
    [nis2:art_23.4.a] "without undue delay and in any event within 24 hours"
    ANSWER:
    decision: block
    violations:
    - rule: nis2.incident.early_warning | provisions: nis2:art_23.4.a | severity: high | explanation: says 72 h
    rationale: The output gives 72 hours for the early warning; NIS2 requires 24.
    confidence: 0.8

is read by :func:`parse_coordinator`, which also accepts a JSON object with the same fields (structured output), an
``ANSWER:`` section written as JSON, Markdown decoration (``**ANSWER:**``) and a ``<think>`` preamble. It raises
:class:`ParseError` with a message meant to be fed back to the model for its one repair attempt. Format only: whether
quotes are verbatim and ids exist is the verifier's job.

    >>> out = parse_coordinator('EVIDENCE:\\n[gdpr:art_33.1] "not later than 72 hours"\\nANSWER:\\ndecision: allow\\n'
    ...                         'violations: none\\nrationale: matches.\\nconfidence: 0.9')
    >>> out.decision, out.evidence[0].doc_id, out.confidence
    ('allow', 'gdpr:art_33.1', 0.9)
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from mad_guardrails.agents.backends.base import extract_json_object, json_scan
from mad_guardrails.core.debate import Claim, CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.core.units import id_covers


class ParseError(ValueError):
    """The model's answer does not follow the contract; ``str(e)`` tells the model what to fix."""


_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_DECOR = "*_#` \t"
_HEAD_RE = re.compile(r"^[\s*_#`>]*(EVIDENCE|ANSWER)\s*[*_`]*\s*:?\s*[*_`]*\s*(.*)$", re.IGNORECASE)
_QUOTE_LINE_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])?\s*\\?\[([^\]\s]+)\]\s*[:\-–—]?\s*(.*)$")
_KEY_RE = re.compile(r"^[\s\-*•]*[*_]*\s*(decision|violations?|rationale|confidence|reasoning|explanation)"
                     r"\s*[*_]*\s*[:=]\s*(.*)$", re.IGNORECASE)
_QUOTE_CHARS = "\"'“”‘’«»"
DECISIONS = ("allow", "flag", "block")
SEVERITIES = ("low", "medium", "high", "critical")
_STANCES = {
    "violation": "violation", "violates": "violation", "violating": "violation", "non-compliant": "violation",
    "noncompliant": "violation", "not compliant": "violation", "breach": "violation",
    "compliant": "compliant", "complies": "compliant", "compliance": "compliant",
    "uncertain": "uncertain", "unclear": "uncertain", "unknown": "uncertain", "undecided": "uncertain",
}


def strip_think(text: str) -> str:
    text = _THINK_RE.sub("", text or "")
    if "</think>" in text.lower():  # an unclosed-at-start think block (template opened it)
        text = text[text.lower().rindex("</think>") + len("</think>"):]
    return text.strip()


#: what a model copies from a prompt's answer template instead of answering (``<one sentence>``), or a bare date /
#: number / punctuation that says nothing
_PLACEHOLDER_RE = re.compile(r"^\s*(?:<[^<>]{0,60}>|\.{3}|…|n/?a|none|null|todo|tbd)\s*[.;,]?\s*$", re.I)
_BARE_RE = re.compile(r"^[\W\d_]*(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*[\W\d_]*)?$", re.I)


def is_placeholder(text: Any) -> bool:
    """Whether a claim / explanation carries nothing: empty, a template placeholder, or a bare date or number.

    >>> [is_placeholder(x) for x in ["<one sentence>", "", "12 March 2024", "2024-03-12", "The output says 72 h."]]
    [True, True, True, True, False]
    """
    t = str(text or "").strip().strip(_QUOTE_CHARS).strip()
    if not t or _PLACEHOLDER_RE.match(t) or "<one sentence>" in t or "<one or two sentences>" in t:
        return True
    return bool(_BARE_RE.match(t)) and sum(ch.isalpha() for ch in t) <= 9


def _unquote(s: str) -> str:
    s = s.strip().rstrip(",;").strip()
    if len(s) >= 2 and s[0] in _QUOTE_CHARS and s[-1] in _QUOTE_CHARS:
        s = s[1:-1]
    return s.strip()


def parse_confidence(v: Any) -> float:
    """``0.8``, ``"0.8"``, ``"80%"``, ``80`` → 0.8; raises ParseError for anything else."""
    if isinstance(v, bool):
        raise ParseError(f"confidence {v!r} is not a number between 0 and 1")
    if isinstance(v, (int, float)):
        x = float(v)
    else:
        m = re.search(r"-?\d+(?:\.\d+)?", str(v))
        if not m:
            raise ParseError(f"confidence {str(v)[:40]!r} is not a number between 0 and 1")
        x = float(m.group(0))
        if "%" in str(v):
            x /= 100
    if 1 < x <= 100:
        x /= 100
    if not 0 <= x <= 1:
        raise ParseError(f"confidence {x} is not between 0 and 1")
    return x


def parse_decision(v: Any) -> str:
    s = str(v or "").strip().strip(_DECOR + _QUOTE_CHARS + ".!").lower()
    s = s.split()[0].strip(_DECOR + _QUOTE_CHARS + ".,;!") if s else s
    if s not in DECISIONS:
        raise ParseError(f"decision {str(v)[:40]!r} is not one of allow, flag, block")
    return s


def parse_stance(v: Any) -> str:
    s = str(v or "").strip().strip(_DECOR + _QUOTE_CHARS + ".").lower()
    if s in _STANCES:
        return _STANCES[s]
    raise ParseError(f"stance {str(v)[:40]!r} is not one of violation, compliant, uncertain")


def _ids(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [str(x).strip().strip("[]") for x in v if str(x).strip()]
    found = re.findall(r"\[([^\]\s]+)\]", str(v))
    if found:
        return found
    return [x.strip().strip("[]" + _QUOTE_CHARS) for x in re.split(r"[,;]|\s+and\s+", str(v))
            if x.strip().strip("[]" + _QUOTE_CHARS)]


def _quote_obj(item: Any) -> Quote:
    if isinstance(item, str):
        m = _QUOTE_LINE_RE.match(item)
        if not m:
            raise ParseError(f"evidence item {item[:60]!r} does not start with [doc_id]")
        return Quote(doc_id=m.group(1), text=_unquote(m.group(2)))
    if isinstance(item, dict):
        doc = item.get("doc_id") or item.get("id") or item.get("source") or item.get("doc")
        text = item.get("text") or item.get("quote") or ""
        if not doc or not str(text).strip():
            raise ParseError("each quote needs a doc_id and a non-empty verbatim text")
        return Quote(doc_id=str(doc).strip().strip("[]"), text=_unquote(str(text)))
    raise ParseError(f"cannot read quote {item!r}")


def close_partial_json(text: str) -> dict | None:
    """Best-effort reading of a JSON object cut short (``max_tokens``): keep every complete member, close the open
    string and brackets. ``None`` when nothing object-shaped survives.

    >>> close_partial_json('{"stance": "violation", "claims": [{"text": "It says 72 h", "quotes": [{"doc_id": "nis')
    {'stance': 'violation', 'claims': [{'text': 'It says 72 h', 'quotes': [{'doc_id': 'nis'}]}]}
    """
    start = text.find("{")
    if start < 0:
        return None
    s = text[start:]
    stack: list[str] = []
    cuts: list[tuple[int, tuple[str, ...]]] = []
    in_str = False
    for i, ch in json_scan(s):
        if ch == "":  # the text ends inside a string
            in_str = True
        elif ch == '"':
            cuts.append((i + 1, tuple(stack)))
        elif ch in "{[":
            stack.append(ch)
            cuts.append((i + 1, tuple(stack)))
        elif ch in "}]":
            if stack:
                stack.pop()
            cuts.append((i + 1, tuple(stack)))
            if not stack:
                try:
                    obj = json.loads(s[: i + 1])
                except ValueError:
                    return None
                return obj if isinstance(obj, dict) else None
        elif ch == ",":
            cuts.append((i, tuple(stack)))

    def closers(st: tuple[str, ...]) -> str:
        return "".join("}" if c == "{" else "]" for c in reversed(st))

    candidates = []
    if in_str:
        candidates.append(s + '"' + closers(tuple(stack)))
    candidates += [s[:end] + closers(st) for end, st in reversed(cuts)]
    for cand in candidates[:400]:
        try:
            obj = json.loads(cand)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj:
            return obj
    return None


def _looks_like_json(text: str) -> bool:
    t = text.lstrip()
    return t.startswith("{") or t.startswith("```")


# -- debater turns ---------------------------------------------------------------------------------------------------
def parse_turn(answer: str | dict | None) -> dict:
    """A debater's JSON turn → ``{"stance", "claims": [Claim], "confidence"}`` (raises ParseError)."""
    if answer is None:
        raise ParseError("empty answer")
    if isinstance(answer, dict):
        obj = answer
    else:
        text = strip_think(answer)
        obj = extract_json_object(text)
        if (obj is None or "stance" not in obj) and _looks_like_json(text):
            obj = close_partial_json(text.strip().removeprefix("```json").removeprefix("```"))  # cut at max_tokens
    if obj is None:
        raise ParseError("no JSON object found; answer with one JSON object {stance, claims, confidence}")
    if "stance" not in obj:
        raise ParseError("the JSON object has no 'stance' (violation, compliant or uncertain)")
    stance = parse_stance(obj["stance"])
    claims = []
    raw_claims = obj.get("claims") or []
    if not isinstance(raw_claims, list):
        raise ParseError("'claims' must be a list")
    for c in raw_claims:
        if isinstance(c, str):
            if not is_placeholder(c):
                claims.append(Claim(text=c))
            continue
        if not isinstance(c, dict) or is_placeholder(c.get("text")):
            continue  # an empty, cut-off or placeholder claim (``<one sentence>``, a bare date) carries nothing
        quotes = [_quote_obj(q) for q in (c.get("quotes") or [])
                  if isinstance(q, dict) and q.get("doc_id") and str(q.get("text") or "").strip()]
        rule = c.get("rule_id")
        rule = None if rule in (None, "", "null", "none", "None") else str(rule)
        claims.append(Claim(text=str(c["text"]).strip(), quotes=quotes, rule_id=rule))
    conf = parse_confidence(obj["confidence"]) if obj.get("confidence") is not None else 0.5
    return {"stance": stance, "claims": claims, "confidence": conf}


# -- the coordinator -------------------------------------------------------------------------------------------------
def _split_sections(text: str) -> tuple[list[str], list[str]] | None:
    ev: list[str] = []
    ans: list[str] = []
    cur: list[str] | None = None
    seen_answer = False
    for line in text.splitlines():
        m = _HEAD_RE.match(line)
        if m:
            head = m.group(1).upper()
            cur = ev if head == "EVIDENCE" and not seen_answer else ans
            seen_answer = seen_answer or head == "ANSWER"
            if m.group(2).strip():
                cur.append(m.group(2))
            continue
        if cur is not None:
            cur.append(line)
    return (ev, ans) if seen_answer else None


def _parse_evidence_lines(lines: list[str]) -> list[Quote]:
    quotes: list[Quote] = []
    for line in lines:
        s = line.strip()
        if not s or s.lower().strip(_DECOR + ".") in {"none", "n/a", "(none)"}:
            continue
        m = _QUOTE_LINE_RE.match(s)
        if m:
            text = _unquote(m.group(2))
            quotes.append(Quote(doc_id=m.group(1), text=text))
        elif quotes:  # a quote that wraps onto the next line
            quotes[-1] = Quote(doc_id=quotes[-1].doc_id, text=_unquote(quotes[-1].text + " " + s))
    return [q for q in quotes if q.text]


def _parse_violation_line(s: str, n: int) -> ProposedViolation:
    body = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", s).strip()
    fields: dict[str, str] = {}
    for part in re.split(r"\s*\|\s*", body):
        k, sep, v = part.partition(":")
        key = k.strip().strip(_DECOR).lower().replace(" ", "_")
        if sep and key in {"rule", "rule_id", "provisions", "provision", "severity", "explanation", "quotes"}:
            fields[key] = v.strip()
        elif "rule" not in fields and "rule_id" not in fields:
            fields["rule"] = part.strip()
        else:
            fields["explanation"] = (fields.get("explanation", "") + " " + part).strip()
    rule = (fields.get("rule") or fields.get("rule_id") or "").strip().strip(_DECOR + _QUOTE_CHARS + "[]")
    rule = rule.split()[0] if rule else ""
    if not rule:
        raise ParseError(f"violation {n} has no rule id (write '- rule: <rule id> | provisions: ...')")
    sev = (fields.get("severity") or "medium").strip().strip(_DECOR).lower()
    if sev not in SEVERITIES:
        raise ParseError(f"violation {n}: severity {sev!r} is not one of {', '.join(SEVERITIES)}")
    return ProposedViolation(rule_id=rule, provisions=_ids(fields.get("provisions") or fields.get("provision")),
                             severity=sev, explanation=fields.get("explanation", "").strip())


def _parse_answer_lines(lines: list[str]) -> dict:
    data: dict[str, Any] = {}
    key: str | None = None
    violations: list[ProposedViolation] = []
    for line in lines:
        s = line.strip()
        if not s:
            continue
        m = _KEY_RE.match(s)
        if m and not (key == "violations" and s.lstrip().startswith(("-", "*", "•"))
                      and m.group(1).lower() in {"explanation"}):
            key = m.group(1).lower()
            key = {"violation": "violations", "reasoning": "rationale", "explanation": "rationale"}.get(key, key)
            val = m.group(2).strip()
            if key == "violations":
                if val and val.lower().strip(_DECOR + ".") not in {"none", "n/a", "[]", "no", "(none)", "-"}:
                    violations.append(_parse_violation_line(val, len(violations) + 1))
            else:
                data[key] = val
            continue
        if key == "violations":
            if s.lower().strip(_DECOR + ".") in {"none", "n/a", "[]"}:
                continue
            violations.append(_parse_violation_line(s, len(violations) + 1))
        elif key == "rationale":
            data["rationale"] = (data.get("rationale", "") + " " + s).strip()
    data["violations"] = violations
    return data


def _attach_quotes(out: CoordinatorOutput) -> CoordinatorOutput:
    """Give each violation the EVIDENCE quotes of its provisions (when it has none of its own); blank a placeholder
    rationale / explanation (the template's ``<one sentence>``)."""
    if is_placeholder(out.rationale):
        out.rationale = ""
    for v in out.violations:
        if is_placeholder(v.explanation):
            v.explanation = ""
        if not v.quotes and v.provisions:
            v.quotes = [q for q in out.evidence if any(id_covers(p, q.doc_id) or q.doc_id == p for p in v.provisions)]
    return out


def _from_json(obj: dict, raw: str) -> CoordinatorOutput:
    if isinstance(obj.get("answer"), dict):  # {"evidence": [...], "answer": {...}}
        obj = {**obj["answer"], "evidence": obj.get("evidence", obj["answer"].get("evidence", []))}
    if "decision" not in obj:
        raise ParseError("the JSON object has no 'decision' (allow, flag or block)")
    evidence = [_quote_obj(q) for q in (obj.get("evidence") or []) if q]
    viols = []
    raw_v = obj.get("violations") or []
    if not isinstance(raw_v, list):
        raise ParseError("'violations' must be a list")
    for i, v in enumerate(raw_v, 1):
        if isinstance(v, str):
            viols.append(_parse_violation_line(v, i))
            continue
        if not isinstance(v, dict):
            raise ParseError(f"violation {i} must be an object with rule_id, provisions, severity, explanation")
        rule = str(v.get("rule_id") or v.get("rule") or "").strip()
        if not rule:
            raise ParseError(f"violation {i} has no rule_id")
        sev = str(v.get("severity") or "medium").lower()
        if sev not in SEVERITIES:
            raise ParseError(f"violation {i}: severity {sev!r} is not one of {', '.join(SEVERITIES)}")
        viols.append(ProposedViolation(rule_id=rule, provisions=_ids(v.get("provisions")), severity=sev,
                                       explanation=str(v.get("explanation") or ""),
                                       quotes=[_quote_obj(q) for q in (v.get("quotes") or []) if q]))
    conf = parse_confidence(obj["confidence"]) if obj.get("confidence") is not None else 0.0
    return CoordinatorOutput(evidence=evidence, decision=parse_decision(obj["decision"]), violations=viols,
                             rationale=str(obj.get("rationale") or ""), confidence=conf, raw=raw)


def parse_coordinator(answer: str | dict | None) -> CoordinatorOutput:
    """Read a coordinator answer (EVIDENCE/ANSWER text, or JSON). A missing confidence reads as 0.0 (fail closed:
    thresholds then turn the decision into a flag). Raises :class:`ParseError` saying what to fix."""
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise ParseError("the answer is empty; start with EVIDENCE: and then ANSWER:")
    try:
        if isinstance(answer, dict):
            return _attach_quotes(_from_json(answer, json.dumps(answer)))
        raw = answer
        text = strip_think(answer)
        sections = _split_sections(text)
        if sections is None:
            obj = extract_json_object(text)
            if obj is not None and ("decision" in obj or isinstance(obj.get("answer"), dict)):
                return _attach_quotes(_from_json(obj, raw))
            if _looks_like_json(text):
                # cut at max_tokens: the grammar writes evidence first, so a decision that made it out is complete;
                # a lost confidence reads as 0.0 and the mode thresholds turn the decision into a flag
                part = close_partial_json(text.strip().removeprefix("```json").removeprefix("```"))
                if part is not None and part.get("decision") in DECISIONS:
                    part.setdefault("violations", [])
                    part["violations"] = [v for v in part["violations"] if isinstance(v, dict) and v.get("rule_id")
                                          and v.get("severity") in SEVERITIES] if isinstance(part["violations"],
                                                                                             list) else []
                    part["evidence"] = [q for q in part.get("evidence") or []
                                        if isinstance(q, dict) and q.get("doc_id") and q.get("text")]
                    return _attach_quotes(_from_json(part, raw))
                raise ParseError("the JSON answer is incomplete or has no 'decision'; give one complete JSON object "
                                 "with evidence, decision, violations, rationale, confidence")
            raise ParseError("no 'ANSWER:' section found; write EVIDENCE: with [doc_id] \"quote\" lines, then "
                             "ANSWER: with decision:, violations:, rationale:, confidence:")
        ev_lines, ans_lines = sections
        evidence = _parse_evidence_lines(ev_lines)
        ans_text = "\n".join(ans_lines).strip()
        obj = extract_json_object(ans_text) if ans_text.startswith(("{", "```")) else None
        if obj is not None:
            out = _from_json({"evidence": [q.model_dump() for q in evidence], **obj}, raw)
            return _attach_quotes(out)
        data = _parse_answer_lines(ans_lines)
        if "decision" not in data:
            raise ParseError("the ANSWER section has no 'decision:' line (allow, flag or block)")
        conf = parse_confidence(data["confidence"]) if data.get("confidence") else 0.0
        out = CoordinatorOutput(evidence=evidence, decision=parse_decision(data["decision"]),
                                violations=data["violations"], rationale=data.get("rationale", ""),
                                confidence=conf, raw=raw)
        return _attach_quotes(out)
    except ValidationError as e:
        first = e.errors()[0]
        raise ParseError(f"field {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from e
