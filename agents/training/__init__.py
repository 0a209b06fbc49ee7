"""Training the grounded coordinator: RAFT examples, self-distillation, LoRA / QLoRA, the six-axis evaluation.

Modules (one concept each):

* :mod:`agents.training.cases` — where training and held-out cases come from (rule examples, labelled case files);
* :mod:`agents.training.raft` — RAFT contexts (oracle units + distractors, oracle dropped in a share) and
  verifier-filtered best-of-N targets in the quote-first EVIDENCE/ANSWER contract (plus the extractive teacher, for
  a base model too weak to produce any verifiable answer);
* :mod:`agents.training.generate` — batched transformers (+ peft) generation for teachers and evals on a GPU;
* :mod:`agents.training.pipeline` — the run as resumable stages over one work folder;
* :mod:`agents.training.rouge` — ROUGE-L (LCS) without a new dependency;
* :mod:`agents.training.trainer` — LoRA on CPU, QLoRA (4-bit NF4) on a GPU, presets, checkpoints and resume;
* :mod:`agents.training.evaluate` — the six axes of seed §2, base vs adapter;
* :mod:`agents.training.cli` — ``guardrails train coordinator ...`` (:func:`register_coordinator`).
"""
