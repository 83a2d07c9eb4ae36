"""nsjax: noise schedules of generative models in high dimensions, in JAX.

Probability-flow samplers of stochastic interpolants on targets with exact posteriors
(Gaussian mixtures, Curie–Weiss), the paper's time-dilated schedules and the standard ones,
an exact reduction for the Gaussian mixture, and feature estimators. Reference:
Aranguri, Biroli, Mézard, Vanden-Eijnden, *Optimizing Noise Schedules of Generative Models in
High Dimensions*, arXiv:2501.00988; the mathematics is in ``docs/theory.md``.

The core is pure: :func:`solve` (one particle, a pytree of JAX arrays; ``jit``/``vmap``/``grad``)
under the drivers :func:`sample` (ensembles) and :func:`nsjax.sweeps.sweep` (compiled grids).
"""

from . import (
    compilation,
    diagnostics,
    ensemble,
    features,
    interpolants,
    reduction,
    registry,
    schedules,
    sharding,
    solvers,
    sweeps,
    systems,
    targets,
)
from .cw_reduction import ReducedCW
from .ensemble import SampleResult, sample
from .features import estimate
from .interpolants import Linear, Trig, ve, vp
from .reduction import ReducedGM
from .registry import Preset, preset
from .schedules import DDPM, EDM, VESDE, VPSDE, Constant, Cosine, DilatedVE, DilatedVP, Selected
from .solve import PieceSteps, Save, Solution, step_grid
from .solve import solve as solve  # the function; the module is nsjax.solve in sys.modules
from .solvers import RK4, make_solver
from .systems import AbstractSystem, Particles
from .targets import CurieWeiss, GaussianMixture, KModeMixture

__version__ = "0.2.0"

__all__ = [
    "DDPM",
    "EDM",
    "RK4",
    "VESDE",
    "VPSDE",
    "AbstractSystem",
    "Constant",
    "Cosine",
    "CurieWeiss",
    "DilatedVE",
    "DilatedVP",
    "GaussianMixture",
    "KModeMixture",
    "Linear",
    "Particles",
    "PieceSteps",
    "Preset",
    "ReducedCW",
    "ReducedGM",
    "SampleResult",
    "Save",
    "Selected",
    "Solution",
    "Trig",
    "compilation",
    "diagnostics",
    "ensemble",
    "estimate",
    "features",
    "interpolants",
    "make_solver",
    "preset",
    "reduction",
    "registry",
    "sample",
    "schedules",
    "sharding",
    "solve",
    "solvers",
    "step_grid",
    "sweeps",
    "systems",
    "targets",
    "ve",
    "vp",
]
