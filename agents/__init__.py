"""LLM backends, debating agents and the coordinator."""
