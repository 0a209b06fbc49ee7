"""Numbers, durations and dates: deterministic extraction and comparison with the key facts of the law.

**Extraction** (:func:`extract_quantities`) finds, in order of precedence:

* dates — ``2 August 2026``, ``August 2nd, 2026``, ``2026-08-02``, ``2.8.2026``, ``August 2026`` (month precision),
  and a bare year after a temporal word (``from 2026``, ``by 2027``: year precision);
* money — ``EUR 35 000 000``, ``€35 million``, ``35 million euros``, ``USD 10m``;
* percentages — ``7 %``, ``7%``, ``seven per cent``;
* durations — ``72 hours``, ``seventy-two hours``, ``24h``, ``72-hour``, ``14 days``, ``one month``, ``a month``,
  ``a full month``, ``two weeks``, ``1 year``, ``10 working days``; and qualitative ones (``without undue delay``,
  ``immediately``) that carry no figure;
* counts — any other number (``250 employees``, ``three members``, ``10^25 FLOPs``), except references (``Article 5``,
  ``paragraph 4``, ``Regulation (EU) 2024/1689``, ``6(1)``) and bare years.

Written numbers (``seventy-two``, ``one hundred and twenty``) are understood.

**Units.** Durations are normalised within a family: hours, days and weeks to hours (1 day = 24 h); months and years
to months (1 year = 12 months); working days stay working days. Across the hours and months families the comparison
is approximate and says so: 1 month = 28 to 31 days.

**Comparison with a fact** (:func:`check_numbers`). A fact (:class:`mad_guardrails.policies.schema.KeyFact`) is *mentioned* when one
of its ``terms`` (case-insensitive, simple plural / inflection: ``warning`` ~ ``warnings``, ``notify`` ~
``notified``) occurs in a sentence of the output together with a quantity of the fact's dimension. Pairing a term
with a quantity:

* **clauses** — a sentence is split at ``,`` ``;`` and the words *and*, *while*, *whereas*, *but*, *although*, at
  dashes and parentheses (a parenthesis is a clause of its own; the words after it continue the clause before it).
  A term is paired with a quantity of *its own* clause, so "an incident notification within 72 hours, and a final
  report no later than one month after it" gives the final report one month, never 72 hours. A clause that is only
  a noun phrase naming a fact ("*The early warning* and the incident notification are both due within 24 hours")
  shares the next clause's predicate; a clause that only continues a deadline ("goes out without undue delay *and in
  any event within 48 hours*") lends its figure to the term of the clause before;
* **order** — a quantity right next to the term ("24-hour early warning", "five functions") comes first, then one that
  *follows* the term in its clause ("final report within one month"), then one that precedes it ("within 72 hours an
  incident notification", "72 hours to send the early warning"); each quantity goes to one term occurrence first,
  occurrences left over share the nearest one of their clause;
* **construction** — a duration counts only in a deadline-like construction (*within*, *no later than*, *at the
  latest*, *of*, *after*, *in*, *is*, *gives you* ...) or right next to the term ("the early warning took 72 hours"
  is a narrative, not the rule);
* **anchors** — a term that only anchors a later period ("one month *after* the incident notification", "within one
  year *of the* incident notification") is not its subject;
* **shared terms** — where several facts match the same words (NIS2 and CRA "final report"), the quantity confirms
  the fact whose value it equals and is not held against the others.

The paired value must equal the fact: a statement of what the law requires must match it exactly (an output saying
the GDPR deadline is 48 hours misstates a 72-hour maximum, even though 48 is less). **When unsure, no verdict**: a
quantity found only in *another* clause can confirm a fact (``consistent``) but never contradict it (the finding is
then ``not_mentioned`` and its explanation says why) — a missed contradiction goes to the debate, a false one would
fast-block a correct answer. A qualitative phrase alone ("without undue delay") is not a figure: the fact is then
*not mentioned*, with the phrase in the explanation. Scientific notation (``10^25``, ``10²⁵``, ``1e25``,
``3 x 10^24``) is one number.

    >>> f = KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a",
    ...             terms=["early warning"])
    >>> [x.status for x in check_numbers("Send the early warning within seventy-two hours.", [f])]
    ['contradicted']
    >>> check_numbers("Send the early warning within seventy-two hours.", [f])[0].explanation
    "output says seventy-two hours (= 72 hours) for 'early warning'; nis2:art_23.4.a says 24 hours"
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from datetime import date
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.verdict import CheckResult
from mad_guardrails.policies.schema import KeyFact

# --------------------------------------------------------------------------------------------- number words

_SMALL = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_WORDS = sorted([*_SMALL, *_TENS, *_SCALES], key=len, reverse=True)
_W = "(?:" + "|".join(_WORDS) + ")"
_FIRST = "[" + "".join(sorted({w[0] for w in _WORDS})) + "]"  # a cheap first-character test speeds scanning up
WORDNUM = rf"\b(?={_FIRST}){_W}(?:(?:[ \t]+|-|[ \t]+and[ \t]+){_W})*\b"
DIGITS = r"(?<![\d.,])(?:\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?!\d)|\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:[.,]\d+)?(?![\d])"
NUMBER = rf"(?=[\d{_FIRST[1:-1]}])(?:{DIGITS}|{WORDNUM})"


def parse_word_number(text: str) -> float | None:
    """``"seventy-two"`` → 72, ``"one hundred and twenty"`` → 120; None when the words do not form a number."""
    toks = [t for t in re.split(r"[\s\-]+", text.lower()) if t and t != "and"]
    total, current, last = 0, 0, None
    for t in toks:
        if t in _SMALL or t in _TENS:
            v = _SMALL.get(t, _TENS.get(t))
            if last == "small" or (last == "tens" and t in _TENS) or (last == "tens" and v >= 10):
                return None
            current += v
            last = "tens" if t in _TENS else "small"
        elif t in _SCALES:
            s = _SCALES[t]
            if s == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * s
                current = 0
            last = "scale"
        else:
            return None
    return float(total + current)


def parse_number(text: str) -> float | None:
    """Digits (``35 000 000``, ``35,000,000``, ``1.5``, ``1,5``) or words (``seventy-two``)."""
    t = text.strip()
    if re.fullmatch(rf"{WORDNUM}", t, flags=re.I):
        return parse_word_number(t)
    t = re.sub(r"[ \u00a0\u202f]", "", t)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", t):
        t = t.replace(",", "")
    t = t.replace(",", ".")
    try:
        return float(t)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------- quantities

Kind = Literal["duration", "date", "percent", "money", "count"]


class Quantity(BaseModel):
    """One quantity found in a text (or parsed from a fact)."""

    kind: Kind
    value: float | None = Field(default=None, description="normalised value; None for qualitative durations / dates")
    unit: str = Field(description="duration: hours|months|working_days; money: currency; percent; date; count noun")
    amount: float | None = Field(default=None, description="the number as written (3 for '3 days')")
    raw_unit: str | None = Field(default=None, description="the unit as written, singular ('day')")
    iso: str | None = Field(default=None, description="dates: 'YYYY-MM-DD', 'YYYY-MM' or 'YYYY' by precision")
    text: str = ""
    start: int = 0
    end: int = 0
    qualitative: bool = False

    def display(self, like: Quantity | None = None) -> str:
        """The quantity as the reader wrote it, plus its normalised value where that differs (in the unit of
        ``like`` when it is a duration of the same family: ``3 days (= 72 hours)``, ``336 hours (= 14 days)``)."""
        if self.qualitative:
            return self.text
        norm = self.normalised_text()
        if like is not None and self.kind == like.kind == "duration" and self.value is not None:
            target = None
            if self.unit == like.unit and like.raw_unit in _DUR_UNITS:
                target = like.raw_unit
            elif self.unit == "hours" and like.unit == "months":  # compared approximately, in days
                target = "day"
            if target:
                v = self.value / _DUR_UNITS[target][1]
                name = {"h": "hour", "hr": "hour", "min": "minute"}.get(target, target)
                norm = f"{_fmt(round(v, 6))} {name}{'' if v == 1 else 's'}"
        return self.text if not norm or _canon(norm) == _canon(self.text) else f"{self.text} (= {norm})"

    def normalised_text(self) -> str:
        if self.kind == "date":
            return _format_iso(self.iso or "")
        if self.value is None:
            return ""
        v = _fmt(self.value)
        if self.kind == "duration":
            unit = {"hours": "hour", "months": "month", "working_days": "working day"}[self.unit]
            return f"{v} {unit}{'' if self.value == 1 else 's'}"
        if self.kind == "percent":
            return f"{v} %"
        if self.kind == "money":
            return f"{self.unit} {_fmt_money(self.value)}"
        return v if self.unit == "count" else f"{v} {self.unit}"


def _canon(s: str) -> str:
    return re.sub(r"[\s\u00a0\u202f,]", "", s.lower()).replace("percent", "%")


def _fmt(v: float) -> str:
    if abs(v) >= 1e15:  # 10^25 FLOPs: "10^25", not 26 digits of float noise
        mant, exp = f"{v:.6e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{'' if mant == '1' else mant + ' x '}10^{int(exp)}"
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _fmt_money(v: float) -> str:
    return f"{int(v):,}".replace(",", " ") if float(v).is_integer() else f"{v:,.2f}".replace(",", " ")


_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTH_ABBR = {m[:3]: i for m, i in _MONTHS.items()} | {"sept": 9}
_MONTH_NAMES = [m.capitalize() for m in _MONTHS] + [m.capitalize() for m in _MONTH_ABBR]
_M = r"(?P<m>" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + r")\.?"
_Y = r"(?P<y>(?:19|20)\d{2})"


def _format_iso(iso: str) -> str:
    parts = iso.split("-")
    if len(parts) == 3:
        return f"{int(parts[2])} {list(_MONTHS)[int(parts[1]) - 1].capitalize()} {parts[0]}"
    if len(parts) == 2:
        return f"{list(_MONTHS)[int(parts[1]) - 1].capitalize()} {parts[0]}"
    return iso


def _month_no(name: str) -> int:
    n = name.lower().rstrip(".")
    return _MONTHS.get(n) or _MONTH_ABBR[n[:4] if n.startswith("sept") else n[:3]]


_DATE_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("day", re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_M}\s*,?\s+{_Y}\b")),
    ("day", re.compile(rf"\b{_M}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s+{_Y}\b")),
    ("day", re.compile(r"\b(?P<y>(?:19|20)\d{2})-(?P<mn>\d{2})-(?P<d>\d{2})\b")),
    ("day", re.compile(r"(?<![\d.])(?P<d>\d{1,2})\.(?P<mn>\d{1,2})\.(?P<y>(?:19|20)\d{2})\b")),
    ("month", re.compile(rf"\b{_M}\s+{_Y}\b")),
]

_YEAR = re.compile(r"(?<![\d/.])(?P<y>(?:19|20)\d{2})\b(?!\s*/|/|-\d|\(\d)")
_YEAR_CUE = re.compile(r"\b(?:from|in|by|since|until|till|before|after|as\s+(?:of|from)|starting|beginning|effective|"
                       r"during|end\s+of|early|mid|late)[\s-]+$", re.I)

_SCALE_WORDS = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9}
_CURRENCY = {"eur": "EUR", "€": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "$": "USD", "us$": "USD",
             "dollar": "USD", "dollars": "USD", "gbp": "GBP", "£": "GBP"}
_MONEY_BEFORE = re.compile(rf"(?=[€$£EUGeug])(?P<cur>\bEUR|€|\bUSD|US\$|\$|\bGBP|£)\s?(?P<num>{NUMBER})"
                           rf"(?:\s?(?P<scale>million|billion|thousand|bn|mn|m|k)\b)?", re.I)
# the suffixes below are tried at the end of each number found by a single scan of the text
_MONEY_AFTER = re.compile(r"(?:\s?(?P<scale>million|billion|thousand|bn|mn)\b)?\s?(?P<cur>EUR\b|euros?\b|€|USD\b|"
                          r"dollars?\b)", re.I)
_PERCENT_AFTER = re.compile(r"\s?(?:%|per\s?cent\b|percent\b|percentage\s+points?\b)", re.I)
_DUR_UNITS = {"minute": ("hours", 1 / 60), "min": ("hours", 1 / 60), "hour": ("hours", 1.0), "hr": ("hours", 1.0),
              "h": ("hours", 1.0), "day": ("hours", 24.0), "calendar day": ("hours", 24.0),
              "week": ("hours", 168.0), "month": ("months", 1.0), "year": ("months", 12.0),
              "working day": ("working_days", 1.0), "business day": ("working_days", 1.0)}
_UNIT = r"(?P<unit>(?:working|business|calendar)[ \-]days?|hours?|hrs?|h|minutes?|mins?|days?|weeks?|months?|years?)\b"
_DURATION_AFTER = re.compile(rf"\s?-?\s?(?:(?:full|whole|clear|entire)\s+)?{_UNIT}", re.I)
_DURATION_ARTICLE = re.compile(
    r"\b(?P<num>an?)\s+(?:(?:full|whole|single|entire)\s+)?(?P<unit>hour|day|week|month|year)\b", re.I)
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
# scientific notation: 10^25, 10**25, 10^{25}, 10²⁵, 3 x 10^24, 1e25, 1.5E+24
_SCIENTIFIC = re.compile(
    r"(?<![\w.,])(?:(?P<mant>\d+(?:\.\d+)?)\s*(?:[x×*·]|times)\s*)?10\s*"
    r"(?:(?:\^|\*\*)\s*\{?\s*(?P<exp>[+\-−]?\d{1,3})(?:\s*\})?|(?P<sup>[⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+))"
    r"|(?<![\w.,])(?P<mant2>\d+(?:\.\d+)?)[eE](?P<exp2>[+\-]?\d{1,3})(?!\w)")
_NUMBER = re.compile(NUMBER, re.I)
_QUALITATIVE = re.compile(r"\b(?:without\s+undue\s+(?:further\s+)?delay|without\s+delay|immediately|promptly|"
                          r"as\s+soon\s+as\s+(?:possible|practicable)|in\s+due\s+time|in\s+a\s+timely\s+manner)\b",
                          re.I)
_REFERENCE_BEFORE = re.compile(
    r"(?:\b(?:articles?|art|paragraphs?|para|points?|annex(?:es)?|chapters?|sections?|titles?|recitals?|"
    r"regulations?|directives?|decisions?|no|nos|number|page|pp?|level|tier|version|v|csf|rmf|sp|gv|id)\.?\s*"
    r"(?:\(eu\)|\(ec\))?\s*(?:\d+\w*\s*(?:,|and|or|to|-)\s*)*|\(eu\)\s*|\(ec\)\s*|[(/§\-:.])$", re.I)
_REFERENCE_AFTER = re.compile(r"^(?:\s*\(\d|/\d|\.\d|\))")


def _singular(unit: str) -> str:
    u = re.sub(r"[\s\-]+", " ", unit.lower())
    if u in ("hrs", "mins"):
        return u[:-1]
    return u[:-1] if u.endswith("s") and u not in ("s",) else u


def _is_count(text: str, start: int, end: int, tok: str) -> bool:
    """A bare number is a count unless it is a reference (Article 5, 6(1), 2024/1689), a bare year or "one"."""
    if tok.lower() in ("one", "zero") or re.fullmatch(r"(?:19|20)\d{2}", tok):
        return False
    before, after = text[max(0, start - 40):start], text[end:end + 3]
    if _REFERENCE_BEFORE.search(before) or _REFERENCE_AFTER.match(after) or re.search(r"\w$", before):
        return False
    return not (re.match(r"[A-Za-z]", after or ""))


def extract_quantities(text: str) -> list[Quantity]:
    """All quantities in ``text`` in reading order (see the module docstring for what is recognised). Cached per
    text, so checking many facts against one output extracts once; treat the returned quantities as read-only.

    >>> [q.normalised_text() for q in extract_quantities("EUR 35 000 000 or 7 % of turnover, within 3 days, "
    ...                                                   "from 2 August 2026")]
    ['EUR 35 000 000', '7 %', '72 hours', '2 August 2026']
    """
    return list(_extract(text))


@lru_cache(maxsize=256)
def _extract(text: str) -> tuple[Quantity, ...]:
    found: list[Quantity] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(q: Quantity) -> None:
        found.append(q)
        taken.append((q.start, q.end))

    for precision, pat in _DATE_PATTERNS:
        for m in pat.finditer(text):
            if not free(m.start(), m.end()):
                continue
            gd = m.groupdict()
            y = int(gd["y"])
            mon = _month_no(gd["m"]) if gd.get("m") else (int(gd["mn"]) if gd.get("mn") else None)
            try:
                if precision == "day":
                    iso = date(y, mon, int(gd["d"])).isoformat()
                else:
                    iso = f"{y:04d}-{mon:02d}"
            except (ValueError, TypeError):
                continue
            add(Quantity(kind="date", unit="date", iso=iso, text=m.group(0), start=m.start(), end=m.end()))
    for m in _YEAR.finditer(text):  # a bare year is a date only after a temporal word: "from 2026", "by 2027"
        if free(m.start(), m.end()) and _YEAR_CUE.search(text[max(0, m.start() - 24):m.start()]):
            add(Quantity(kind="date", unit="date", iso=m.group("y"), text=m.group(0), start=m.start(), end=m.end()))

    for m in _MONEY_BEFORE.finditer(text):
        if free(m.start(), m.end()) and (v := parse_number(m.group("num"))) is not None:
            v *= _SCALE_WORDS.get((m.group("scale") or "").lower(), 1.0)
            add(Quantity(kind="money", value=v, unit=_CURRENCY[m.group("cur").lower()], amount=v,
                         text=m.group(0).strip(), start=m.start(), end=m.end()))

    for m in _SCIENTIFIC.finditer(text):  # 10^25 FLOPs is one number, not "10" and "25"
        if not free(m.start(), m.end()) or _REFERENCE_BEFORE.search(text[max(0, m.start() - 40):m.start()]):
            continue
        if m.group("mant2") is not None:
            mant, exp = m.group("mant2"), m.group("exp2")
        else:
            mant = m.group("mant") or "1"
            exp = (m.group("exp") or m.group("sup").translate(_SUPERSCRIPT)).replace("−", "-")
        try:
            v = float(mant) * 10.0 ** int(exp)
        except (ValueError, OverflowError):
            continue
        noun = re.match(r"\s+([A-Za-z][\w\-]*)", text[m.end():m.end() + 40])
        add(Quantity(kind="count", value=v, unit="count", amount=v, raw_unit=noun.group(1).lower() if noun else None,
                     text=m.group(0), start=m.start(), end=m.end()))

    for m in _DURATION_ARTICLE.finditer(text):  # "a month", "an hour", "a full month"
        if free(m.start(), m.end()):
            family, factor = _DUR_UNITS[m.group("unit").lower()]
            add(Quantity(kind="duration", value=factor, unit=family, amount=1.0, raw_unit=m.group("unit").lower(),
                         text=m.group(0), start=m.start(), end=m.end()))

    for m in _NUMBER.finditer(text):
        if not free(m.start(), m.end()):
            continue
        tok, v = m.group(0), parse_number(m.group(0))
        if v is None:
            continue
        if (x := _MONEY_AFTER.match(text, m.end())) is not None:
            v *= _SCALE_WORDS.get((x.group("scale") or "").lower(), 1.0)
            cur = _CURRENCY[x.group("cur").lower()]
            add(Quantity(kind="money", value=v, unit=cur, amount=v, text=text[m.start():x.end()], start=m.start(),
                         end=x.end()))
            continue
        if (x := _PERCENT_AFTER.match(text, m.end())) is not None:
            add(Quantity(kind="percent", value=v, unit="percent", amount=v, text=text[m.start():x.end()],
                         start=m.start(), end=x.end()))
            continue
        if (x := _DURATION_AFTER.match(text, m.end())) is not None:
            raw = _singular(x.group("unit"))
            if raw != "h" or re.match(r"\d", tok):
                family, factor = _DUR_UNITS[raw]
                add(Quantity(kind="duration", value=v * factor, unit=family, amount=v, raw_unit=raw,
                             text=text[m.start():x.end()], start=m.start(), end=x.end()))
                continue
        if _is_count(text, m.start(), m.end(), tok):
            noun = re.match(r"\s+(?:[a-z\-]+\s+)?([a-z]+)", text[m.end():m.end() + 40])
            add(Quantity(kind="count", value=v, unit="count", amount=v, raw_unit=noun.group(1) if noun else None,
                         text=tok, start=m.start(), end=m.end()))

    for m in _QUALITATIVE.finditer(text):
        if free(m.start(), m.end()):
            add(Quantity(kind="duration", unit="qualitative", text=m.group(0), start=m.start(), end=m.end(),
                         qualitative=True))

    found.sort(key=lambda q: q.start)
    return tuple(found)


# --------------------------------------------------------------------------------------------- facts

_FACT_UNITS = {
    **{u: ("duration", "hours", 1.0) for u in ("hour", "hours", "h", "hr", "hrs")},
    **{u: ("duration", "hours", 24.0) for u in ("day", "days", "calendar day", "calendar days")},
    **{u: ("duration", "hours", 168.0) for u in ("week", "weeks")},
    **{u: ("duration", "hours", 1 / 60) for u in ("minute", "minutes")},
    **{u: ("duration", "months", 1.0) for u in ("month", "months")},
    **{u: ("duration", "months", 12.0) for u in ("year", "years")},
    **{u: ("duration", "working_days", 1.0) for u in ("working day", "working days", "business days")},
    **{u: ("percent", "percent", 1.0) for u in ("percent", "%", "per cent", "pct")},
    **{u: ("date", "date", 1.0) for u in ("date",)},
    **{u: ("count", "count", 1.0) for u in ("count", "number", "")},
}


def fact_quantity(fact: KeyFact) -> Quantity:
    """The fact's value as a :class:`Quantity`; raises ValueError naming the fact when it cannot be read."""
    unit = (fact.unit or "").strip()
    low = unit.lower()
    where = f"key fact {fact.name!r} ({fact.provision})"
    if isinstance(fact.value, str) and low not in ("date",):
        qs = [q for q in extract_quantities(fact.value + (f" {unit}" if unit else "")) if not q.qualitative]
        if not qs:
            try:
                v = float(fact.value)
            except ValueError:
                raise ValueError(f"{where}: value {fact.value!r} holds no number, date or duration") from None
        else:
            return qs[0].model_copy(update={"text": qs[0].normalised_text() or fact.value})
    else:
        v = fact.value
    if low == "date":
        s = str(v).strip()
        m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", s)
        if m:
            iso = s
        else:
            qs = [q for q in extract_quantities(s) if q.kind == "date"]
            if not qs:
                raise ValueError(f"{where}: date value {s!r} is not 'YYYY-MM-DD' (or 'YYYY-MM', 'YYYY')")
            iso = qs[0].iso
        q = Quantity(kind="date", unit="date", iso=iso, text=_format_iso(iso))
        return q
    v = float(v)
    if low in _CURRENCY or unit in _CURRENCY:
        cur = _CURRENCY.get(low) or _CURRENCY[unit]
        q = Quantity(kind="money", value=v, unit=cur, amount=v)
    elif low in _FACT_UNITS:
        kind, family, factor = _FACT_UNITS[low]
        q = Quantity(kind=kind, value=v * factor, unit=family, amount=v,
                     raw_unit=_singular(low) if kind == "duration" else None)
    else:  # a noun: "employees", "members"
        q = Quantity(kind="count", value=v, unit="count", amount=v, raw_unit=_singular(low))
    if q.kind == "duration":
        q.text = f"{_fmt(v)} {unit}"
    else:
        q.text = q.normalised_text()
    return q


def compare(expected: Quantity, got: Quantity) -> tuple[bool | None, str]:
    """(equal?, note). None when the two cannot be compared (other currency, other date-less dimension)."""
    if expected.kind != got.kind:
        return None, "different kinds"
    if expected.kind == "date":
        e, g = (expected.iso or "").split("-"), (got.iso or "").split("-")
        n = min(len(e), len(g))
        prec = {1: "year", 2: "month", 3: "day"}[n]
        return e[:n] == g[:n], ("" if len(e) == len(g) else f"compared at {prec} precision")
    if expected.kind == "money" and expected.unit != got.unit:
        return None, f"other currency ({got.unit} vs {expected.unit})"
    if expected.kind == "duration" and expected.unit != got.unit:
        fams = {expected.unit, got.unit}
        if fams == {"hours", "months"}:
            months, hours = (expected, got) if expected.unit == "months" else (got, expected)
            lo, hi = 28 * 24 * months.value, 31 * 24 * months.value
            return lo <= hours.value <= hi, "approximately: 1 month = 28 to 31 days"
        return None, f"not comparable ({got.unit} vs {expected.unit})"
    if expected.value is None or got.value is None:
        return None, "no figure"
    return abs(expected.value - got.value) <= 1e-9 * max(1.0, abs(expected.value)), ""


# --------------------------------------------------------------------------------------------- findings

class NumberFinding(BaseModel):
    """How the output treats one key fact."""

    fact: KeyFact
    status: Literal["consistent", "contradicted", "not_mentioned"]
    term: str | None = Field(default=None, description="the fact's term as it occurs in the output")
    output_span: str | None = Field(default=None, description="the output's words from the term to the quantity")
    output_value: str | None = None
    expected_value: str = ""
    start: int | None = Field(default=None, description="character offsets of output_span in the output")
    end: int | None = None
    explanation: str = ""


_SENT_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(\[])|\n\s*\n|\n\s*(?:[-*•]|\d+[.)])\s+")


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence (also split at blank lines and list items)."""
    out, pos = [], 0
    for m in _SENT_BOUNDARY.finditer(text):
        if m.start() > pos:
            out.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        out.append((pos, len(text)))
    return out


def term_pattern(term: str) -> re.Pattern:
    """Case-insensitive pattern for a term with simple inflection of each word (plural, -ed, -ing)."""
    parts = []
    for w in re.split(r"[\s\-]+", term.strip()):
        if not w:
            continue
        lw = re.escape(w.lower())
        if len(w) <= 2 or not w.isalpha():
            parts.append(lw)
        elif w.lower().endswith("y"):
            parts.append(lw[:-1] + r"(?:y|ies|ied|ying)")
        elif w.lower().endswith("e"):
            parts.append(lw[:-1] + r"(?:e|es|ed|ing)")
        elif w.lower().endswith("s"):
            parts.append(lw + r"(?:es)?")
        else:
            parts.append(lw + r"(?:s|es|ed|ing)?")
    return re.compile(r"\b" + r"[\s\-]+".join(parts) + r"\b", re.I)


def _fact_terms(fact: KeyFact) -> list[str]:
    return [t for t in (fact.terms or [fact.name]) if t.strip()]


class _Mention(BaseModel):
    facts: list[int] = Field(description="indices of the facts one of whose terms matches this span")
    start: int
    end: int
    text: str


_ANCHOR = re.compile(r"\b(?:after|before|following|upon|prior\s+to|subsequent\s+to)\b", re.I)
_ANCHOR_OF = re.compile(r"\s+(?:of|from)\s+(?:(?:the|an?|that|this|its|their|your)\s+)?$", re.I)


def _anchors(text: str, a: int, b: int, kind: str = "duration") -> bool:
    """True when text[a:b] (between a quantity and a later term) makes the term the period's reference point:
    "one month *after* the incident notification", "within one year *of the* incident notification"."""
    last = None
    for last in _ANCHOR.finditer(text, a, b):
        pass
    if last is not None and not re.search(r"[,;:()]", text[last.end():b]):
        return True
    return kind == "duration" and _ANCHOR_OF.fullmatch(text, a, b) is not None


def _gap(text: str, words: list[int], a: tuple[int, int], b: tuple[int, int]) -> int:
    lo, hi = (a[1], b[0]) if a[1] <= b[0] else (b[1], a[0])
    if lo >= hi:
        return 0
    n = bisect_left(words, hi) - bisect_right(words, lo - 1)
    return n + 3 * text.count(";", lo, hi)


# clause boundaries inside a sentence; a "(" opens a parenthetical clause and the words after its ")" continue the
# clause before it
_CLAUSE_BREAK = re.compile(r";|,(?!\d)|\s+[–—]\s+|\s\(|\)|\s+(?:and|while|whilst|whereas|but|although|though)\s+",
                           re.I)
_DETERMINERS = re.compile(r"(?:\b(?:the|an?|both|either|its|their|this|that|these|those|each|any|every|your|our)\b|"
                          r"[\s\"'])*", re.I)
# a deadline-like construction right before a duration: "within 72 hours", "no later than one month", "is 10 days",
# "of at least six months", "gives you 72 hours"
_DEADLINE_CUE = re.compile(
    r"(?:\b(?:within|than|latest|of|after|in|by|to|for|is|are|be|was|were|been|being|due|until|till|before|from|"
    r"since|on|at|every|each|over|under|only|just|least|most|maximum|minimum|max|min|about|around|approximately|"
    r"roughly|some|another|further|extra|additional|up|deadline|limit|period|window|clock|timeline|timeframe|"
    r"term|requires?|required|sets?)|[:=\-–—])\s*$"
    r"|\b(?:gives?|given|giving|has|have|had|having|gets?|got|allows?|allowed|allowing|grants?|granted|leaves?)"
    r"\s+(?:\w+\s+){0,2}$", re.I)
# what may open a clause that only continues the previous one's deadline: "..., and in any event within 48 hours"
_CONTINUATION = re.compile(
    r"\s*(?:(?:in\s+any\s+(?:event|case)|in\s+all\s+cases|at\s+the\s+(?:very\s+)?latest|at\s+most)\s*,?\s*)?"
    r"(?:within|(?:no|not)\s+later\s+than|by|in|at\s+the\s+(?:very\s+)?latest)\s+$", re.I)


class _Clause(BaseModel):
    start: int
    end: int
    cid: int
    opener: str = ""


def _clauses(text: str, s0: int, s1: int, protected: list[tuple[int, int]]) -> list[_Clause]:
    """The clauses of ``text[s0:s1]`` in reading order; a boundary inside a protected span (a quantity such as
    "one hundred and twenty days", a term such as "article 6(1)") is ignored."""
    out: list[_Clause] = []
    cid, next_id, opener, pos = 0, 1, "", s0
    stack: list[tuple[int, str]] = []
    for m in _CLAUSE_BREAK.finditer(text, s0, s1):
        if any(a < m.end() and m.start() < b for a, b in protected):
            continue
        tok = m.group(0).strip().lower()
        if tok == ")" and not stack:
            continue
        if text[pos:m.start()].strip():
            out.append(_Clause(start=pos, end=m.start(), cid=cid, opener=opener))
            opener = ""
        pos = m.end()
        if tok == ")":
            cid, opener = stack.pop()
            continue
        if tok == "(":
            stack.append((cid, opener))
        cid, next_id = next_id, next_id + 1
        opener = f"{opener} {tok}".strip()
    if text[pos:s1].strip():
        out.append(_Clause(start=pos, end=s1, cid=cid, opener=opener))
    return out


def _clause_at(clauses: list[_Clause], pos: int) -> int:
    """Index (in ``clauses``) of the clause holding ``pos`` (the last one starting at or before it)."""
    i = bisect_right([c.start for c in clauses], pos) - 1
    return max(i, 0)


def _deadline_like(text: str, clause_start: int, m: _Mention, q: Quantity, gap: int) -> bool:
    """A duration is paired with a term only when it stands in a deadline-like construction or right next to it."""
    if gap == 0:
        return True
    lo = max(clause_start, q.start - 60)
    if m.end <= q.start:
        lo = max(lo, m.end)
    return _DEADLINE_CUE.search(text, lo, q.start) is not None or lo == q.start == m.end


def check_numbers(output_text: str, facts: list[KeyFact]) -> list[NumberFinding]:
    """One :class:`NumberFinding` per fact, in the order given (see the module docstring for the rules).

    >>> fs = [KeyFact(name="early warning", value=24, unit="hours", provision="nis2:art_23.4.a",
    ...               terms=["early warning"]),
    ...       KeyFact(name="incident notification", value=72, unit="hours", provision="nis2:art_23.4.b",
    ...               terms=["incident notification", "full notification"])]
    >>> [x.status for x in check_numbers("An early warning within 24 hours and a full notification within "
    ...                                  "72 hours.", fs)]
    ['consistent', 'consistent']
    >>> [x.status for x in check_numbers("The incident notification is due within 72 hours, and the final report "
    ...                                  "one month later; the early warning goes out without undue delay.", fs)]
    ['not_mentioned', 'consistent']
    """
    parsed: list[Quantity | None] = []
    errors: dict[int, str] = {}
    for i, f in enumerate(facts):
        try:
            parsed.append(fact_quantity(f))
        except ValueError as e:
            parsed.append(None)
            errors[i] = str(e)
    quantities = extract_quantities(output_text)
    words = [m.start() for m in re.finditer(r"\w+", output_text)]
    # per fact: (status, mention, quantity, note); status "uncertain" = paired across clauses with another value,
    # "ambiguous" = the term is shared with another fact whose value the quantity matches (neither blocks)
    per_fact: dict[int, list[tuple[str, _Mention, Quantity, str]]] = {i: [] for i in range(len(facts))}
    qualitative_seen: dict[int, tuple[Quantity, str]] = {}
    patterns = {i: [term_pattern(t) for t in _fact_terms(f)] for i, f in enumerate(facts) if parsed[i] is not None}

    for s0, s1 in sentences(output_text):
        by_span: dict[tuple[int, int], _Mention] = {}
        for i, pats in patterns.items():
            for pat in pats:
                for x in pat.finditer(output_text, s0, s1):
                    mm = by_span.setdefault((x.start(), x.end()),
                                            _Mention(facts=[], start=x.start(), end=x.end(), text=x.group(0)))
                    if i not in mm.facts:
                        mm.facts.append(i)
        # the most specific term wins: "notification" inside "incident notification" is not a mention of its own,
        # whether the longer term belongs to the same fact or to another one
        mentions = [m for m in by_span.values() if not any(
            o.start <= m.start and m.end <= o.end and (o.end - o.start) > (m.end - m.start) for o in by_span.values())]
        if not mentions:
            continue
        mentions.sort(key=lambda m: m.start)
        sent_q = [q for q in quantities if s0 <= q.start < s1]
        clauses = _clauses(output_text, s0, s1, [(q.start, q.end) for q in sent_q] +
                           [(m.start, m.end) for m in mentions])
        # "The early warning and the incident notification are both due within 24 hours": a clause that is only a
        # noun phrase naming a fact, followed by "and", shares the next clause's predicate
        for k in range(len(clauses) - 1):
            c, nxt = clauses[k], clauses[k + 1]
            if nxt.opener.split()[-1:] != ["and"] or c.cid == nxt.cid:
                continue
            inner = [m for m in mentions if c.start <= m.start and m.end <= c.end]
            rest, p = [], c.start
            for m in inner:
                rest.append(output_text[p:m.start])
                p = m.end
            rest.append(output_text[p:c.end])
            if inner and all(_DETERMINERS.fullmatch(r) for r in rest):
                old = nxt.cid
                for c2 in clauses:
                    if c2.cid == old:
                        c2.cid = c.cid
        m_clause = [_clause_at(clauses, m.start) for m in mentions]
        q_clause = {q.start: _clause_at(clauses, q.start) for q in sent_q}

        def compatible(m: _Mention) -> list[Quantity]:
            kinds_ = {parsed[i].kind for i in m.facts}
            return [q for q in sent_q if q.kind in kinds_ and not q.qualitative]

        strong, weak = [], []
        for mi, m in enumerate(mentions):
            ci = m_clause[mi]
            cands = compatible(m)
            for q in cands:
                qi = q_clause[q.start]
                gap = _gap(output_text, words, (m.start, m.end), (q.start, q.end))
                before = q.end <= m.start
                if before and _anchors(output_text, q.end, m.start, q.kind):
                    continue  # "one month after the incident notification": the term is the reference point
                if clauses[qi].cid == clauses[ci].cid:
                    if q.kind == "duration" and not _deadline_like(output_text, clauses[ci].start, m, q, gap):
                        continue
                    strong.append((0, 0 if gap == 0 else 1, int(before), gap, mi, q.start, q))
                else:
                    weak.append((2, 0, int(before), gap, mi, q.start, q))
            if not any(s[4] == mi for s in strong):
                # "... without undue delay and in any event within 48 hours": the next clause continues the deadline
                nxt = ci + 1
                if nxt < len(clauses) and clauses[nxt].cid != clauses[ci].cid and not any(
                        clauses[nxt].start <= o.start < clauses[nxt].end for o in mentions):
                    first = next((q for q in sent_q if clauses[nxt].start <= q.start < clauses[nxt].end), None)
                    if first is not None and first in cands and _CONTINUATION.fullmatch(
                            output_text, clauses[nxt].start, first.start):
                        strong.append((1, 1, 0, _gap(output_text, words, (m.start, m.end), (first.start, first.end)),
                                       mi, first.start, first))
            if not cands and any(parsed[i].kind == "duration" for i in m.facts):
                qual = [q for q in sent_q if q.qualitative]
                if qual:
                    for i in m.facts:
                        qualitative_seen.setdefault(i, (qual[0], m.text))
        strong.sort(key=lambda p: p[:6])
        weak.sort(key=lambda p: p[:6])
        assigned: dict[int, tuple[Quantity, bool]] = {}
        used: set[int] = set()
        for p in strong:  # one quantity per term occurrence first ...
            mi, qs, q = p[4], p[5], p[6]
            if mi not in assigned and qs not in used:
                assigned[mi] = (q, True)
                used.add(qs)
        for p in strong:  # ... then occurrences left over share their nearest quantity in the same clause
            if p[4] not in assigned:
                assigned[p[4]] = (p[6], True)
        for p in sorted(weak, key=lambda p: (p[5] in used, *p[:6])):  # other clauses: may confirm, never contradict
            if p[4] not in assigned:
                assigned[p[4]] = (p[6], False)
        for mi, (q, is_strong) in assigned.items():
            m = mentions[mi]
            results = {i: compare(parsed[i], q) for i in m.facts}
            shared_ok = len(m.facts) > 1 and any(r[0] is True for r in results.values())
            for i, (ok, note) in results.items():
                if ok is None:
                    continue
                if ok:
                    status = "consistent"
                    if not is_strong:
                        note = "; ".join(x for x in (note, "stated in another clause") if x)
                elif shared_ok:
                    status = "ambiguous"
                elif is_strong:
                    status = "contradicted"
                else:
                    status = "uncertain"
                per_fact[i].append((status, m, q, note))

    out: list[NumberFinding] = []
    for i, f in enumerate(facts):
        exp = parsed[i]
        if exp is None:
            out.append(NumberFinding(fact=f, status="not_mentioned", explanation=f"cannot check: {errors[i]}"))
            continue
        rows = per_fact[i]
        decided = [r for r in rows if r[0] in ("contradicted", "consistent")]
        if not decided:
            qual = qualitative_seen.get(i)
            if rows:
                status, m, q, _ = rows[0]
                why = ("the term is shared with another key fact whose value it matches" if status == "ambiguous"
                       else "it stands in another clause, so the pairing is unsure")
                expl = (f"output says {q.display(exp)} near {m.text!r}, not compared ({why}); {f.provision} says "
                        f"{exp.text}")
            elif qual:
                expl = (f"output says {qual[0].text!r} for {qual[1]!r} but gives no figure; {f.provision} says "
                        f"{exp.text}")
            else:
                expl = f"output does not state {f.name!r} with a figure"
            out.append(NumberFinding(fact=f, status="not_mentioned", expected_value=exp.text, explanation=expl))
            continue
        status, m, q, note = next((r for r in decided if r[0] == "contradicted"), decided[0])
        a, b = min(m.start, q.start), max(m.end, q.end)
        expl = f"output says {q.display(exp)} for {m.text!r}; {f.provision} says {exp.text}"
        if note:
            expl += f" ({note})"
        out.append(NumberFinding(fact=f, status=status, term=m.text, output_span=output_text[a:b],
                                 output_value=q.display(exp), expected_value=exp.text, start=a, end=b,
                                 explanation=expl))
    return out


def tally_numbers(output_text: str, facts: list[KeyFact]):
    """``(findings, contradicted, consistent, mentioned)`` of the output's figures against ``facts``."""
    found = check_numbers(output_text, facts)
    bad = [x for x in found if x.status == "contradicted"]
    good = [x for x in found if x.status == "consistent"]
    return found, bad, good, len(bad) + len(good)


def number_consistency(output_text: str, facts: list[KeyFact]) -> CheckResult:
    """Fails when the output contradicts any fact; score = consistent / mentioned."""
    if not facts:
        return CheckResult(name="number_consistency", status="skipped", detail="no key facts to check")
    found, bad, good, mentioned = tally_numbers(output_text, facts)
    return CheckResult(
        name="number_consistency", status="fail" if bad else "pass",
        score=(len(good) / mentioned) if mentioned else None,
        failures=[f"[{x.fact.provision}] {x.explanation}" for x in bad],
        detail=f"{len(facts)} key fact(s): {len(good)} consistent, {len(bad)} contradicted, "
               f"{len(facts) - mentioned} not mentioned")


# --------------------------------------------------------------------------------------------- evidence (advisory)

_STOP = set("""a an and any are as at be been being by can for from has have if in into is it its may must no not of on
or shall should such that the their them then there these they this those to under upon was were which while who will
with within without would""".split())
_SEGMENT = re.compile(r"(?<=[.;:!?])\s+|\n+")


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z\-]{2,}", text.lower()) if w not in _STOP}


def numbers_in_evidence_vs_output(output_text: str, evidence_texts: dict[str, str], *,
                                  min_overlap: float = 0.6) -> list[NumberFinding]:
    """Advisory, fact-free comparison: each output sentence stating a duration / date / amount / percentage is
    matched, by the content words around it (up to 12 words before and 8 after, not crossing another quantity of its
    kind), with the evidence segment (sentence, clause or list point) sharing most of them; when that
    segment states a quantity of the same kind and none equals the output's, the finding is ``contradicted``.

    ``evidence_texts``: unit id → text. Findings carry a synthetic :class:`KeyFact` (name ``figure in <id>``,
    provision = the unit id, quote = the segment). Word overlap is a heuristic: use it to inform the debate, not to
    block on its own (key facts of policy rules are the deterministic path).

    >>> ev = {"nis2:art_23.4.a": "(a) without undue delay and in any event within 24 hours of becoming aware of "
    ...                          "the significant incident, an early warning;"}
    >>> [f.status for f in numbers_in_evidence_vs_output(
    ...     "An early warning is due within 72 hours of becoming aware of a significant incident.", ev)]
    ['contradicted']
    """
    segments: list[tuple[str, str, set[str], list[Quantity]]] = []
    for uid, text in evidence_texts.items():
        for seg in _SEGMENT.split(text):
            qs = [q for q in extract_quantities(seg) if not q.qualitative and q.kind != "count"]
            if qs:
                segments.append((uid, seg.strip(), _content_words(seg), qs))
    out: list[NumberFinding] = []
    for s0, s1 in sentences(output_text):
        sent = output_text[s0:s1]
        oqs = [q for q in extract_quantities(sent) if not q.qualitative and q.kind != "count"]
        if not oqs:
            continue
        for i, q in enumerate(oqs):
            lo = max([o.end for o in oqs[:i] if o.kind == q.kind], default=0)
            hi = min([o.start for o in oqs[i + 1:] if o.kind == q.kind], default=len(sent))
            before = re.findall(r"\S+", sent[lo:q.start])[-12:]
            after = re.findall(r"\S+", sent[q.end:hi])[:8]
            words = _content_words(" ".join(before + after))
            if len(words) < 3:
                continue
            scored = [(len(words & w) / len(words), uid, seg, [e for e in eqs if e.kind == q.kind])
                      for uid, seg, w, eqs in segments]
            scored = [x for x in scored if x[3] and x[0] >= min_overlap]
            if not scored:
                continue
            overlap, uid, seg, eqs = max(scored, key=lambda x: x[0])
            results = [compare(e, q) for e in eqs]
            if any(r[0] is None for r in results) and not any(r[0] is True for r in results):
                continue
            ok = any(r[0] is True for r in results)
            e = eqs[0]
            fact = KeyFact(name=f"figure in {uid}", value=e.value if e.kind != "date" else (e.iso or ""),
                           unit={"duration": (e.raw_unit or e.unit), "date": "date", "percent": "percent",
                                 "money": e.unit}.get(e.kind), provision=uid, quote=seg[:300])
            expl = (f"output says {q.display(e)}; {uid} says {', '.join(x.text for x in eqs)} in a passage sharing "
                    f"{overlap:.0%} of the words around it: \"{seg[:160]}\"")
            out.append(NumberFinding(fact=fact, status="consistent" if ok else "contradicted", output_span=sent.strip(),
                                     output_value=q.display(e), expected_value=", ".join(x.text for x in eqs),
                                     start=s0 + q.start, end=s0 + q.end, explanation=expl))
    return out
