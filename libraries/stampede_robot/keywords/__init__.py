"""Keyword components: thin classes over the engine, one per concern."""
