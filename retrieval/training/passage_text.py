"""Text analysis of a passage, no LLM: the slots template queries are filled from — heading title, defined term,
duty clauses (subject and predicate around the modal verb, legal boilerplate and cross-references removed),
imperative actions, short statements, and idf-weighted key phrases (:class:`KeyPhrases`)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel

from mad_guardrails.core.text import collapse_ws

_STOP = set("""a an the and or of to in on for by with at from as into onto upon within without under over between
among against about after before during through per via than then that which who whom whose this these those such
it its they them their there here is are was were be been being has have had having do does did shall should must may
might can could will would not no nor any all each every other another same both either neither more most less least
very also only where when while if whether so because however therefore thus including include includes including
where appropriate relevant certain particular specific respective respectively referred pursuant accordance article
articles paragraph paragraphs point points subparagraph annex annexes regulation regulations directive directives
union member states state chapter section title recital recitals e.g i.e etc ensure ensures ensured provide provides
provided laid down set out apply applies applied taking account basis case cases order means way ways one two three
first second third following well least new shall since thereto thereof therein hereby whereas furthermore
moreover accordingly additionally notably namely iii ii iv vi vii viii""".split())
_GENERIC = set("""measures measure requirements requirement information persons person entities entity use used
purposes purpose activities activity system systems data process processes type types level levels part parts
framework frameworks practices practice outcome outcomes manner context terms term number""".split())
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z\-']+")
_REF_RE = re.compile(
    r"\s*,?\s*(?:as )?(?:referred to|pursuant to|in accordance with|as provided for|laid down|set out|as defined|"
    r"provided for|within the meaning of|in the meaning of)\s+(?:in\s+)?(?:the\s+)?(?:first\s+|second\s+|third\s+)?"
    r"(?:subparagraph|paragraphs?|points?|Articles?|Annex(?:es)?|Sections?|Chapters?|Titles?|Regulation|Directive|"
    r"this)(?:\s*(?:\(\w{1,4}\)|\d+[\w/.]*|[IVXLC]+\b|(?:first|second|third|fourth)\b|subparagraph|paragraphs?|"
    r"points?|Articles?|of this (?:Regulation|Directive)|of Regulation \(EU\) (?:No )?[\d/]+|of Directive "
    r"\(EU\) [\d/]+|Regulation|Directive|and|or|,(?=\s*(?:\(|\d|point|paragraph|Article))))*",
    re.IGNORECASE,
)
_PAREN_RE = re.compile(r"\s*\([^()]{0,120}\)")
_OFTHIS_RE = re.compile(r"\s+(?:of|under) this (?:Regulation|Directive)", re.IGNORECASE)
_ACTREF_RE = re.compile(r"\s*(?:Regulation|Directive|Decision)\s*\((?:EU|EC|EEC|Euratom)\)\s*(?:No\s*)?[\d/]+", re.I)
_MARK_RE = re.compile(r"^\s*(?:[-*]\s*)?(?:\(\w{1,5}\)|\d+(?:\.\d+)*\.)\s+")
_MODAL_RE = re.compile(r"\b(shall not|shall|must not|must|should not|should|are required to|is required to|"
                       r"may not|are obliged to|is obliged to)\b", re.IGNORECASE)
_SENT_RE = re.compile(r"(?<=[.;:])\s+|\n+")
_DEF_RE = re.compile(r"^\s*(?:\(\s*\w{1,4}\s*\)\s*)?[‘'\"]\s*([^’'\"]{3,80}?)\s*[’'\"]\s*(?:m\s?eans|shall mean)\b")
#: base-form verbs that start an imperative framework action ('Establish policies to ...')
IMPERATIVE_VERBS = set("""establish maintain document implement conduct assess evaluate review identify apply use verify monitor
define develop ensure integrate consider provide track test disclose engage plan train update measure manage
prioritize prioritise compare determine examine inventory collect create adopt align allocate analyze analyse
audit avoid conduct communicate coordinate deploy design detect employ enable estimate explain include inform
institute involve leverage limit log map prepare protect publish record reduce re-evaluate refine regularly
remove report require respond retain set share specify support take utilize validate""".split())



def content_words(s: str) -> set[str]:
    """The lower-cased words of ``s`` that are not stop words."""
    return {w.lower() for w in _WORD_RE.findall(s) if w.lower() not in _STOP}


def lower_first(s: str) -> str:
    """``s`` with its first letter lower-cased, unless it starts an acronym ('Operators' → 'operators', 'CSIRT')."""
    if len(s) > 1 and s[0].isupper() and not s[1].isupper():
        return s[0].lower() + s[1:]
    return s


def clean_text(text: str) -> str:
    """Markdown, footnote markers and list markers removed; whitespace collapsed."""
    t = re.sub(r"\[\^?\d+\]", "", text)
    t = t.replace("**", "").replace("__", "").replace("‘", "'").replace("’", "'").replace("“", '"').replace("”", '"')
    lines = [_MARK_RE.sub("", ln).strip() for ln in t.splitlines()]
    return collapse_ws(" ".join(x for x in lines if x))


def sentences(text: str) -> list[str]:
    out = []
    for raw in _SENT_RE.split(text.replace("**", "")):
        s = _MARK_RE.sub("", raw).strip(" -*")
        if s:
            out.append(s)
    return out


def strip_legalese(s: str) -> str:
    """Cross-references, act citations, parentheses and 'of this Regulation' removed."""
    for rx in (_REF_RE, _ACTREF_RE, _PAREN_RE, _OFTHIS_RE):
        s = rx.sub("", s)
    s = re.sub(r"\s+,", ",", s)
    s = re.sub(r"\s+", " ", s).strip(" ,;:.")
    return s


_LEAD_RE = re.compile(r"(?i)^(?:furthermore|moreover|in addition|therefore|also|accordingly|however|in particular|"
                      r"thus|consequently|where appropriate)\s*,?\s+")


def _cut_words(s: str, n: int) -> str:
    s = _LEAD_RE.sub("", s.strip())
    words = s.split()
    if len(words) > n:
        cut = " ".join(words[:n])
        if "," in cut[len(cut) // 2:]:  # prefer to end at a comma inside the window
            cut = cut[: cut.rfind(",")]
        words = cut.split()
    while len(words) > 3 and words[-1].lower().strip(" ,;:.") in _STOP:  # no dangling 'the' / 'but' / 'being'
        words.pop()
    return " ".join(words).strip(" ,;:.")


def title_of(heading: str) -> str:
    """The descriptive part of a passage heading ('' when it has none).

    >>> title_of("NIS2, Article 23(4) — Reporting obligations"), title_of("NIST CSF 2.0, DE.CM-01")
    ('Reporting obligations', '')
    >>> title_of("NIST AI 600-1, MS-2.5-006 — suggested action for MEASURE 2.5")
    ''
    """
    if "—" in heading:
        t = heading.split("—", 1)[1].strip()
    elif ":" in heading:
        t = heading.split(":", 1)[1].strip()
    else:
        return ""
    if re.match(r"(?i)suggested action|^\d", t) or len(t.split()) > 14:
        return ""
    return t.strip(" .`")


class Clause(BaseModel):
    subject: str
    modal: str
    predicate: str

    @property
    def statement(self) -> str:
        return f"{self.subject} {self.predicate}".strip() if self.subject else self.predicate


def duty_clauses(text: str, max_words: int = 16) -> list[Clause]:
    """Duty sentences of a passage split around their modal verb, boilerplate removed.

    >>> c = duty_clauses("1. Member States shall ensure that operators notify, without undue delay, the CSIRT "
    ...                  "referred to in Article 10 of any significant incident.")[0]
    >>> c.subject, c.predicate
    ('operators', 'notify, without undue delay, the CSIRT of any significant incident')
    """
    out = []
    for s in sentences(text):
        s2 = strip_legalese(s)
        m = _MODAL_RE.search(s2)
        if not m:
            continue
        subj = s2[: m.start()].strip(" ,")
        pred = s2[m.end():].strip(" ,")
        # 'Member States shall ensure that X do Y' -> subject X, predicate 'do Y'
        m2 = re.match(r"(?i)(?:ensure|require|provide|lay down rules)\s+that\s+(.+)", pred)
        if m2:
            inner = m2.group(1)
            m3 = re.search(r"\b(are|is|shall|must|have|has|take|takes|notify|notifies|comply|complies|do|does|"
                           r"implement|implements|provide|provides|inform|informs|report|reports|keep|keeps)\b", inner)
            if m3 and m3.start() > 0:
                subj, pred = inner[: m3.start()].strip(" ,"), inner[m3.start():].strip(" ,")
            else:
                subj, pred = "", inner
        subj = re.sub(r"(?i)^(?:where|when|if|without prejudice to)[^,]*,\s*", "", subj)
        subj = _cut_words(subj, 8) if len(subj.split()) <= 12 else ""
        if m.group(1).lower().endswith("not") and not pred.lower().startswith("not"):
            pred = "not " + pred
        pred = _cut_words(pred, max_words)
        if len(pred.split()) < 3:
            continue
        out.append(Clause(subject=subj, modal=m.group(1).lower(), predicate=pred))
    return out


def defined_term(text: str) -> str:
    """The term a definition defines ('' when the text is no definition).

    >>> defined_term("(2) ‘remote data processing’m eans data processing at a distance")
    'remote data processing'
    """
    m = _DEF_RE.match(text.strip())
    return m.group(1).strip() if m else ""


def imperative_duty(text: str, max_words: int = 16) -> str:
    """The action of an imperative sentence ('Establish policies to ...' → 'establish policies to ...'), else ''."""
    for s in sentences(text)[:2]:
        s2 = strip_legalese(s)
        words = s2.split()
        if len(words) >= 4 and words[0].lower() in IMPERATIVE_VERBS:
            return lower_first(_cut_words(s2, max_words))
    return ''


def statements(text: str, max_words: int = 18) -> list[str]:
    """Short declarative sentences (framework outcomes such as 'Networks are monitored to find adverse events')."""
    out = []
    for s in sentences(text):
        s2 = strip_legalese(s)
        n = len(s2.split())
        if 4 <= n <= 40 and not s2.endswith("?"):
            out.append(_cut_words(s2, max_words))
    return out


class KeyPhrases:
    """RAKE-style candidate phrases (runs of content words) scored by idf over the corpus's passages."""

    def __init__(self, texts: Iterable[str]):
        df: Counter[str] = Counter()
        n = 0
        for t in texts:
            n += 1
            df.update({w.lower() for w in _WORD_RE.findall(t)})
        self.n = max(n, 1)
        self.df = df

    def idf(self, w: str) -> float:
        return math.log((self.n + 1) / (self.df.get(w.lower(), 0) + 1)) + 1.0

    def phrases(self, text: str, k: int = 3) -> list[str]:
        runs: list[list[str]] = []
        cur: list[str] = []
        for tok in re.findall(r"[A-Za-z][A-Za-z\-']*|[^\sA-Za-z]", clean_text(text)):
            low = tok.lower()
            if not tok[0].isalpha() or low in _STOP or len(low) < 3:
                if cur:
                    runs.append(cur)
                cur = []
            else:
                cur.append(tok)
        if cur:
            runs.append(cur)
        scored: dict[str, float] = {}
        for r in runs:
            for size in (3, 2, 1):
                for i in range(0, max(1, len(r) - size + 1)):
                    words = r[i : i + size]
                    if len(words) != size or all(w.lower() in _GENERIC for w in words):
                        continue
                    if size == 1 and not (words[0].isupper() and 2 < len(words[0]) <= 6):
                        continue  # single words only as acronyms (CSIRT, DPIA); otherwise phrases of 2-3 words
                    ph = " ".join(words)
                    score = sum(self.idf(w) for w in words) / (size ** 0.35)
                    key = ph.lower()
                    if key not in scored or score > scored[key]:
                        scored[key] = score
        best: list[str] = []
        for ph, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0])):
            if any(ph in b or b in ph for b in best):
                continue
            best.append(ph)
            if len(best) >= k:
                break
        return best
