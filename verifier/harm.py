"""The harm screen: does the ANSWER deliver harmful help? Judged against the NIST AI 600-1 GenAI risk catalogue,
independently of regulatory vocabulary.

The bundled all-MiniLM-L6-v2 with a LoRA adapter (merged at load, the same machinery as
:mod:`mad_guardrails.verifier.domain_nli`) reads the (query, answer) pair and gives four probabilities — ``harmful``
(full compliance with a harmful request), ``partial`` (a partial refusal that still leaks the harmful part),
``refusal`` (never a violation, whatever the question) and ``safe`` (a helpful answer to a benign question, including
one that only sounds harmful) — plus the risk area of the request (NIST AI 600-1 ``risk_1`` … ``risk_11`` or
``regulatory``: help to break a rule of the packs). It ships in ``verifier/adapters/harm-minilm`` with thresholds
calibrated on the dev prompts (``config.json``) and runs on CPU (one pair, 128 tokens: tens of milliseconds on a
shared 2-core machine; BENCHMARKS.md "Harm screen").

    >>> screen = HarmScreen.load()                                                     # doctest: +SKIP
    >>> r = screen.check("How do I kill a Python process?", "Use `kill <pid>` or Task Manager.")  # doctest: +SKIP
    >>> r.label, r.decision                                                            # doctest: +SKIP
    ('safe', 'none')

The cascade (``guardrails/graph.py``) uses :meth:`HarmResult.decision`: ``block`` → blocked citing the matching
NIST AI 600-1 rule (:func:`harm_violation`, verified quote of the profile's risk definition); ``flag`` → no fast allow,
the debate decides and its agents see :meth:`HarmResult.line`, and a debate that does not clear the answer gives a
verdict that leads with the screen's reading and that rule (``decide`` in ``guardrails/graph.py``). Between
``review_at`` and ``flag_at`` lies the review band: an answer that leans harmful there (and does not read as a
refusal) is flagged as ``uncertain`` — no "nothing relevant → allow" for it; ``review_at`` is calibrated on
out-of-fold readings of real answers (``bench/gpu/harm/calibrate.py --review``). ``none`` → the regulatory cascade as
before, except that :meth:`HarmResult.clears` lets a confident refusal, or a confident safe answer with nothing
regulatory in it, take the fast allow (the cascade counts claims and rule keyword triggers only in a case about
regulation: ``regulatory_context`` in ``guardrails/graph.py``).
Long answers: with ``windows`` > 1 (adapter config.json ``{"windows": {"max": N}}`` or ``HarmScreen.load(windows=N)``)
the answer is also read in later overlapping windows and the most harmful window decides (a partial refusal often
leaks its steps after a first refusing paragraph); off (1) for an adapter not trained on such windows.
Training: ``bench/gpu/harm/`` (figures: BENCHMARKS.md, "Harm screen").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.debate import ProposedViolation, Quote
from mad_guardrails.core.errors import ModelUnavailableError
from mad_guardrails.core.paths import package_dir
from mad_guardrails.core.units import Evidence
from mad_guardrails.verifier.evasion import breaks_rule

LABELS = ("harmful", "partial", "refusal", "safe")
BUNDLED_NAME = "bundled:harm-minilm"
BUNDLED_DIR = package_dir("mad_guardrails.verifier") / "adapters" / "harm-minilm"
#: the pack rule for each risk area (NIST AI 600-1 risk_N ↔ rule nist-ai-600-1.riskN.*); "regulatory" cites the
#: screened rule of the act it helps to break, else the profile's risk 3 ("... conduct illegal activities")
RISK_NAMES = {"risk_1": "CBRN information or capabilities", "risk_3": "dangerous, violent or hateful content",
              "risk_4": "data privacy", "risk_8": "information integrity", "risk_9": "information security",
              "risk_10": "intellectual property", "risk_11": "obscene, degrading or abusive content",
              "regulatory": "help to break a regulatory rule"}
FALLBACK_RISK = "risk_3"
#: rule kinds that help to break a regulatory rule can breach (a prohibition, a duty, a reporting deadline, a label)
REGULATORY_KINDS = ("prohibition", "obligation", "reporting_deadline", "transparency")
Decision = Literal["block", "flag", "none"]


class HarmResult(BaseModel):
    """The screen's reading of one (query, answer) pair."""

    label: Literal["harmful", "partial", "refusal", "safe"]
    probs: dict[str, float]
    score: float = Field(description="P(harmful) + P(partial): the answer delivers harmful help")
    risk: str = Field(description="risk area: NIST AI 600-1 'risk_N', 'regulatory' or 'none'")
    decision: Decision = Field(description="block: confident harmful compliance; flag: a leaky partial refusal or an "
                               "answer that leans harmful (no fast allow, debate); none: nothing for the cascade to "
                               "act on")
    uncertain: bool = Field(default=False, description="flagged from the review band (review_at <= score < flag_at): "
                            "the answer leans harmful but the screen is unsure; the debate decides")
    rule_id: str | None = Field(default=None, description="the pack rule a block cites (filled by the cascade)")
    thresholds: dict[str, float] = Field(default_factory=dict)

    @property
    def refusal(self) -> bool:
        """A confident refusal (P(refusal) >= 0.8): never a violation, whatever the question."""
        return self.label == "refusal" and self.probs.get("refusal", 0.0) >= 0.8

    @property
    def confident_safe(self) -> bool:
        """A confident safe answer (P(safe) >= 0.9)."""
        return self.label == "safe" and self.probs.get("safe", 0.0) >= 0.9

    @property
    def may_clear(self) -> bool:
        """Whether :meth:`clears` can give a reason at all (a confident refusal or safe answer): the cascade asks
        what only matters for a clear — is the case about regulation? — only then."""
        return self.refusal or self.confident_safe

    def clears(self, *, regulatory_claims: bool, claim_check_ran: bool, rule_triggered: bool) -> str | None:
        """Why the answer may be allowed without a debate, or None: a confident refusal making no regulatory claim
        (never a violation, whatever the question); a confident safe answer when the claim check ran and found no
        regulatory claim and no policy rule's trigger fired (retrieval similarity alone does not make "how do I
        kill a Python process" a regulatory case)."""
        if regulatory_claims:
            return None
        if self.refusal:
            return f"the output refuses the request (harm screen P(refusal)={self.probs['refusal']:.2f})"
        if self.confident_safe and claim_check_ran and not rule_triggered:
            return (f"the harm screen reads a safe answer (P(safe)={self.probs['safe']:.2f}) and the output makes "
                    "no regulatory claim")
        return None

    def line(self) -> str:
        """One line for the debaters (added to the case's claim checks)."""
        p = ", ".join(f"{k} {v:.2f}" for k, v in self.probs.items())
        area = RISK_NAMES.get(self.risk, self.risk)
        rule = f", rule {self.rule_id}" if self.rule_id else ""
        lean = (f" The answer LEANS HARMFUL but the screen is unsure (P(harmful)+P(partial)={self.score:.2f}, "
                f"review at {self.thresholds.get('review_at', 0):.2f}, flag at {self.thresholds.get('flag_at', 0):.2f}):"
                " judge whether it gives real help towards the harm." if self.uncertain else "")
        return (f"harm screen: the answer reads as {self.label.upper()} ({p}); risk area: {area}{rule}; "
                f"screen decision: {self.decision}.{lean} A refusal is never a violation.")

    def describe(self) -> str:
        """What the screen read, for a verdict's reason (one clause, no trailing period)."""
        area = RISK_NAMES.get(self.risk, self.risk)
        what = {"harmful": "complies with a harmful request", "partial": "leaks harmful help after a refusal",
                "safe": "leans harmful" if self.uncertain else "reads as safe",
                "refusal": "reads as a refusal"}[self.label]
        sure = " (uncertain: the review band)" if self.uncertain else ""
        return (f"the harm screen reads that the answer {what}{sure}: P(harmful)+P(partial)={self.score:.2f}, "
                f"risk area {area}")


class HarmScreen:
    """(query, answer) → :class:`HarmResult`. Load with :meth:`load` (``bundled:harm-minilm`` or an adapter folder)."""

    def __init__(self, nli: Any, risk_head: Any, config: dict, windows: int | None = None):
        self.nli, self.risk_head, self.config = nli, risk_head, config
        self.risks = tuple(config.get("risks", ("none",)))
        th = config.get("thresholds") or {}
        self.flag_at = float(th.get("flag_at", 0.5))
        self.block_at = float(th.get("block_at", 0.9))
        #: the review band's lower edge: an answer scoring review_at <= P(harmful)+P(partial) < flag_at that does not
        #: read as a refusal is flagged as uncertain (no fast allow; the debate decides). Absent: no band.
        self.review_at = min(self.flag_at, float(th.get("review_at", self.flag_at)))
        win = config.get("windows") or {}
        #: answer windows read per pair (1 = the first max_length tokens only): a long answer is also read in later
        #: windows (the query + a slice of the answer, overlapping by ``stride`` tokens) and the window that reads
        #: most harmful decides — a partial refusal often leaks its steps after a first refusing paragraph
        self.windows = max(1, int(windows if windows is not None else win.get("max", 1)))
        self.stride = int(win.get("stride", 32))
        self.query_tokens = int(win.get("query_tokens", 48))

    @classmethod
    def load(cls, spec: str = BUNDLED_NAME, *, device: str = "cpu", windows: int | None = None) -> HarmScreen:
        path = BUNDLED_DIR if spec == BUNDLED_NAME else Path(spec).expanduser()
        need = ("config.json", "head.safetensors", "risk_head.safetensors")
        if not all((path / f).is_file() for f in need):
            raise ModelUnavailableError("the harm screen's files are missing", where=str(path),
                                        fix="reinstall mad-guardrails (the adapter ships in the package) or point "
                                            f"verifier.harm_model at a folder with {', '.join(need)}")
        import torch
        from safetensors.torch import load_file

        from mad_guardrails.verifier.domain_nli import DomainNLI

        nli = DomainNLI.load(str(path), device=device)  # base MiniLM + merged LoRA + label head
        sd = load_file(str(path / "risk_head.safetensors"))
        risk_head = torch.nn.Linear(sd["weight"].shape[1], sd["weight"].shape[0])
        risk_head.load_state_dict(sd)
        risk_head.eval().to(device)
        return cls(nli, risk_head, nli.config, windows=windows)

    def _decide(self, probs: dict[str, float]) -> tuple[str, float, Decision, bool]:
        """(label, score, decision, uncertain): block / flag as calibrated; the review band flags as uncertain."""
        label = max(probs, key=probs.get)
        score = probs.get("harmful", 0.0) + probs.get("partial", 0.0)
        if probs.get("harmful", 0.0) >= self.block_at:
            return label, score, "block", False
        if score >= self.flag_at and label != "refusal":
            return label, score, "flag", False
        if score >= self.review_at and label != "refusal":
            return label, score, "flag", True
        return label, score, "none", False

    def check_many(self, pairs: list[tuple[str | None, str]], shift: float = 0.0, batch: int = 32
                   ) -> list[HarmResult]:
        """Screen (query, answer) pairs, ``batch`` pairs per forward pass; ``shift`` moves the thresholds
        (strict < 0 < permissive)."""
        out: list[HarmResult] = []
        for i in range(0, len(pairs), batch):
            out += self._check_batch(pairs[i:i + batch], shift)
        return out

    def _check_batch(self, pairs: list[tuple[str | None, str]], shift: float) -> list[HarmResult]:
        import torch

        n = self.nli
        qs = [q or "" for q, _ in pairs]
        ans = [a for _, a in pairs]
        with torch.inference_mode():
            if self.windows > 1:  # the query (cut to query_tokens) + overlapping slices of the answer
                qs = [n.tok.convert_tokens_to_string(n.tok.tokenize(q)[: self.query_tokens]) for q in qs]
                t = n.tok(qs, ans, truncation="only_second", max_length=n.max_length, stride=self.stride,
                          return_overflowing_tokens=True, padding=True, return_tensors="pt")
                owner = t.pop("overflow_to_sample_mapping").tolist()
                keep, seen = [], {}
                for j, o in enumerate(owner):  # at most self.windows windows per pair, the first ones
                    seen[o] = seen.get(o, 0) + 1
                    if seen[o] <= self.windows:
                        keep.append(j)
                t = {k: v[keep] for k, v in t.items()}
                owner = [owner[j] for j in keep]
            else:
                t = n.tok(qs, ans, truncation=n.truncation, max_length=n.max_length, padding=True,
                          return_tensors="pt")
                owner = list(range(len(pairs)))
            h = n.encoder(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                          token_type_ids=t.get("token_type_ids")).last_hidden_state
            m = t["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            pw = torch.softmax(n.head.out(torch.tanh(n.head.dense(pooled))).float(), -1)
            # per pair: the window with the highest P(harmful) + P(partial) (the first window when only one)
            harm = pw[:, [n.labels.index("harmful"), n.labels.index("partial")]].sum(-1).tolist()
            best: dict[int, int] = {}
            for j, o in enumerate(owner):
                if o not in best or harm[j] > harm[best[o]]:
                    best[o] = j
            idx = [best[i] for i in range(len(pairs))]
            probs = pw[idx].tolist()
            risk = self.risk_head(pooled[idx]).argmax(-1).tolist()
        out = []
        saved = self.review_at, self.flag_at, self.block_at
        self.review_at, self.flag_at, self.block_at = (min(0.99, max(0.01, t + shift)) for t in saved)
        try:
            for row, ri in zip(probs, risk):
                p = {lab: round(float(x), 4) for lab, x in zip(n.labels, row)}
                label, score, decision, uncertain = self._decide(p)
                area = self.risks[ri] if ri < len(self.risks) else "none"
                if decision != "none" and area == "none":
                    area = FALLBACK_RISK
                out.append(HarmResult(label=label, probs=p, score=round(score, 4), risk=area, decision=decision,
                                      uncertain=uncertain, thresholds={"review_at": self.review_at,
                                                                       "flag_at": self.flag_at,
                                                                       "block_at": self.block_at}))
        finally:
            self.review_at, self.flag_at, self.block_at = saved
        return out

    def check(self, query: str | None, answer: str, shift: float = 0.0) -> HarmResult:
        return self.check_many([(query, answer)], shift)[0]


# --------------------------------------------------------------------------------------------------- citing a rule


def _first_sentence(text: str) -> str:
    s = " ".join(text.split())
    m = re.search(r"(?<=[a-z)\]])\.\s+(?=[A-Z])", s)
    return s[: m.start() + 1] if m else s


def harm_rule(result: HarmResult, policy_set: Any, screened: list[Any] | None = None) -> Any:
    """The pack rule a harmful answer breaks: the NIST AI 600-1 rule of its risk area; for help to break a regulatory
    rule, the best screened rule of another pack that prohibits or obliges something, else AI 600-1 risk 3."""
    if result.risk == "regulatory":
        for r in screened or []:
            if not r.id.startswith("nist-ai-600-1") and getattr(r, "kind", "") in REGULATORY_KINDS:
                return r
    risk = result.risk if result.risk.startswith("risk_") else FALLBACK_RISK
    for rid in (risk, FALLBACK_RISK):
        rules = policy_set.rules() if callable(policy_set.rules) else policy_set.rules
        rule = next((r for r in rules if f"nist-ai-600-1:{rid}" in (r.provisions or [])), None)
        if rule is not None:
            return rule
    return None


def harm_violation(result: HarmResult, rule: Any, lookup) -> tuple[ProposedViolation, Evidence | None]:
    """The violation a blocked harmful answer gets: the rule, its first provision, and the verbatim first sentence of
    that provision's text (for AI 600-1: the profile's risk definition) — plus the provision as evidence, so the
    verifier checks the quote against the unit like any other."""
    prov = (rule.provisions or [None])[0]
    text = lookup(prov) if prov else None
    quotes = [Quote(doc_id=prov, text=_first_sentence(text))] if text else []
    area = RISK_NAMES.get(result.risk, result.risk)
    if result.decision == "block":
        expl = (f"The answer delivers harmful help ({area}): harm screen P(harmful)="
                f"{result.probs.get('harmful', 0):.2f} >= {result.thresholds.get('block_at', 0):.2f}; {rule.id} applies.")
    else:  # a flag: the rule the answer would break if the reading holds; the debate did not clear it
        expl = f"{result.describe()[0].upper()}{result.describe()[1:]}; {rule.id} applies if that reading holds."
    viol = ProposedViolation(rule_id=rule.id, provisions=[prov] if prov else [], severity=rule.severity,
                             explanation=expl, quotes=quotes)
    ev = Evidence(unit_id=prov, doc=prov.split(":")[0], text=text, rank=1, score=1.0) if text else None
    return viol, ev


def harm_block(result: HarmResult, policy_set: Any, lookup) -> tuple[ProposedViolation | None, Evidence | None]:
    """The violation of a blocked (or flagged) harmful answer (the rule :func:`screen_case` named), or (None, None)
    when the rule is not loaded — a block then rests on nothing and ``decide`` turns it into a flag."""
    rule = policy_set.get(result.rule_id) if result.rule_id else None
    if rule is None:
        return None, None
    return harm_violation(result, rule, lookup)


def screen_case(screen: HarmScreen | None, policy_set: Any, query: str | None, output: str,
                screened: list[Any] | None = None, shift: float = 0.0) -> HarmResult | None:
    """Run the screen on one case and name the rule a block or flag would cite (None when the screen is off)."""
    if screen is None:
        return None
    r = screen.check(query, output, shift)
    if r.risk == "regulatory" and r.decision != "none" and not breaks_rule(query, output, screened or []):
        r.decision, r.uncertain = "none", False  # compliance talk is not help to break a rule (verifier/evasion.py)
    if r.decision != "none":
        rule = harm_rule(r, policy_set, screened)
        r.rule_id = rule.id if rule is not None else None
    return r


def load_harm_screen(spec: str | None) -> HarmScreen | None:
    """The configured screen (``verifier.harm_model``), or None when off. Raises when it is on but cannot load:
    a guard asked to screen for harm must not silently run without it."""
    if not spec:
        return None
    return HarmScreen.load(spec)
