"""(query, positive passage) pairs for training the domain embedder, by query type, with a unit-level split.

Two generators write the same :class:`TrainPair` rows:

* :class:`TemplateQueryGenerator` needs no LLM (the offline default). From each passage it extracts the heading
  title, a duty or statement sentence (legal boilerplate and cross-references removed; subject and predicate around
  the modal verb), idf-weighted key phrases, and the policy packs' rule titles / key facts that point at the passage;
  then fills the templates of ``query_templates.yaml`` per query type (``benign_sensitive`` / ``ambiguous`` /
  ``adversarial``, the seed embedder's types) and rewrites legal terms into everyday words with a probability
  (``colloquial`` lexicon), so one passage yields formal and colloquial queries.
* :class:`LLMQueryGenerator` asks an ``mad_guardrails.agents.backends`` LLM (prompt ``prompts/embedder_queries.j2``) for one query
  per type. Use it with a capable served model (the GPU profile's Qwen3-14B); the offline SmolLM2-135M is too weak to
  write useful queries, so the shipped adapter was trained on template queries only.

**Split by unit**: every passage has a *split key* -- its top-level unit (article / recital / annex; for framework
elements the category under the function, ``nist-csf-2.0:DE.CM``, ``nist-ai-rmf:GOVERN-1``) -- and a key is in
``test`` with probability ``test_fraction`` (sha256 of seed + key), so no positive of a test query (nor any passage
of its article) is a training positive or a training hard negative. ``holdout_keys`` forces keys into test (e.g. the
gold units of the hand-written set, for a strict run).

**Decontamination**: generated queries whose word sets overlap a held-out query (``evals/data/*.jsonl``) with
Jaccard ≥ ``max_overlap`` are dropped, so the hand-written test set is never trained on, not even by accident.

    >>> from mad_guardrails.core.units import Unit
    >>> from mad_guardrails.retrieval.corpus import Corpus
    >>> u = Unit(id="x:art_3", doc="x", kind="article", heading="Article 3 — Notification of incidents",
    ...          text="1. Operators shall notify the authority of any significant incident within 24 hours.")
    >>> pairs = generate_pairs(Corpus.from_units([u]), seed=1, test_fraction=0.0, decontaminate=False)
    >>> sorted({p.type for p in pairs}) == sorted(QUERY_TYPES) and all(p.unit_id.startswith("x:art_3") for p in pairs)
    True
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field

from mad_guardrails.core.errors import InputError

if TYPE_CHECKING:
    from mad_guardrails.retrieval.corpus import Corpus

QueryType = Literal["benign_sensitive", "ambiguous", "adversarial"]
QUERY_TYPES: tuple[str, ...] = ("benign_sensitive", "ambiguous", "adversarial")
Split = Literal["train", "test"]
TEMPLATES_FILE = Path(__file__).with_name("query_templates.yaml")
OFFTOPIC_TRAIN_FILE = Path(__file__).with_name("offtopic_train.yaml")


class PassageRef(BaseModel):
    """What training needs of an indexed passage."""

    pid: str
    unit_id: str
    doc: str
    key: str = Field(description="split key: the top-level unit (framework elements: their category)")
    heading: str = ""
    text: str
    embed_text: str
    kind: str = ""


class TrainPair(BaseModel):
    """One generated (query, positive passage) pair; ``negatives`` are filled by hard-negative mining."""

    query: str
    type: QueryType
    pid: str = Field(description="passage id of the positive")
    unit_id: str
    key: str
    doc: str
    positive: str = Field(description="the positive's embed text (what the index embeds)")
    negatives: list[str] = Field(default_factory=list)
    negative_pids: list[str] = Field(default_factory=list)
    source: str = Field(description="title | clause | phrase | term | fact | llm")
    split: Split = "train"


# --------------------------------------------------------------------------------------------------------------------
# passages and the split
# --------------------------------------------------------------------------------------------------------------------


def split_key(corpus: Corpus, unit_id: str) -> str:
    """The unit a passage is split by: its top-level unit; for framework elements the level under the function.

    >>> from mad_guardrails.retrieval.corpus import Corpus
    >>> from mad_guardrails.core.units import Unit
    >>> c = Corpus.from_units([Unit(id="f:DE", doc="f", kind="framework_element", text="Detect"),
    ...     Unit(id="f:DE.CM", doc="f", kind="framework_element", text="Monitoring", parent="f:DE"),
    ...     Unit(id="f:DE.CM-01", doc="f", kind="framework_element", text="Networks are monitored", parent="f:DE.CM")])
    >>> split_key(c, "f:DE.CM-01"), split_key(c, "f:DE")
    ('f:DE.CM', 'f:DE')
    """
    u = corpus.get(unit_id)
    if u is None:
        return unit_id
    chain = [u, *corpus.ancestors(unit_id)]  # nearest first, root last
    if u.kind == "framework_element" or chain[-1].kind == "framework_element":
        return chain[-2].id if len(chain) >= 2 else chain[-1].id
    root = corpus.root_of(unit_id)
    return root.id if root is not None else unit_id


def passage_refs(corpus: Corpus, passages: Sequence[Any] | None = None) -> list[PassageRef]:
    """The corpus's passages (as :meth:`Corpus.passages` cuts them for the index) with their split keys."""
    passages = list(passages) if passages is not None else corpus.passages()
    out = []
    for p in passages:
        get = p.get if isinstance(p, dict) else (lambda k, d="", _p=p: getattr(_p, k, d))
        uid = get("unit_id")
        text = get("text")
        heading = get("heading", "") or ""
        embed = get("embed_text", "") or (f"{heading}\n{text}" if heading else text)
        out.append(PassageRef(pid=get("passage_id", "") or uid, unit_id=uid, doc=get("doc"), key=split_key(corpus, uid),
                              heading=heading, text=text, embed_text=embed, kind=get("kind", "") or ""))
    return out


def assign_split(key: str, test_fraction: float, seed: int, holdout_keys: Iterable[str] = ()) -> Split:
    """``test`` for a ``test_fraction`` of keys (stable hash of seed + key) and for keys under ``holdout_keys``."""
    from mad_guardrails.core.units import id_covers

    if any(id_covers(h, key) or id_covers(key, h) for h in holdout_keys):
        return "test"
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)
    return "test" if (h % 10_000) < test_fraction * 10_000 else "train"


# --------------------------------------------------------------------------------------------------------------------
# text analysis (no LLM)
# --------------------------------------------------------------------------------------------------------------------

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
_IMPERATIVE = set("""establish maintain document implement conduct assess evaluate review identify apply use verify monitor
define develop ensure integrate consider provide track test disclose engage plan train update measure manage
prioritize prioritise compare determine examine inventory collect create adopt align allocate analyze analyse
audit avoid conduct communicate coordinate deploy design detect employ enable estimate explain include inform
institute involve leverage limit log map prepare protect publish record reduce re-evaluate refine regularly
remove report require respond retain set share specify support take utilize validate""".split())


def clean_text(text: str) -> str:
    """Markdown, footnote markers and list markers removed; whitespace collapsed."""
    t = re.sub(r"\[\^?\d+\]", "", text)
    t = t.replace("**", "").replace("__", "").replace("‘", "'").replace("’", "'").replace("“", '"').replace("”", '"')
    lines = [_MARK_RE.sub("", ln).strip() for ln in t.splitlines()]
    return re.sub(r"\s+", " ", " ".join(x for x in lines if x)).strip()


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
        if len(words) >= 4 and words[0].lower() in _IMPERATIVE:
            return _lower_first(_cut_words(s2, max_words))
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


# --------------------------------------------------------------------------------------------------------------------
# templates
# --------------------------------------------------------------------------------------------------------------------


class Template(BaseModel):
    slots: list[str]
    text: str


class TemplateSet(BaseModel):
    acts: dict[str, list[str]]
    actors: dict[str, list[str]]
    templates: dict[str, list[Template]]
    colloquial: list[tuple[str, list[str]]]


@lru_cache(maxsize=4)
def load_templates(path: str | None = None) -> TemplateSet:
    p = Path(path) if path else TEMPLATES_FILE
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        ts = TemplateSet.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as e:
        raise InputError(f"query templates cannot be read ({e})", where=str(p),
                         fix="fix the YAML (see the header of retrieval/training/query_templates.yaml)") from e
    missing = set(QUERY_TYPES) - set(ts.templates)
    if missing:
        raise InputError(f"no templates for query types {sorted(missing)}", where=str(p),
                         fix="add a list under templates: for each type")
    return ts


class Colloquializer:
    """Legal terms → everyday words (one regex pass, longest pattern first)."""

    def __init__(self, pairs: Sequence[tuple[str, list[str]]], rng: random.Random):
        self.rng = rng
        ordered = sorted(pairs, key=lambda p: -len(p[0]))
        self.alts = [alts for _, alts in ordered]
        self.rx = re.compile("|".join(f"(?P<g{i}>\\b(?:{pat})\\b)" for i, (pat, _) in enumerate(ordered)),
                             re.IGNORECASE)

    def __call__(self, text: str, p: float = 1.0) -> str:
        def rep(m: re.Match) -> str:
            if self.rng.random() > p:
                return m.group(0)
            i = int(m.lastgroup[1:])
            return self.rng.choice(self.alts[i])

        out = re.sub(r"\s+", " ", self.rx.sub(rep, text)).strip()
        return re.sub(r"(?i)\b(the|a|an) (the|a|an|we)\b", r"\2", out)


class Facts(BaseModel):
    """What the generator extracted from one passage (the slots)."""

    title: str = ""
    term: str = ""
    imperative: str = ""
    clauses: list[Clause] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    phrases: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)


def _lower_first(s: str) -> str:
    if len(s) > 1 and s[0].isupper() and not s[1].isupper():
        return s[0].lower() + s[1:]
    return s


class TemplateQueryGenerator:
    """Fills ``query_templates.yaml`` from a passage's extracted slots (see the module docstring)."""

    def __init__(self, keyphrases: KeyPhrases, *, seed: int = 0, templates: TemplateSet | None = None,
                 colloquial_p: float = 0.6, act_p: float = 0.5):
        self.ts = templates or load_templates()
        self.kp = keyphrases
        self.rng = random.Random(seed)
        self.coll = Colloquializer(self.ts.colloquial, self.rng)
        self.colloquial_p = colloquial_p
        self.act_p = act_p

    def facts(self, ref: PassageRef, extra_facts: Sequence[str] = ()) -> Facts:
        text = ref.text
        title = title_of(ref.heading)
        if title.lower() in ("definitions", "definition", "subject matter", "entry into force", "addressees"):
            title = ""
        return Facts(title=title, term=defined_term(text), imperative=imperative_duty(text),
                     clauses=duty_clauses(text)[:3], statements=statements(text)[:3],
                     phrases=self.kp.phrases(text, k=3), facts=list(extra_facts)[:4])

    def _slots(self, ref: PassageRef, f: Facts) -> dict[str, str]:
        rng = self.rng
        slots: dict[str, str] = {}
        if f.title:
            slots["title"] = _lower_first(f.title)
        if f.term:
            slots["term"] = f.term
        if f.imperative:
            slots["duty"] = f.imperative
        elif f.clauses:
            c = rng.choice(f.clauses)
            if not c.predicate.lower().startswith(("be ", "not be ", "have been ")):  # passive: no duty of an actor
                slots["duty"] = c.predicate
            if c.subject:
                slots["clause"] = _lower_first(c.statement)
                slots["actor"] = _lower_first(c.subject)
        elif f.statements and not f.term:
            st = rng.choice(f.statements)
            if not st.split()[0].lower() in _IMPERATIVE:
                slots["clause"] = _lower_first(st)
        if "actor" not in slots and ref.doc in self.ts.actors:
            slots["actor"] = rng.choice(self.ts.actors[ref.doc])
        if f.phrases:
            ph = list(f.phrases)
            rng.shuffle(ph)
            slots["phrase"] = ph[0].lower() if not ph[0].isupper() else ph[0]
            if len(ph) > 1:
                slots["phrase2"] = ph[1].lower() if not ph[1].isupper() else ph[1]
        if f.facts:
            slots["fact"] = _lower_first(rng.choice(f.facts))
        acts = self.ts.acts.get(ref.doc)
        if acts:
            slots["act"] = rng.choice(acts)
        return slots

    def generate(self, ref: PassageRef, *, per_type: int = 1, extra_facts: Sequence[str] = ()
                 ) -> list[tuple[str, str, str]]:
        """``[(query, type, source)]`` for one passage: ``per_type`` queries of each type (fewer when slots lack)."""
        f = self.facts(ref, extra_facts)
        out: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for qtype in QUERY_TYPES:
            made = 0
            for _attempt in range(per_type * 4):
                if made >= per_type:
                    break
                slots = self._slots(ref, f)
                usable = [t for t in self.ts.templates[qtype] if all(s in slots for s in t.slots)]
                if not usable:
                    break
                if "act" in slots and self.rng.random() > self.act_p:  # many real questions name no act
                    no_act = [t for t in usable if "act" not in t.slots]
                    usable = no_act or usable
                t = self.rng.choice(usable)
                q = t.text.format(**{k: slots.get(k, "") for k in t.slots})
                if self.rng.random() < self.colloquial_p:
                    q = self.coll(q)
                q = re.sub(r"\s+", " ", q).strip()
                q = q[0].upper() + q[1:] if q and q[0].islower() and qtype != "ambiguous" else q
                if q.lower() in seen or len(q) < 8:
                    continue
                seen.add(q.lower())
                source = next((s for s in ("fact", "term", "duty", "clause", "title", "phrase") if s in t.slots),
                              "phrase")
                out.append((q, qtype, {"duty": "clause"}.get(source, source)))
                made += 1
        return out


# --------------------------------------------------------------------------------------------------------------------
# policy packs: rule titles and key facts that point at passages
# --------------------------------------------------------------------------------------------------------------------


def policy_facts(refs: Sequence[PassageRef], rules: Sequence[Any]) -> dict[int, list[str]]:
    """Passage index → rule titles / key-fact names of the policy ``rules`` (objects with ``title``, ``key_facts``
    and ``provisions``; the caller loads the packs) whose provisions fall in that passage."""
    from mad_guardrails.core.units import id_covers

    by_unit: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(refs):
        by_unit[r.doc][r.unit_id].append(i)
    out: dict[int, list[str]] = defaultdict(list)
    for rule in rules:
        texts = [rule.title] + [kf.name for kf in rule.key_facts]
        for prov in rule.provisions:
            units = by_unit.get(prov.split(":", 1)[0], {})
            hits = [i for uid, idx in units.items() if id_covers(uid, prov) or id_covers(prov, uid) for i in idx]
            for i in hits[:6]:
                for t in texts:
                    if t and t not in out[i]:
                        out[i].append(t)
    return dict(out)


# --------------------------------------------------------------------------------------------------------------------
# held-out sets: never trained on
# --------------------------------------------------------------------------------------------------------------------


def _words(s: str) -> set[str]:
    return {w.lower() for w in _WORD_RE.findall(s) if w.lower() not in _STOP}


def heldout_queries(data_dir: str | Path | None = None) -> list[str]:
    """Every query of the hand-written evaluation sets (regulatory, off-topic, policy screening, cases)."""
    from mad_guardrails.retrieval.relevance import query_data_dir

    d = Path(data_dir) if data_dir else query_data_dir()
    out = []
    for f in sorted(d.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            for key in ("query", "output", "text"):
                if isinstance(row, dict) and isinstance(row.get(key), str):
                    out.append(row[key])
    return out


def heldout_gold_keys(data_dir: str | Path | None = None) -> list[str]:
    """Gold unit ids of the hand-written regulatory query set (for a strict split that holds their units out)."""
    from mad_guardrails.retrieval.relevance import IN_DOMAIN_FILE, query_data_dir, read_query_rows

    p = (Path(data_dir) if data_dir else query_data_dir()) / IN_DOMAIN_FILE
    if not p.exists():
        return []
    return sorted({g for r in read_query_rows(p) for g in r.get("gold", [])})


class Decontaminator:
    """Drops texts that come close (word-set Jaccard ≥ ``max_overlap``) to a held-out query."""

    def __init__(self, heldout: Sequence[str], max_overlap: float = 0.5):
        self.sets = [_words(h) for h in heldout if h.strip()]
        self.max_overlap = max_overlap
        self.index: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.sets):
            for w in s:
                self.index[w].append(i)
        # a close text shares most words, so some less common one: candidates come from words in < 3 % of rows
        limit = max(5, len(self.sets) // 33)
        self.rare = {w: ids for w, ids in self.index.items() if len(ids) <= limit}

    def overlap(self, text: str) -> float:
        s = _words(text)
        if not s:
            return 0.0
        cands = {i for w in s for i in self.rare.get(w, ())}
        if not cands and len(s) <= 3:  # short texts of common words only: check them all
            cands = {i for w in s for i in self.index.get(w, ())}
        best = 0.0
        for i in cands:
            h = self.sets[i]
            union = len(s | h)
            best = max(best, len(s & h) / union if union else 0.0)
        return best

    def keep(self, text: str) -> bool:
        return self.overlap(text) < self.max_overlap


# --------------------------------------------------------------------------------------------------------------------
# the pair set
# --------------------------------------------------------------------------------------------------------------------


def generate_pairs(
    corpus: Corpus,
    *,
    passages: Sequence[Any] | None = None,
    per_type: int = 1,
    seed: int = 0,
    test_fraction: float = 0.12,
    holdout_keys: Iterable[str] = (),
    max_pairs: int | None = None,
    use_policies: bool = True,
    rules: Sequence[Any] | None = None,
    decontaminate: bool | Sequence[str] = True,
    max_overlap: float = 0.5,
    llm: LLMQueryGenerator | None = None,
    progress: bool = False,
) -> list[TrainPair]:
    """Generated pairs for every passage of ``corpus`` (see the module docstring); ``max_pairs`` keeps a random
    subset of the *train* pairs (test pairs are kept whole). ``llm`` adds LLM-written queries beside the templates."""
    from mad_guardrails.core.progress import make_progress

    refs = passage_refs(corpus, passages)
    kp = KeyPhrases(r.text for r in refs)
    gen = TemplateQueryGenerator(kp, seed=seed)
    facts = policy_facts(refs, rules) if use_policies and rules else {}
    holdout = list(holdout_keys)
    if decontaminate is True:
        dec = Decontaminator(heldout_queries(), max_overlap)
    elif decontaminate:
        dec = Decontaminator(list(decontaminate), max_overlap)
    else:
        dec = None
    pairs: list[TrainPair] = []
    dropped = 0
    with make_progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating queries", total=len(refs))
        for i, r in enumerate(refs):
            split = assign_split(r.key, test_fraction, seed, holdout)
            made = gen.generate(r, per_type=per_type, extra_facts=facts.get(i, ()))
            if llm is not None:
                made += [(q, t, "llm") for q, t in llm.generate(r)]
            for q, qtype, source in made:
                if dec is not None and not dec.keep(q):
                    dropped += 1
                    continue
                pairs.append(TrainPair(query=q, type=qtype, pid=r.pid, unit_id=r.unit_id, key=r.key, doc=r.doc,
                                       positive=r.embed_text, source=source, split=split))
            bar.advance(task)
    if max_pairs is not None:
        train = [p for p in pairs if p.split == "train"]
        if len(train) > max_pairs:
            rng = random.Random(seed)
            keep = set(map(id, rng.sample(train, max_pairs)))
            pairs = [p for p in pairs if p.split == "test" or id(p) in keep]
    generate_pairs.last_dropped = dropped  # type: ignore[attr-defined]
    return pairs


def save_pairs(pairs: Sequence[TrainPair], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(tmp, "wt", encoding="utf-8") as fh:
        for x in pairs:
            fh.write(x.model_dump_json() + "\n")
    tmp.replace(p)
    return p


def load_pairs(path: str | Path) -> list[TrainPair]:
    p = Path(path)
    if not p.exists():
        raise InputError("no such pairs file", where=str(p), fix="generate it with `mad-guardrails train embedder "
                         "--prepare-only --out DIR` (it writes DIR/pairs.jsonl)")
    out = []
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(TrainPair.model_validate_json(line))
        except ValueError as e:
            raise InputError(f"line {n} is not a TrainPair ({str(e).splitlines()[0]})", where=f"{p}:{n}",
                             fix="regenerate the file with `mad-guardrails train embedder --prepare-only`") from e
    return out


def summarize(pairs: Sequence[TrainPair]) -> dict[str, Any]:
    """Counts by split × type, source and doc (for reports)."""
    out: dict[str, Any] = {"n": len(pairs)}
    for split in ("train", "test"):
        sub = [p for p in pairs if p.split == split]
        out[split] = {"n": len(sub), "keys": len({p.key for p in sub}),
                      "by_type": dict(sorted(Counter(p.type for p in sub).items())),
                      "by_source": dict(sorted(Counter(p.source for p in sub).items())),
                      "by_doc": dict(sorted(Counter(p.doc for p in sub).items()))}
    return out


def offtopic_train_queries(path: str | Path | None = None, *, decontaminate: bool = True) -> list[str]:
    """Our own off-topic training queries (``offtopic_train.yaml``), minus any close to a held-out query."""
    p = Path(path) if path else OFFTOPIC_TRAIN_FILE
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read off-topic training queries ({e})", where=str(p), fix="fix the YAML") from e
    qs = [q.strip() for group in raw.values() for q in (group or []) if isinstance(q, str) and q.strip()]
    if decontaminate:
        dec = Decontaminator(heldout_queries(), 0.5)
        qs = [q for q in qs if dec.keep(q)]
    return qs


# --------------------------------------------------------------------------------------------------------------------
# optional: queries written by an LLM backend
# --------------------------------------------------------------------------------------------------------------------


class LLMQueryGenerator:
    """One query per type for a passage, written by an ``mad_guardrails.agents.backends`` LLM (prompt ``embedder_queries.j2``).

    Answers must be a JSON object ``{"benign_sensitive": "...", "ambiguous": "...", "adversarial": "..."}``;
    anything else is skipped (counted in ``failures``), never guessed.

        >>> from mad_guardrails.agents.backends.fake import FakeBackend
        >>> g = LLMQueryGenerator(FakeBackend([{"benign_sensitive": "Do we report outages?", "ambiguous": "what about outages",
        ...                                      "adversarial": "Can we hide outages?"}]))
        >>> ref = PassageRef(pid="x:art_1", unit_id="x:art_1", doc="x", key="x:art_1", text="t", embed_text="t")
        >>> [t for _, t in g.generate(ref)]
        ['benign_sensitive', 'ambiguous', 'adversarial']
    """

    SCHEMA = {"type": "object", "properties": {t: {"type": "string"} for t in QUERY_TYPES},
              "required": list(QUERY_TYPES)}

    def __init__(self, backend, *, temperature: float = 0.8, max_tokens: int = 256, max_chars: int = 1500):
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.failures = 0

    async def agenerate(self, ref: PassageRef) -> list[tuple[str, str]]:
        from mad_guardrails.prompts import render_messages

        msgs = render_messages("embedder_queries", heading=ref.heading, text=ref.text[: self.max_chars],
                               types=list(QUERY_TYPES))
        try:
            resp = await self.backend.chat(msgs, json_schema=self.SCHEMA, temperature=self.temperature,
                                           max_tokens=self.max_tokens)
        except Exception:  # noqa: BLE001 -- a failed call only costs this passage its LLM queries
            self.failures += 1
            return []
        parsed = resp.parsed if isinstance(resp.parsed, dict) else None
        if parsed is None:
            self.failures += 1
            return []
        out = []
        for t in QUERY_TYPES:
            q = parsed.get(t)
            if isinstance(q, str) and 8 <= len(q.strip()) <= 400:
                out.append((q.strip(), t))
        return out

    def generate(self, ref: PassageRef) -> list[tuple[str, str]]:
        return asyncio.run(self.agenerate(ref))


def resplit(pairs: Sequence[TrainPair], holdout_keys: Iterable[str]) -> list[TrainPair]:
    """Move pairs whose split key falls under ``holdout_keys`` to ``test`` and drop, from the remaining train pairs,
    negatives that belong to a test unit (a strict split made after mining; generation does not depend on the
    split, so this equals generating with ``holdout_keys``)."""
    from mad_guardrails.core.units import id_covers

    holdout = list(holdout_keys)
    out = [p.model_copy(update={"split": "test"}) if p.split == "train" and any(
        id_covers(h, p.key) or id_covers(p.key, h) for h in holdout) else p for p in pairs]
    test_keys = {p.key for p in out if p.split == "test"}
    test_pids = {p.pid for p in out if p.key in test_keys}
    fixed = []
    for p in out:
        if p.split == "train" and set(p.negative_pids) & test_pids:
            keep = [i for i, pid in enumerate(p.negative_pids) if pid not in test_pids]
            p = p.model_copy(update={"negatives": [p.negatives[i] for i in keep],
                                     "negative_pids": [p.negative_pids[i] for i in keep]})
        fixed.append(p)
    return fixed
