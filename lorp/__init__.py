"""LoRP: locality-aware redundancy pruning of transformer blocks, as a reproducible workflow."""

__version__ = "0.1.0"
