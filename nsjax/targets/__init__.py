"""Targets: data distributions with exact denoisers, samples and feature references."""

from . import cw_posteriors
from .base import AbstractTarget
from .curie_weiss import CurieWeiss, magnetization, magnetization_law
from .cw_posteriors import AbstractCWPosterior
from .gaussian_mixture import GaussianMixture
from .kmode import KModeMixture

__all__ = [
    "AbstractCWPosterior",
    "AbstractTarget",
    "CurieWeiss",
    "GaussianMixture",
    "KModeMixture",
    "cw_posteriors",
    "magnetization",
    "magnetization_law",
]
