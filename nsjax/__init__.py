"""nsjax: noise schedules of generative models in high dimensions, in JAX.

Probability-flow samplers of stochastic interpolants on targets with exact posteriors
(Gaussian mixture, Curie–Weiss), the paper's time-dilated schedules and the standard ones,
an exact reduction for the Gaussian mixture, and feature estimators. Reference:
Aranguri, Biroli, Mézard, Vanden-Eijnden, *Optimizing Noise Schedules of Generative Models in
High Dimensions*, arXiv:2501.00988.
"""

from . import features, interpolants, presets, reduction, schedules, sharding, solve, solvers, targets
from .features import estimate
from .interpolants import Linear, Trig, ve, vp
from .presets import preset
from .reduction import ReducedGM
from .schedules import DDPM, EDM, VESDE, VPSDE, Constant, Cosine, DilatedVE, DilatedVP
from .solve import RK4, Particles, SampleResult, sample
from .targets import CurieWeiss, GaussianMixture, KModeMixture

__version__ = "0.1.0"

__all__ = [
    "DDPM",
    "EDM",
    "RK4",
    "VESDE",
    "VPSDE",
    "Constant",
    "Cosine",
    "CurieWeiss",
    "DilatedVE",
    "DilatedVP",
    "GaussianMixture",
    "KModeMixture",
    "Linear",
    "Particles",
    "ReducedGM",
    "SampleResult",
    "Trig",
    "estimate",
    "features",
    "interpolants",
    "preset",
    "presets",
    "reduction",
    "sample",
    "schedules",
    "sharding",
    "solve",
    "solvers",
    "targets",
    "ve",
    "vp",
]
