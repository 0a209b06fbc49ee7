"""The domain head (retrieval/domain.py): P(a question is about the regulated domain) from the query embedding of the
embedder it was trained on (the offline profile's MiniLM + the bundled adapter). The questions below are written for
this test, not taken from the head's training or evaluation sets."""

from __future__ import annotations

import pytest

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.retrieval.domain import DomainHead

EVERYDAY = [
    "What's the quickest way to stop my cat scratching the new sofa?",
    "How do I kill a Python process that hangs on my laptop?",
    "Which knife should I use to bone a chicken?",
]
REGULATORY = [  # no act, article or regulator named: what a user types
    "Ransomware just hit our hospital's systems - who do we have to tell, and how fast?",
    "Are we allowed to use a chatbot that scores job applicants without telling them?",
    "How long can we keep the CCTV recordings of our shop customers?",
]


@pytest.fixture(scope="module")
def adapter_embedder():
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.embedder import Embedder

    return Embedder.from_config(load_config("offline").retrieval.embedder)


@pytest.fixture(scope="module")
def head_retriever(adapter_embedder, tmp_path_factory):
    """A real small index built with the adapter embedder, searched with the shipped head."""
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.retriever import Retriever
    from tests.fixtures.index import _calibrated_index, small_passage_dicts

    d = _calibrated_index(small_passage_dicts(), adapter_embedder, tmp_path_factory.mktemp("domain_index"))
    from mad_guardrails.retrieval.index import RegIndex

    cfg = load_config("offline").retrieval
    assert cfg.domain_head == "bundled"  # on in the shipped offline profile
    return Retriever(RegIndex.load(d, adapter_embedder, use_gpu="never"), adapter_embedder, cfg)


def test_the_shipped_head_reads_the_offline_embedder(adapter_embedder):
    head = DomainHead.load("bundled")
    assert head.mismatch(adapter_embedder.fingerprint()) is None
    assert 0.0 < head.threshold < 0.5 and len(head.weights) == adapter_embedder.dim
    p_off = head.proba(adapter_embedder.encode_queries(EVERYDAY))
    p_in = head.proba(adapter_embedder.encode_queries(REGULATORY))
    assert all(head.in_domain(p) for p in p_in), p_in  # calibrated to keep regulatory questions (98 % of dev)
    assert max(p_off) < min(p_in), (p_off, p_in)
    assert sum(not head.in_domain(p) for p in p_off) >= 2, p_off  # a low bar: some everyday questions pass it


def test_the_retriever_reports_the_reading_and_abstains_on_it_only_when_asked(head_retriever):
    off, reg = head_retriever.search_many([EVERYDAY[1], REGULATORY[0]])
    assert off.off_domain and off.domain is not None and off.domain < head_retriever.domain.threshold
    assert not reg.off_domain and reg.domain >= head_retriever.domain.threshold
    assert off.evidence or off.abstained  # by default the head does not make retrieval abstain
    from mad_guardrails.retrieval.retriever import OFF_DOMAIN, Retriever

    # without the dense-threshold filter, the head alone decides the abstention
    assert Retriever(head_retriever.index, head_retriever.embedder, head_retriever.config,
                     relevance=None).search(EVERYDAY[1]).evidence
    strict = Retriever(head_retriever.index, head_retriever.embedder,
                       head_retriever.config.model_copy(update={"domain_abstain": True}), relevance=None)
    r = strict.search(EVERYDAY[1])
    assert r.abstained and r.reason == OFF_DOMAIN and not r.evidence
    assert not strict.search(REGULATORY[0]).off_domain


def test_a_case_whose_question_is_off_the_domain_is_not_about_regulation(head_retriever):
    from mad_guardrails.guardrails.graph import regulatory_context

    answer = "Run `pkill -f myscript.py`; you must use `kill -9 <pid>` if it ignores that within 10 seconds."
    assert regulatory_context(head_retriever, EVERYDAY[1], answer) is False
    assert regulatory_context(head_retriever, REGULATORY[0], "Within 24 hours.") is True
    assert regulatory_context(head_retriever, EVERYDAY[1], "Under the GDPR you must log it.") is True  # names an act


def test_a_head_for_another_embedder_is_a_clear_config_error(small_index_dir, minilm_embedder, base_profile_path):
    """The tests' small index is built without the adapter: the shipped head can't read those vectors."""
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.index import RegIndex
    from mad_guardrails.retrieval.retriever import Retriever

    cfg = load_config(base_profile_path).retrieval.model_copy(update={"domain_head": "bundled"})
    with pytest.raises(ConfigError) as e:
        Retriever(RegIndex.load(small_index_dir, minilm_embedder, use_gpu="never"), minilm_embedder, cfg)
    assert "retrieval.domain_head" in str(e.value) and "adapter" in str(e.value) and "null" in str(e.value)


def test_a_missing_or_broken_head_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no domain head"):
        DomainHead.load(str(tmp_path / "nope.json"))
    bad = tmp_path / "head.json"
    bad.write_text('{"weights": [1.0]}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a domain head"):
        DomainHead.load(str(bad))
