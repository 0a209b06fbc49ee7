"""Policy screening: keyword evidence, explicit references, and ranking with the real offline embedder."""

from __future__ import annotations

import pytest

from mad_guardrails.core.unit_ids import find_refs
from mad_guardrails.policies.loader import BUILTIN_DIR, load_packs
from mad_guardrails.policies.screen import PolicyScreener, ScreenWeights

SUBSET = [str(BUILTIN_DIR / f"{n}.yaml") for n in ("eu-ai-act", "nis2", "gdpr", "cra")]


@pytest.fixture(scope="module")
def subset_set():
    return load_packs(SUBSET)


def test_keyword_screening_finds_trigger_fact_and_act(subset_set):
    scr = PolicyScreener(subset_set, embedder=None)
    hits = scr.screen("Under NIS2, send the early warning to the CSIRT within 24 hours.", top=3)
    top = hits[0]
    assert top.rule.id == "nis2.art23.incident_reporting"
    assert "early warning" in top.matched_triggers and "early warning deadline" in top.matched_facts
    assert top.act_mentioned and 0.0 < top.score <= 1.0
    assert all(h.score <= top.score for h in hits)


def test_explicit_article_reference_ranks_its_rule(subset_set):
    scr = PolicyScreener(subset_set, embedder=None)
    ids = [h.rule.id for h in scr.screen("Does GDPR Article 35 apply to us?", top=3)]
    assert ids[0] == "gdpr.art35.dpia"
    # without any act named, a bare article number still counts, but less
    bare = scr.score_all("What does Article 73 say?")[0]
    assert bare.rule.id == "eu-ai-act.art73.serious_incident_reporting" and bare.matched_refs == ["art_73"]


def test_find_refs():
    assert find_refs("see Art. 5(1)(c) and Annex III point 4") == {"art_5", "anx_iii"}
    assert find_refs("GV.SC-04, ID.AM, Map 1.5 and MG-3.2-005") == {"GV.SC-04", "ID.AM", "MAP-1.5", "MG-3.2-005"}


def test_scores_are_bounded_and_weights_combine(subset_set):
    scr = PolicyScreener(subset_set, embedder=None, weights=ScreenWeights(w_trigger=0.9))
    for h in scr.score_all("deepfake watermark deepfake synthetic content label ai content"):
        assert 0.0 <= h.score <= 1.0


# ------------------------------------------------------------------------------------------ with the embedder
@pytest.fixture(scope="module")
def screener(subset_set, minilm_embedder, tmp_path_factory):
    scr = PolicyScreener(subset_set, minilm_embedder, cache_dir=tmp_path_factory.mktemp("emb-cache"))
    scr.warm()
    return scr


@pytest.mark.parametrize("text,expected", [
    ("Our clinic's diagnostic AI misread a scan and a patient died. The vendor says it can tell the regulator "
     "whenever it gets round to it.", "eu-ai-act.art73.serious_incident_reporting"),
    ("Last night someone stole our customers' home addresses and card numbers. Do we have to tell the privacy "
     "watchdog, and by when?", "gdpr.art33.breach_notification_authority"),
    ("The new camera app guesses whether a person is gay or religious just from their face.",
     "eu-ai-act.art5.biometric_categorisation_sensitive"),
    ("Hackers are exploiting a hole in our router firmware right now; we'll patch it next quarter and say nothing.",
     "cra.art14.exploited_vulnerability_reporting"),
])
def test_dense_screening_ranks_the_right_rule(screener, text, expected):
    ids = [h.rule.id for h in screener.screen(text, top=3)]
    assert expected in ids, ids
    dense_ids = [h.rule.id for h in screener.screen(text, top=5, mode="dense")]
    assert expected in dense_ids


def test_offtopic_output_stays_below_the_fast_path_threshold(screener):
    hits = screener.screen("Bake the loaf at 220 degrees for 35 minutes, then let it cool on a rack.", top=1)
    assert hits[0].score < 0.5


def test_query_counts_too(screener):
    hits = screener.screen("Yes, within the deadline.", query="When must an essential entity send the NIS2 "
                                                              "early warning after a significant incident?", top=3)
    assert "nis2.art23.incident_reporting" in [h.rule.id for h in hits]


class _Counting:
    """The real embedder, counting passage encodes (to see the disk cache work)."""

    def __init__(self, inner):
        self.inner, self.passage_calls = inner, 0

    def fingerprint(self):
        return self.inner.fingerprint()

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_passages(self, texts):
        self.passage_calls += 1
        return self.inner.encode_passages(texts, progress=False)


def test_rule_embeddings_are_cached_on_disk(subset_set, minilm_embedder, tmp_path):
    small = load_packs([str(BUILTIN_DIR / "nis2.yaml")])
    first = _Counting(minilm_embedder)
    PolicyScreener(small, first, cache_dir=tmp_path).warm()
    second = _Counting(minilm_embedder)
    scr = PolicyScreener(small, second, cache_dir=tmp_path)
    top = scr.screen("The board must approve the cybersecurity measures and get training.", top=1)[0]
    assert first.passage_calls == 1 and second.passage_calls == 0
    assert top.rule.id == "nis2.art20.management_accountability"
