"""Method plugins: the base class and the built-in AEDR method."""

from .base import CostHint, Method, MethodOptions, ScoreContext

__all__ = ["CostHint", "Method", "MethodOptions", "ScoreContext"]
