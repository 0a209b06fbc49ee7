"""Training the retrieval models: the domain embedder (LoRA on the bundled MiniLM) and the relevance head.

    mad-guardrails train embedder --preset cpu-small        # data → hard negatives → eval base → train → eval adapted
    mad-guardrails train relevance --preset cpu-small       # relevance head vs the dense-threshold filter

Modules (heavy imports stay inside functions): :mod:`.pairs` (pair records, split by unit, the pairs file),
:mod:`.passage_text` (slots of a passage, no LLM), :mod:`.template_queries` and :mod:`.llm_queries` (the two query
generators), :mod:`.heldout` (held-out sets, decontamination), :mod:`.generate` (the pair set),
:mod:`.negatives` (hard-negative mining), :mod:`.prepare`, :mod:`.embedder_trainer`, :mod:`.relevance_trainer`,
:mod:`.evaluate`.
"""
