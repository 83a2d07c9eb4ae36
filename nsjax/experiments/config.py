"""Sizes of one ``nsjax reproduce`` run and the fixed criteria of its studies.

The criterion of every study (docs/theory.md §6): ``|p_hat - p| <= P_TOL`` and
``|sigma2_hat / sigma^2 - 1| <= S2_TOL`` (for Curie-Weiss: ``m_abs`` within ``S2_TOL`` and the
within-mode spread within ``SPREAD_TOL``, both relative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

__all__ = [
    "P_TOL",
    "S2_TOL",
    "SPREAD_TOL",
    "TABLE_STEPS",
    "KAPPA_CHECK",
    "PAPER",
    "MODES",
    "Config",
    "config_for",
    "LEARNED_FILES",
    "LEARNED_PER_D",
]

P_TOL, S2_TOL = 0.01, 0.02
SPREAD_TOL = 0.05
"""Relative tolerance of the CW within-mode spread ``mean_i (x_i - M)^2``. Its per-particle
relative spread is ``2 m sqrt(chi/d) / (1 - m^2)`` (``chi = (1 - m^2)/(1 - theta(1 - m^2))``; 0.23
at ``d = 1e3``, 0.07 at ``1e4``, theta = 2), so with the particle counts of every mode (>= 200 at
``d = 1e3``) the standard error is <= 0.016 and 0.05 is >= 3 standard errors; and 0.05 is far
below what constant VE does to it (``spread_hat/ref ~ 1e-3`` at ``d = 1e4``, ``N = 10``, Euler)."""
TABLE_STEPS = (5, 10, 20, 50, 100, 200)
"""Step counts of the feature tables (every study runs them)."""
KAPPA_CHECK = (6.0, 10.0)
"""Larger ``kappa`` of the dilated schedules in the kappa check."""
PAPER = ("vp", "ve", "vp-dilated", "ve-dilated")
"""The paper's four schedules (docs/theory.md §4), in table order."""
MODES = ("quick", "default", "full")

_DEFAULT_PARTICLES = 200  # particles at a dimension absent from ``Config.particles``


@dataclass(frozen=True)
class Config:
    """Sizes of one ``nsjax reproduce`` run (:func:`config_for` gives those of each mode).

    Sequences are stored as tuples; ``particles`` (particles per full-particle dimension) as
    ``((d, count), ...)`` and may be given as a mapping ``{d: count}``.
    """

    mode: str
    p: float = 0.8
    sigma2: float = 0.25
    kappa: float = 3.0
    theta: float = 2.0
    h: float = 0.5 * math.log(4)
    """CW field: the authors' notebooks' ``(1/2) ln 4`` (mode weight ``P(M > 0) -> 0.79`` at
    theta = 2)."""
    reduction_dims: tuple[float, ...] = tuple(10.0**k for k in range(3, 10))
    quantiles: int = 1024
    max_steps_paper: int = 16384
    max_steps_standard: int = 4096
    standard: bool = True
    kappa_check: bool = True
    solvers: tuple[str, ...] = ("euler", "heun")
    adaptive_solvers: tuple[str, ...] = ("tsit5", "dopri5")
    adaptive_standard: bool = True
    rtol: float = 1e-4
    atol: float = 1e-6
    gm_particle_dims: tuple[int, ...] = (1000, 10_000)
    cw_particle_dims: tuple[int, ...] = (1000, 10_000)
    particles: tuple[tuple[int, int], ...] = ((1000, 1000), (10_000, 200))
    particle_solvers: tuple[str, ...] = ("euler", "heun")
    cw_posterior: str = "two-saddle"
    fig2_gm_dim: int = 1_000_000
    fig2_cw_dim: int = 100_000
    fig2_realizations: int = 100
    fig1_dim: int = 256**2
    loop_runs: int = 3
    seed: int = 0
    solver_study_solvers: tuple[str, ...] = ("heun", "dpmpp-2m", "unipc", "deis")
    """Solvers of the schedule x solver study (``()``: off)."""
    solver_study_standard: bool = False
    solver_study_dims: tuple[float, ...] = (1e3, 1e6, 1e9)
    solver_study_quantiles: int = 1024
    solver_study_max_steps: int = 512
    tolerance: bool = False
    """The tolerance study (:mod:`nsjax.experiments.tolerance`); the fields below size it."""
    tolerance_solvers: tuple[str, ...] = ("euler", "heun")
    tolerance_dims: tuple[float, ...] = (1e3, 1e6, 1e9)
    """``d`` of the ``N(eps)`` curves."""
    tolerance_vs_d_dims: tuple[float, ...] = (1e3, 1e6, 1e9, 1e12)
    """``d`` of the error at fixed ``N`` (``tolerance_fixed_steps``)."""
    tolerance_fixed_steps: int = 64
    tolerance_max_steps: int = 1024
    floor_kappas: tuple[float, ...] = (2.0, 3.0, 6.0, 10.0)
    floor_sigma2s: tuple[float, ...] = (0.25, 1.0, 2.0)
    floor_dim: float = 1e12
    heun_growth_dims: tuple[float, ...] = (1e10, 1e11, 1e12)
    trig_solvers: tuple[str, ...] = ("heun",)
    trig_dims: tuple[float, ...] = (1e3, 1e6, 1e9)
    split: bool = False
    """The standard schedules split into allocation and start point (``standard_split``)."""
    split_dims: tuple[float, ...] = (1e3, 1e5, 1e7, 1e9)
    split_quantiles: int = 256
    """Stratified particles of the split (``p_hat`` quadrature error <= 1/(2n) = 2e-3 < P_TOL)."""
    learned_files: tuple[str, ...] = ()
    """Schedule files of the learned-schedules section (:mod:`nsjax.experiments.learned`), names in
    ``learned_dir`` (``()``: the section is off; every mode of :func:`config_for`: :data:`LEARNED_FILES`)."""
    learned_per_d: tuple[str, ...] = ()
    """Files learned at one ``d`` each (the shape-convergence check); :data:`LEARNED_PER_D` in every mode."""
    learned_dir: str = ""
    """Folder of the files (``""``: ``benchmarks/results/learned`` of the checkout)."""
    learned_dims: tuple[float, ...] = (1e3, 1e6, 1e9, 1e12)
    learned_gm_targets: tuple[tuple[float, float], ...] = ((0.8, 0.25), (0.3, 2.0))
    """GM ``(p, sigma2)`` columns of the transfer matrix (``(p, sigma2)`` of the config first)."""
    learned_quantiles: int = 512
    learned_max_steps: int = 256
    learned_kmode_dim: int = 1000
    learned_kmode_particles: int = 2000
    """Full particles of the K-mode column (``0``: no K-mode column)."""
    cw_reduced_dims: tuple[float, ...] = ()
    """Dimensions of the reduced-CW study (``()``: off, as for a plain ``Config``; every mode of
    :func:`config_for` turns it on: :data:`CW_REDUCED_DIMS` by default)."""
    cw_reduced_quantiles: int = 64
    cw_reduced_nodes: int = 64
    cw_reduced_max_steps: int = 256
    cw_reduced_limit_steps: int = 64

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "particles":
                pairs = value.items() if isinstance(value, Mapping) else value
                value = tuple((int(d), int(n)) for d, n in pairs)
            elif f.name == "learned_gm_targets":
                value = tuple((float(p), float(s)) for p, s in value)
            elif isinstance(value, list):
                value = tuple(value)
            object.__setattr__(self, f.name, value)
        _check(self)

    def particles_at(self, dim: int) -> int:
        """Particles of the full-particle runs at dimension ``dim`` (200 if not listed)."""
        return dict(self.particles).get(dim, _DEFAULT_PARTICLES)

    def to_json(self) -> dict:
        """The ``config`` entry of results.json (``particles`` as ``{"d": count}``)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "particles":
                value = {str(d): n for d, n in value}
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out


def _check(cfg: Config) -> None:
    def need(ok: bool, name: str, allowed: str) -> None:
        if not ok:
            raise ValueError(f"{name} must be {allowed}, got {getattr(cfg, name)!r}")

    need(0 < cfg.p < 1, "p", "in (0, 1)")
    need(cfg.sigma2 > 0, "sigma2", "> 0")
    need(cfg.kappa > 0, "kappa", "> 0")
    need(cfg.theta > 0, "theta", "> 0")
    need(math.isfinite(cfg.h), "h", "finite")
    need(len(cfg.reduction_dims) >= 1, "reduction_dims", "a non-empty sequence of d >= 1")
    need(all(d >= 1 for d in cfg.reduction_dims), "reduction_dims", "a sequence of d >= 1")
    for name in ("quantiles", "max_steps_paper", "max_steps_standard", "fig1_dim"):
        need(getattr(cfg, name) >= 2, name, "an integer >= 2")
    need(cfg.fig2_gm_dim >= 1, "fig2_gm_dim", "an integer >= 1")
    need(cfg.fig2_cw_dim >= 0, "fig2_cw_dim", "an integer >= 0 (0: no CW panel)")
    need(cfg.fig2_realizations >= 1, "fig2_realizations", "an integer >= 1")
    need(0 <= cfg.loop_runs <= 5, "loop_runs", "an integer in [0, 5]")
    need(len(cfg.solvers) >= 1, "solvers", "a non-empty sequence of solver names")
    need(cfg.rtol > 0 and cfg.atol > 0, "rtol", "> 0 (and atol > 0)")
    need(all(n >= 1 for _, n in cfg.particles), "particles", "counts >= 1")
    need(cfg.tolerance_max_steps >= 64, "tolerance_max_steps", "an integer >= 64")
    need(cfg.tolerance_fixed_steps >= 2, "tolerance_fixed_steps", "an integer >= 2")
    need(cfg.floor_dim >= 1e6, "floor_dim", ">= 1e6 (the d -> inf floor)")
    need(len(cfg.split_dims) >= 1 and all(d >= 1 for d in cfg.split_dims), "split_dims",
         "a non-empty sequence of d >= 1")
    need(cfg.split_quantiles >= 2, "split_quantiles", "an integer >= 2")
    need(cfg.cw_posterior in ("exact", "two-saddle"), "cw_posterior", "'exact' or 'two-saddle'")
    need(all(d >= 1 for d in cfg.learned_dims), "learned_dims", "a sequence of d >= 1")
    need(all(0 < p < 1 and s > 0 for p, s in cfg.learned_gm_targets), "learned_gm_targets",
         "a sequence of (p, sigma2) with p in (0, 1) and sigma2 > 0")
    need(cfg.learned_quantiles >= 2, "learned_quantiles", "an integer >= 2")
    need(cfg.learned_max_steps >= 2, "learned_max_steps", "an integer >= 2")
    need(cfg.learned_kmode_particles >= 0, "learned_kmode_particles", "an integer >= 0 (0: off)")
    need(cfg.learned_kmode_dim >= 3, "learned_kmode_dim", "an integer >= 3 (the K = 3 modes)")


LEARNED_FILES = ("vp_heun6.json", "ve_unipc12.json", "kmode_vp_heun6.json")
"""The committed learned schedules (``benchmarks/results/learned``) of the learned section."""
LEARNED_PER_D = tuple(f"per_d/vp_heun6_d{d}.json" for d in ("1e3", "1e6"))
"""VP Heun 6-step schedules learned at one ``d`` each (``benchmarks/learn_per_d.py``; none at
``d >= 1e9``: there the exact objective disagrees with the quadrature sweep, see its README)."""
_LEARNED = {"learned_files": LEARNED_FILES, "learned_per_d": LEARNED_PER_D}


CW_REDUCED_DIMS = tuple(10.0**k for k in range(3, 10))
"""``d`` of the default run's reduced-CW study (1e3 .. 1e9)."""


def config_for(mode: str) -> Config:
    """The sizes of ``mode`` in ``{"quick", "default", "full"}``."""
    if mode == "default":
        return Config(mode, tolerance=True, split=True, cw_reduced_dims=CW_REDUCED_DIMS, **_LEARNED)
    if mode == "quick":
        return Config(
            mode,
            quantiles=512,
            max_steps_paper=2048,
            standard=False,
            kappa_check=False,
            adaptive_solvers=("tsit5",),
            adaptive_standard=False,
            gm_particle_dims=(1000,),
            cw_particle_dims=(1000,),
            particles={1000: 200},
            particle_solvers=("euler",),
            fig2_gm_dim=10_000,
            fig2_cw_dim=0,
            fig2_realizations=30,
            loop_runs=1,
            solver_study_solvers=(),
            tolerance_solvers=("euler",),
            tolerance_dims=(1e3, 1e6),
            tolerance_vs_d_dims=(1e3, 1e6, 1e12),
            tolerance_max_steps=256,
            floor_kappas=(3.0,),
            floor_sigma2s=(0.25,),
            trig_solvers=(),
            tolerance=True,
            learned_dims=(1e3, 1e9),
            learned_gm_targets=((0.8, 0.25),),
            learned_quantiles=256,
            learned_max_steps=64,
            learned_kmode_particles=500,
            **_LEARNED,
            cw_reduced_dims=(1e3, 1e6),
            cw_reduced_quantiles=32,
            cw_reduced_nodes=64,
            cw_reduced_max_steps=64,
            cw_reduced_limit_steps=16,
        )
    if mode == "full":
        return Config(
            mode,
            tolerance=True,
            split=True,
            reduction_dims=tuple(10.0**k for k in range(3, 13)),
            quantiles=4096,
            max_steps_paper=131072,
            max_steps_standard=65536,
            rtol=1e-5,
            gm_particle_dims=(1000, 10_000, 100_000, 1_000_000),
            cw_particle_dims=(1000, 10_000, 100_000, 1_000_000),
            particles={1000: 10_000, 10_000: 4000, 100_000: 1000, 1_000_000: 200},
            cw_posterior="exact",
            fig2_cw_dim=1_000_000,
            loop_runs=5,
            solver_study_solvers=(
                "euler", "heun", "rk4", "ddim", "dpmpp-2m", "dpmpp-3m", "unipc", "deis", "ipndm",
            ),
            solver_study_standard=True,
            solver_study_quantiles=1024,
            solver_study_max_steps=1024,
            tolerance_solvers=("euler", "heun", "dpmpp-2m"),
            tolerance_vs_d_dims=tuple(10.0**k for k in range(3, 13)),
            tolerance_max_steps=65536,
            heun_growth_dims=(1e9, 1e10, 1e11, 1e12),
            trig_solvers=("euler", "heun"),
            trig_dims=tuple(10.0**k for k in range(3, 10)),
            split_dims=tuple(10.0**k for k in range(3, 13)),
            split_quantiles=1024,
            learned_quantiles=4096,
            learned_max_steps=1024,
            learned_kmode_particles=25_000,
            **_LEARNED,
            cw_reduced_dims=tuple(10.0**k for k in range(3, 13)),
            cw_reduced_quantiles=256,
            cw_reduced_nodes=128,
            cw_reduced_max_steps=16384,
        )
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
