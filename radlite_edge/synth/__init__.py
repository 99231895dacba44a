"""The embedded default: models and text made here, deterministically from a seed."""
