"""Seeding, progress bar, summary."""
from .seeding import set_random_seed

__all__ = ["set_random_seed"]
