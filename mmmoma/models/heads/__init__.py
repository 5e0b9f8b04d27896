"""Heads (loss heads) of the pre-training algorithms."""
