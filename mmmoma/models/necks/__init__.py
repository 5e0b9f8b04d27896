"""Necks (projectors / predictors) of the pre-training algorithms."""
