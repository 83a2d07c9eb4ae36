"""Targets: data distributions with exact denoisers, samples and feature references."""

from .base import AbstractTarget
from .curie_weiss import CurieWeiss, magnetization, magnetization_law
from .gaussian_mixture import GaussianMixture
from .kmode import KModeMixture

__all__ = [
    "AbstractTarget",
    "CurieWeiss",
    "GaussianMixture",
    "KModeMixture",
    "magnetization",
    "magnetization_law",
]
