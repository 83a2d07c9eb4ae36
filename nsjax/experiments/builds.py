"""Every system, interpolant, schedule and solver that the studies run: the one adapter to the core.

This is the only module of :mod:`nsjax.experiments` that imports :mod:`nsjax.sweeps`,
:mod:`nsjax.schedules` or :mod:`nsjax.registry` (``tests/test_experiments.py`` checks it): a
change of those building blocks is a change of this file alone. Schedules come from the one
registry (:func:`nsjax.registry.select`: several presets as one traced pytree, ``d``, ``kappa``
and ``sigma_max`` traced), so no schedule class is special to the studies.

A *build* maps one grid point (a dict of traced scalars) to ``(system, interpolant, schedule)``
(:func:`nsjax.sweeps.sweep`); a :class:`Grid` holds the rows ``(schedule name, d)`` of a sweep and
its traced parameters.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..interpolants import make_interpolant
from ..reduction import ReducedGM
from ..registry import PAPER_SCHEDULES, make_schedule, preset, select
from ..schedules import Selected, ZeroSNR
from ..solvers import make_solver
from ..start import MarginalStart, start_signal
from ..sweeps import QuantileReducedGM, normal_quantiles, sweep
from ..targets import CurieWeiss, GaussianMixture
from ..targets.base import AbstractTarget
from .config import Config

__all__ = [
    "STANDARD",
    "Grid",
    "paper_grid",
    "standard_grid",
    "kappa_check_grid",
    "reduced_paper_build",
    "reduced_standard_build",
    "reduced_paper_trig_build",
    "SPLIT",
    "SPLIT_SIGMA_FACTOR",
    "split_grid",
    "reduced_split_build",
    "ParticleBuild",
    "target",
    "reduced_gm",
    "reduced_cw_paper_build",
    "named_schedule",
    "solver",
    "quantiles",
    "sweep",
    "ladder_sweep",
    "two_phase",
    "LearnedBuild",
    "kmode_target",
]

# row name, preset (its noise scale comes from the registry), sigma_max rule (None: the
# schedule's default; "scaled": Song & Ermon's max pairwise distance of the data).
STANDARD = (
    ("ddpm", "ddpm", None),
    ("vpsde", "vpsde", None),
    ("cosine", "cosine", None),
    ("vesde", "vesde", 348.0),
    ("edm", "edm", 80.0),
    ("vesde-scaled", "vesde", "scaled"),
    ("edm-scaled", "edm", "scaled"),
)
STANDARD_PRESETS = ("ddpm", "vpsde", "cosine", "vesde", "edm")
"""The standard schedules of docs/theory.md §5 as the studies run them."""


@dataclass(frozen=True)
class Grid:
    """The grid of one sweep: ``rows[g] = (schedule name, d)`` and ``params[k][g]``."""

    rows: tuple[tuple[str, float], ...]
    params: Mapping[str, np.ndarray]


def _with_target(rows, columns: Mapping[str, Sequence[float]], cfg: Config) -> Grid:
    params = {k: np.asarray(v) for k, v in columns.items()}
    params["p"] = np.full(len(rows), cfg.p)
    params["sigma2"] = np.full(len(rows), cfg.sigma2)
    return Grid(tuple(rows), params)


def paper_grid(names: Sequence[str], dims: Sequence[float], cfg: Config) -> Grid:
    """The paper's schedules ``names`` at every ``d`` with ``kappa < sqrt(d)`` (GM of ``cfg``)."""
    rows = [(n, d) for n in names for d in dims if cfg.kappa < math.sqrt(d)]
    if not rows:
        raise ValueError(f"dims must hold a d with sqrt(d) > kappa = {cfg.kappa}, got {dims}")
    columns = {
        "schedule": [PAPER_SCHEDULES.index(n) for n, _ in rows],
        "d": [d for _, d in rows],
        "kappa": [cfg.kappa] * len(rows),
    }
    return _with_target(rows, columns, cfg)


def kappa_check_grid(dims: Sequence[float], kappas: Sequence[float], cfg: Config) -> Grid:
    """Dilated VP/VE at each of ``kappas`` (constant VP where ``kappa >= sqrt(d)``)."""
    rows, columns = [], {"schedule": [], "d": [], "kappa": []}
    for kappa in kappas:
        for name in ("vp-dilated", "ve-dilated"):
            for d in dims:
                rows.append((f"{name}(kappa={kappa:g})", d))
                ok = kappa < math.sqrt(d)
                columns["schedule"].append(PAPER_SCHEDULES.index(name if ok else "vp"))
                columns["d"].append(d)
                columns["kappa"].append(kappa if ok else math.sqrt(d) / 2)  # unused by "vp"
    return _with_target(rows, columns, cfg)


def standard_grid(dims: Sequence[float], cfg: Config) -> Grid:
    """Every schedule of :data:`STANDARD` at every ``d`` (GM of ``cfg``)."""
    rows, cols = [], {k: [] for k in ("d", "k", "sigma_max")}
    for name, preset_name, smax in STANDARD:
        for d in dims:
            if smax == "scaled":  # Song & Ermon: max pairwise distance of the data ~ |2r + ...|
                smax_d = math.sqrt(d * (4 + 2 * cfg.sigma2))
            else:
                smax_d = smax if smax is not None else 1.0  # unused by the VP schedules
            rows.append((name, d))
            cols["d"].append(d)
            cols["k"].append(STANDARD_PRESETS.index(preset_name))
            cols["sigma_max"].append(smax_d)
    return _with_target(rows, {k: np.array(v, float) for k, v in cols.items()}, cfg)


# -- builds (module-level functions: one compiled program each) ---
def _reduced_gm(point) -> QuantileReducedGM:
    target = GaussianMixture(dim=2, p=point["p"], sigma2=point["sigma2"])  # d: traced, below
    return QuantileReducedGM(target, dim=point["d"])


def _paper_schedule(point):
    """Paper preset ``PAPER_SCHEDULES[schedule]`` at traced ``(d, kappa)``."""
    return tuple(select(PAPER_SCHEDULES, point["schedule"], point["d"], kappa=point["kappa"]))


def reduced_paper_build(point):
    """Exact GM reduction at traced ``(p, sigma2, d)``; paper schedule at ``(schedule, d, kappa)``."""
    return (_reduced_gm(point), *_paper_schedule(point))


def reduced_paper_trig_build(point):
    """:func:`reduced_paper_build` on the trig interpolant ``alpha = sqrt(1 - tau^2)`` (dilated VE:
    its trig variant, docs/theory.md §4)."""
    schedule = select(PAPER_SCHEDULES, point["schedule"], point["d"], kappa=point["kappa"], form="trig")
    return (_reduced_gm(point), *schedule)
class ReducedCWBuild:
    """The CW reduction (:class:`~nsjax.cw_reduction.QuantileReducedCW`, ``nodes`` graded nodes) of
    ``(theta, h)`` at traced ``d``; paper schedule at ``(schedule, d, kappa)``."""

    __slots__ = ("theta", "h", "nodes")

    def __init__(self, theta: float, h: float, nodes: int):
        self.theta, self.h, self.nodes = float(theta), float(h), int(nodes)

    def __call__(self, point):
        from ..cw_reduction import QuantileReducedCW

        system = QuantileReducedCW(CurieWeiss(2, self.theta, self.h), nodes=self.nodes, dim=point["d"])
        return (system, *_paper_schedule(point))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ReducedCWBuild) and (self.theta, self.h, self.nodes) == (
            other.theta, other.h, other.nodes)

    def __hash__(self) -> int:
        return hash((self.theta, self.h, self.nodes))


def reduced_cw_paper_build(cfg: Config) -> ReducedCWBuild:
    """The reduced-CW build of ``cfg`` (``theta``, ``h``, ``cw_reduced_nodes``)."""
    return ReducedCWBuild(cfg.theta, cfg.h, cfg.cw_reduced_nodes)


def reduced_standard_build(point):
    """Exact GM reduction; standard preset ``k`` of :data:`STANDARD_PRESETS` at ``(d, sigma_max)``."""
    standard = select(STANDARD_PRESETS, point["k"], point["d"], sigma_max=point["sigma_max"])
    return (_reduced_gm(point), *standard)


# -- standard schedules split into allocation and start point (issue 12, item 4) ---
SPLIT_SIGMA_FACTOR = 100.0
"""``sigma_max = SPLIT_SIGMA_FACTOR sqrt(d)`` for the rescaled VE-SDE / EDM runs. Dropping the start
signal shifts the start law along ``r`` by ``sqrt(d)/sigma_max`` standard deviations, which moves
``p_hat`` by ``|2p - 1| phi(Phi^{-1}(p)) sqrt(d)/sigma_max`` to first order (0.17/100 = 1.7e-3 at
p = 0.8, a sixth of ``P_TOL``), and the per-mode variance by ``sigma^2/sigma_max^2`` relative."""
SPLIT_KINDS = ("ddpm", "vpsde", "ddpm-zero-snr", "vpsde-zero-snr", "vesde", "edm")
# family, variant, schedule kind, sigma_max (None: unused / published; "wide": 100 sqrt(d)), start
SPLIT = (
    ("ddpm", "shipped", "ddpm", None, "noise"),
    ("ddpm", "marginal", "ddpm", None, "marginal"),
    ("ddpm", "rescaled", "ddpm-zero-snr", None, "noise"),
    ("vpsde", "shipped", "vpsde", None, "noise"),
    ("vpsde", "marginal", "vpsde", None, "marginal"),
    ("vpsde", "rescaled", "vpsde-zero-snr", None, "noise"),
    ("vesde", "shipped", "vesde", 348.0, "noise"),
    ("vesde", "marginal", "vesde", 348.0, "marginal"),
    ("vesde", "rescaled", "vesde", "wide", "noise"),
    ("edm", "shipped", "edm", 80.0, "noise"),
    ("edm", "marginal", "edm", 80.0, "marginal"),
    ("edm", "rescaled", "edm", "wide", "noise"),
)
"""The 12 runs of the split: as shipped (start from pure noise), start from the exact marginal at
``tau_min``, and rescaled (VP: zero terminal SNR, :class:`~nsjax.schedules.ZeroSNR`; VE:
``sigma_max = SPLIT_SIGMA_FACTOR sqrt(d)``). Row names ``"<family>-<variant>"``."""


def split_grid(dims: Sequence[float], cfg: Config) -> Grid:
    """Every run of :data:`SPLIT` at every ``d`` (GM of ``cfg``)."""
    rows, cols = [], {k: [] for k in ("d", "k", "sigma_max", "marginal")}
    for family, variant, kind, smax, start in SPLIT:
        for d in dims:
            rows.append((f"{family}-{variant}", d))
            cols["d"].append(d)
            cols["k"].append(SPLIT_KINDS.index(kind))
            cols["sigma_max"].append(
                SPLIT_SIGMA_FACTOR * math.sqrt(d) if smax == "wide" else (smax or 1.0)
            )
            cols["marginal"].append(1.0 if start == "marginal" else 0.0)
    return _with_target(rows, {k: np.array(v, float) for k, v in cols.items()}, cfg)


def reduced_split_build(point):
    """Exact GM reduction started as ``point["marginal"]`` says (1: exact marginal at
    ``tau_min``, 0: pure noise) under split schedule ``SPLIT_KINDS[k]`` at ``(d, sigma_max)``."""
    d, index = point["d"], jnp.asarray(point["k"]).astype(jnp.int32)
    c = jnp.where(index < 4, 1.0, d**0.5)  # VP kinds first: c = 1; VE: c = sqrt(d)
    built = [
        make_schedule("ddpm", d, noise_scale=c),
        make_schedule("vpsde", d, noise_scale=c),
        ZeroSNR(make_schedule("ddpm", d, noise_scale=c)),
        ZeroSNR(make_schedule("vpsde", d, noise_scale=c)),
        make_schedule("vesde", d, noise_scale=c, sigma_max=point["sigma_max"]),
        make_schedule("edm", d, noise_scale=c, sigma_max=point["sigma_max"]),
    ]
    schedule = Selected(tuple(built), index)
    interpolant = make_interpolant("linear", c)
    system = MarginalStart(_reduced_gm(point), point["marginal"] * start_signal(interpolant, schedule))
    return system, interpolant, schedule


def _target_key(target: AbstractTarget) -> Hashable:
    """Every parameter of ``target``: its static fields (tree structure) and its leaf values."""
    leaves, treedef = jax.tree_util.tree_flatten(target)
    values = []
    for leaf in leaves:
        arr = np.asarray(leaf)
        values.append((arr.shape, arr.dtype.str, arr.tobytes()))
    return treedef, tuple(values)


class ParticleBuild:
    """The build of full particles of a fixed ``target`` under the paper's schedules.

    Builds compare equal (and hash alike) exactly when their targets have equal parameters,
    static and traced alike, so the sweep's compilation cache (keyed on the build) is shared by
    equal targets and never by targets that differ in any parameter (``p``, ``theta``, ...).
    """

    __slots__ = ("target", "_key")

    def __init__(self, target: AbstractTarget):
        self.target = target
        self._key = _target_key(target)

    def __call__(self, point):
        return (self.target, *_paper_schedule(point))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ParticleBuild) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"ParticleBuild({self.target!r})"


def target(cfg: Config, name: str, dim: int) -> AbstractTarget:
    """The full target ``name`` (``"gm"`` or ``"cw"``) of ``cfg`` at dimension ``dim``."""
    if name == "gm":
        return GaussianMixture(dim=dim, p=cfg.p, sigma2=cfg.sigma2)
    if name == "cw":
        return CurieWeiss(dim=dim, theta=cfg.theta, h=cfg.h, posterior=cfg.cw_posterior)
    raise ValueError(f"target must be 'gm' or 'cw', got {name!r}")


# -- single runs and solvers ---
def reduced_gm(cfg: Config, dim: int) -> ReducedGM:
    """The exact GM reduction of ``cfg``'s mixture at dimension ``dim`` (for ``sample``)."""
    return ReducedGM(GaussianMixture(dim=dim, p=cfg.p, sigma2=cfg.sigma2))


def named_schedule(name: str, dim: int, kappa: float):
    """``(interpolant, schedule)`` of the schedule called ``name`` at dimension ``dim``."""
    return preset(name, dim, kappa=kappa)


def solver(name: str):
    """The solver called ``name`` (``euler``, ``heun``, ``tsit5``, ...)."""
    return make_solver(name)


def ladder_sweep(
    build, params, z, ladder: Sequence[int], solver_name: str, bar, stop, *, cap=None, **kwargs
):
    """:func:`sweep` of ``build`` up the step ``ladder`` with the solver called ``solver_name``
    (adaptive ones capped at ``4 cap`` steps, ``cap = max(ladder)`` by default), ticking ``bar``
    and closing it at the end; ``stop(i, result)`` ends the climb (see :func:`nsjax.sweeps.sweep`)."""
    cap = max(ladder) if cap is None else cap
    try:
        return sweep(build, params, z, steps=ladder, solver=solver(solver_name),
                     max_steps=4 * cap, progress=bar.update, stop=stop, **kwargs)
    finally:
        bar.close()


def quantiles(n: int) -> np.ndarray:
    """``n`` stratified standard-normal quantiles: the reduction's initial ``u(0)``."""
    return normal_quantiles(n)


# -- learned schedules (nsjax.experiments.learned) ---
def two_phase(noise: str, dim: Any, log_kappa: Any, first: Sequence[Any], second: Sequence[Any], split: float):
    """The :class:`nsjax.schedules.TwoPhase` schedule ``(interpolant, schedule)`` of noise
    ``noise`` at ``dim`` (may be traced) with the given parameters."""
    import jax.numpy as jnp

    from ..interpolants import make_interpolant
    from ..registry import noise_scale
    from ..schedules import TwoPhase, Warp

    schedule = TwoPhase(
        log_kappa, dim, Warp(jnp.stack(list(first))), Warp(jnp.stack(list(second))), noise=noise, split=split
    )
    return make_interpolant("linear", noise_scale(noise, dim)), schedule


class LearnedBuild:
    """The build of one family of two-phase schedules (``noise``, ``split``, ``num`` coefficients
    per warp; parameters ``log_kappa``, ``a0..``, ``b0..`` traced) on the exact GM reduction at
    traced ``(p, sigma2, d)``, or on full particles of a fixed ``target``. Equal arguments compare
    equal (one compiled program)."""

    __slots__ = ("noise", "split", "num", "target", "_key")

    def __init__(self, noise: str, split: float, num: int, target: AbstractTarget | None = None):
        self.noise, self.split, self.num, self.target = noise, float(split), int(num), target
        self._key = (noise, self.split, self.num, None if target is None else _target_key(target))

    def __call__(self, point):
        first = [point[f"a{k}"] for k in range(self.num)]
        second = [point[f"b{k}"] for k in range(self.num)]
        system = _reduced_gm(point) if self.target is None else self.target
        return (system, *two_phase(self.noise, point["d"], point["log_kappa"], first, second, self.split))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, LearnedBuild) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def kmode_target(dim: int) -> AbstractTarget:
    """The K-mode mixture of the transfer studies (:class:`nsjax.targets.KModeMixture` defaults)."""
    from ..targets import KModeMixture

    return KModeMixture(dim=int(dim))
