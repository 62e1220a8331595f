"""Lepton: run many versions of an ML model side by side, and move each through its lifecycle."""

__version__ = "0.1.0"
__all__ = ["__version__"]
