"""Method plugins: the base class and the built-in AEDR method."""

from .base import CostHint, Method, MethodOptions, MethodOptionsError, ScoreContext, build_method

__all__ = ["CostHint", "Method", "MethodOptions", "MethodOptionsError", "ScoreContext", "build_method"]
