"""Search strategies: Algorithm 1 (the FPTAS) and, beside it, the baselines."""

from .base import Strategy
from .fptas import FPTAS, REPRESENTATIVES, intervals, representatives

__all__ = ["FPTAS", "REPRESENTATIVES", "Strategy", "intervals", "representatives"]
