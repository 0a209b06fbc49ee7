"""The coordinator's training run as stages over one work folder (each stage reads the files of the one before, so
any stage can be re-run or resumed on its own, and the heavy ones can run on another machine):

=========== ====================================================================================================
build       ``items_train.jsonl`` (RAFT contexts of the training cases), ``items_normal.jsonl`` /
            ``items_stress.jsonl`` (held-out cases: K distractors, oracle always shown / 4 distractors, 30 % dropped)
sample      ``candidates.jsonl``: best-of-N teacher answers (a served backend, or transformers batched)
select      ``examples.jsonl`` + ``selection.json``: the verifier-kept targets
fit         ``adapter/``: the LoRA adapter (+ ``training.json``)
predict     ``predictions_<label>_<condition>.jsonl``: greedy answers of the base model and of the adapter
eval        ``eval_report.json`` / ``.md``: the six axes, base vs adapter; ``ship`` copies a winning adapter
=========== ====================================================================================================

    >>> Workdir(Path("/tmp/w")).items("stress").name
    'items_stress.jsonl'
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field

from mad_guardrails.agents.training.cases import CoordCase, cases_from_jsonl, cases_from_rule_examples, disjoint_from
from mad_guardrails.agents.training.raft import (
    DistractorPool,
    RaftConfig,
    RaftItem,
    build_items,
    item_messages,
    read_items,
)
from mad_guardrails.core.errors import ConfigError
from mad_guardrails.core.paths import evals_data_dir
from mad_guardrails.core.records import write_models

log = logging.getLogger(__name__)

DEFAULT_HELDOUT = evals_data_dir() / "regulatory_cases.jsonl"


class Workdir:
    """The files of one run."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def items(self, which: str) -> Path:
        return self.root / f"items_{which}.jsonl"

    @property
    def build_json(self) -> Path:
        return self.root / "build.json"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates.jsonl"

    @property
    def examples(self) -> Path:
        return self.root / "examples.jsonl"

    @property
    def selection(self) -> Path:
        return self.root / "selection.json"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    def predictions(self, label: str, condition: str) -> Path:
        return self.root / f"predictions_{label}_{condition}.jsonl"


class Resources:
    """Corpus, policy rules and verifier, loaded once on first use."""

    def __init__(self, corpus: str | Path | None = None, packs: Sequence[str] = ("builtin",),
                 evidence_chars: int | None = None):
        self.corpus_path = corpus
        self.packs = list(packs)
        self.evidence_chars = evidence_chars

    @cached_property
    def corpus(self):
        from mad_guardrails.core.paths import corpus_dir, shared_corpus
        from mad_guardrails.retrieval.corpus import load_corpus

        path = self.corpus_path
        if path is None:
            path = corpus_dir() if any(corpus_dir().glob("*.units.jsonl")) else shared_corpus()
        if path is None:
            raise ConfigError("no corpus to build RAFT examples from", where="--corpus",
                              fix="pass --corpus (a folder like shared/data/corpus) or run `mad-guardrails corpus fetch`")
        return load_corpus(path, progress=True)

    @cached_property
    def policy_set(self):
        from mad_guardrails.policies.loader import load_packs

        return load_packs(self.packs)

    def rule(self, rule_id: str):
        return self.policy_set.get(rule_id)

    def messages(self, item: RaftItem, evidence_chars: int | None = None) -> list[dict]:
        from mad_guardrails.agents.prompting import DEFAULT_EVIDENCE_CHARS

        return item_messages(item, self.rule, evidence_chars=evidence_chars or self.evidence_chars
                             or DEFAULT_EVIDENCE_CHARS)


class BuildSettings(BaseModel):
    n_train: int = Field(default=100, ge=1, description="training cases (each gets one RAFT item)")
    n_heldout: int = Field(default=30, ge=1)
    heldout_file: str = str(DEFAULT_HELDOUT)
    train_sources: list[str] = Field(default_factory=lambda: ["rules"],
                                     description="'rules' (policy-pack examples) and/or JSONL case files")
    k_distractors: int = 3
    p_drop_oracle: float = 0.2
    stress_k: int = 4
    stress_p_drop: float = 0.3
    evidence_chars: int = 1500
    disjoint: bool = Field(default=True, description="no training case shares a rule or oracle unit with held-out")
    seed: int = 0


class BuildStats(BaseModel):
    settings: BuildSettings
    train_pool: int
    train_pool_disjoint: int
    train: int
    train_oracle_dropped: int
    heldout: int
    stress_oracle_dropped: int
    heldout_rules: int
    train_rules: int


def _sample(cases: list[CoordCase], n: int, rng: random.Random) -> list[CoordCase]:
    if len(cases) <= n:
        return list(cases)
    return sorted(rng.sample(cases, n), key=lambda c: c.id)


def stage_build(work: Workdir, res: Resources, s: BuildSettings) -> BuildStats:
    """Pick held-out and training cases and write their RAFT items."""
    from mad_guardrails.agents.training.cases import MAX_ORACLE

    rng = random.Random(s.seed)
    corpus, ps = res.corpus, res.policy_set

    def known(uid: str) -> bool:
        return corpus.get(uid) is not None

    held_all = cases_from_jsonl(s.heldout_file, rule_of=ps.get, known=known, max_oracle=MAX_ORACLE)
    held = _sample(held_all, s.n_heldout, rng)
    pool: list[CoordCase] = []
    for src in s.train_sources:
        if src == "rules":
            pool += cases_from_rule_examples(ps.rules, known=known)
        else:
            if Path(src).resolve() == Path(s.heldout_file).resolve():
                raise ConfigError("the held-out file is also a training source", where="--train-sources",
                                  fix="train on other cases (e.g. 'rules') than those you evaluate on")
            pool += cases_from_jsonl(src, rule_of=ps.get, known=known)
    disjoint = disjoint_from(pool, held) if s.disjoint else pool
    train = _sample(disjoint, s.n_train, rng)
    dpool = DistractorPool(corpus, RaftConfig())
    common = dict(units=corpus.get, pool=dpool, rules=ps.get, all_rules=ps.rules)
    items_train = build_items(train, cfg=RaftConfig(k_distractors=s.k_distractors, p_drop_oracle=s.p_drop_oracle,
                                                    evidence_chars=s.evidence_chars, seed=s.seed), **common)
    items_normal = build_items(held, cfg=RaftConfig(k_distractors=s.k_distractors, p_drop_oracle=0.0,
                                                    evidence_chars=s.evidence_chars, seed=s.seed + 1), **common)
    items_stress = build_items(held, cfg=RaftConfig(k_distractors=s.stress_k, p_drop_oracle=s.stress_p_drop,
                                                    evidence_chars=s.evidence_chars, seed=s.seed + 2), **common)
    work.root.mkdir(parents=True, exist_ok=True)
    write_models(items_train, work.items("train"), atomic=True)
    write_models(items_normal, work.items("normal"), atomic=True)
    write_models(items_stress, work.items("stress"), atomic=True)
    stats = BuildStats(settings=s, train_pool=len(pool), train_pool_disjoint=len(disjoint), train=len(items_train),
                       train_oracle_dropped=sum(not i.oracle_present for i in items_train), heldout=len(items_normal),
                       stress_oracle_dropped=sum(not i.oracle_present for i in items_stress),
                       heldout_rules=len({r for c in held for r in c.rules}),
                       train_rules=len({r for c in train for r in c.rules}))
    work.build_json.write_text(stats.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return stats


def load_items(work: Workdir, which: str) -> list[RaftItem]:
    p = work.items(which)
    if not p.is_file():
        raise ConfigError(f"{p.name} not found", where=str(work.root),
                          fix="run `mad-guardrails train coordinator build` with the same --work first")
    return read_items(p)


def ship_adapter(adapter_dir: Path, dest: Path, *, max_lora_rank: int = 32, report: Path | None = None) -> Path:
    """Copy a trained adapter (config + weights + training record + its README) into the project
    (``agents/adapters/...``), with the evaluation report as ``evaluation.json`` when given."""
    from mad_guardrails.agents.training.trainer import check_vllm_compatible

    problems = check_vllm_compatible(adapter_dir, max_lora_rank)
    if problems:
        raise ConfigError("the adapter cannot be served by vLLM: " + "; ".join(problems), where=str(adapter_dir),
                          fix="retrain with the default target modules and r <= --max-lora-rank")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "training.json", "README.md"):
        if (adapter_dir / name).is_file():
            shutil.copyfile(adapter_dir / name, dest / name)
    if report is not None and report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        data.pop("per_item", None)
        (dest / "evaluation.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return dest
