"""Training the retrieval models: the domain embedder (LoRA on the bundled MiniLM) and the relevance head.

    mad-guardrails train embedder --preset cpu-small        # data → hard negatives → eval base → train → eval adapted
    mad-guardrails train relevance --preset cpu-small       # relevance head vs the dense-threshold filter

Modules (heavy imports stay inside functions): :mod:`.data` (query generation, split by unit),
:mod:`.negatives` (hard-negative mining), :mod:`.embedder_trainer`, :mod:`.relevance_trainer`, :mod:`.evaluate`.
"""
