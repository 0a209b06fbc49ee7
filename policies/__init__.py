"""Policy packs: YAML rules in ``policies/packs/`` pointing at regulatory unit ids."""
