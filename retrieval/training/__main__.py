"""``python -m retrieval.training embedder|relevance ...`` -- the ``guardrails train`` group alone (for machines
where only the training dependencies are installed, e.g. a GPU box that gets the prepared data)."""

import sys

from guardrails.commands.train import train_app
from guardrails.errors import GuardrailError

if __name__ == "__main__":
    try:
        train_app()
    except GuardrailError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
