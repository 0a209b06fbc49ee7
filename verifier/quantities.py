"""Quantities in text — numbers, durations, dates, amounts, percentages: extraction, normalisation, the reading of
a key fact's value (:func:`fact_quantity`) and the comparison of two quantities (:func:`compare`).

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

Written numbers (``seventy-two``, ``one hundred and twenty``) are understood; scientific notation (``10^25``,
``10²⁵``, ``1e25``, ``3 x 10^24``) is one number.

**Units.** Durations are normalised within a family: hours, days and weeks to hours (1 day = 24 h); months and years
to months (1 year = 12 months); working days stay working days. Across the hours and months families the comparison
is approximate and says so (:func:`compare`): 1 month = 28 to 31 days.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

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
#: a period said as an adverb: "tested at least yearly", "reviewed annually"
_DURATION_ADVERB = re.compile(r"\b(?P<unit>yearly|annually|quarterly|monthly|weekly|daily|hourly)\b", re.I)
_ADVERB_UNIT = {"yearly": ("year", 1.0), "annually": ("year", 1.0), "quarterly": ("month", 3.0),
                "monthly": ("month", 1.0), "weekly": ("week", 1.0), "daily": ("day", 1.0), "hourly": ("hour", 1.0)}
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
    r"regulations?|directives?|decisions?|no|nos|number|page|pp?|level|tier|version|v|csf|rmf|sp|gv|id|"
    r"govern|map|measure|manage|ai)\.?\s*"
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

    for m in _DURATION_ADVERB.finditer(text):  # "at least yearly" = a period of one year
        if free(m.start(), m.end()):
            unit, n = _ADVERB_UNIT[m.group("unit").lower()]
            family, factor = _DUR_UNITS[unit]
            add(Quantity(kind="duration", value=factor * n, unit=family, amount=n, raw_unit=unit,
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


# --------------------------------------------------------------------------------------------- key facts, comparison

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
