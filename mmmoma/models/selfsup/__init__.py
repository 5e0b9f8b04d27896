"""Self-supervised algorithms (one file per paper)."""
