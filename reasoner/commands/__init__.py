"""Command modules of the CLI, one per concern."""
