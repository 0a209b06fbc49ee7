"""Training the grounded coordinator: RAFT examples, self-distillation, LoRA / QLoRA, the six-axis evaluation.

Modules (one concept each):

* :mod:`mad_guardrails.agents.training.cases` — where training and held-out cases come from (rule examples, labelled case files);
* :mod:`mad_guardrails.agents.training.raft` — RAFT contexts (oracle units + distractors, oracle dropped in a share) and
  verifier-filtered best-of-N targets in the quote-first EVIDENCE/ANSWER contract (plus the extractive teacher, for
  a base model too weak to produce any verifiable answer);
* :mod:`mad_guardrails.agents.training.generate` — batched transformers (+ peft) generation for teachers and evals on a GPU;
* :mod:`mad_guardrails.agents.training.pipeline` — the run as resumable stages over one work folder;
* :mod:`mad_guardrails.agents.training.rouge` — ROUGE-L (LCS) without a new dependency;
* :mod:`mad_guardrails.agents.training.trainer` — LoRA on CPU, QLoRA (4-bit NF4) on a GPU, presets, checkpoints and resume;
* :mod:`mad_guardrails.agents.training.evaluate` — the six axes of seed §2, base vs adapter;
* the CLI, ``mad-guardrails train coordinator ...``, is the app's (:mod:`mad_guardrails.guardrails.commands.train_coordinator`).
"""
