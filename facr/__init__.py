"""facr: faithful action-unit causal reasoning for facial-emotion explanations."""

__version__ = "0.1.0"
