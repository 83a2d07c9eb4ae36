"""The studies of ``nsjax reproduce``: each a function of a :class:`Config` and earlier results.

Every study returns a frozen dataclass (mappings read-only, sequences tuples); none writes
shared state. Prose about the results lives in :mod:`nsjax.experiments.verdicts`.

- :func:`reduction_study`: steps to tolerance on the exact GM reduction (``kind`` ``"paper"``,
  ``"standard"`` or ``"kappa"``), smallest ``N = 2^k`` with ``|p_hat - p| <= P_TOL`` and
  ``|sigma2_hat / sigma^2 - 1| <= S2_TOL``; fitted exponent of ``N ~ d^slope``; feature rows at
  ``N`` in ``TABLE_STEPS``.
- :func:`particle_study`: the same criterion with full particles, ``error <= tol + 2 stderr``.
- :func:`adaptive_study`: mean NFE of PID-adaptive solves per schedule and ``d``.
- :func:`loop_comparison`: single :func:`nsjax.sample` runs against the compiled sweep.
- :func:`dichotomy`: which feature each paper schedule gets at one ``(d, N)`` (GM on the exact
  reduction; CW, :func:`cw_dichotomy`, from the full-particle rows).
- :func:`solver_study`: NFE to tolerance per schedule x solver (exponential and multistep
  solvers included), dimension-free pairs, the VP/VE dichotomy per solver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..ensemble import sample
from ..features import estimate
from . import builds
from .config import KAPPA_CHECK, P_TOL, PAPER, S2_TOL, SPREAD_TOL, TABLE_STEPS, Config

__all__ = [
    "Progress",
    "silent",
    "dim_key",
    "fit_slope",
    "steps_to_tolerance",
    "SweepTiming",
    "FeatureRow",
    "ReductionStudy",
    "ParticleStudy",
    "AdaptiveRow",
    "AdaptiveStudy",
    "LoopRun",
    "LoopComparison",
    "DichotomyRow",
    "CWDichotomyRow",
    "CWDichotomy",
    "Dichotomy",
    "reduction_study",
    "particle_study",
    "adaptive_study",
    "loop_comparison",
    "dichotomy",
    "SOLVER_LADDER",
    "DICHOTOMY_STEPS",
    "SolverStudy",
    "solver_study",
    "cw_dichotomy",
]

Progress = Callable[[int, str], Any]
"""``progress(total, description)`` -> a bar with ``update(n)`` and ``close()`` (e.g. tqdm)."""


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def silent(total: int, description: str) -> _NoBar:
    """A :data:`Progress` that shows nothing."""
    return _NoBar()


def _frozen(value: Any) -> Any:
    """Read-only copy: mappings to ``MappingProxyType``, lists to tuples (recursively)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


# -- measures ---
def dim_key(d: float) -> str:
    """The results.json key of dimension ``d`` (``"1000000"`` for ``1e6``)."""
    return str(int(round(d)))


def fit_slope(table: Mapping[str, int | None]) -> tuple[float | None, list[float] | None]:
    """Least-squares exponent of ``N ~ d^slope`` over the ``d`` with a finite ``N``.

    Returns ``(slope, [d_min, d_max])``, or ``(None, None)`` with fewer than two such ``d``.
    """
    pts = [(float(d), float(n)) for d, n in table.items() if n is not None]
    if len(pts) < 2:
        return None, None
    x = np.log10([d for d, _ in pts])
    y = np.log10([n for _, n in pts])
    slope = float(np.polyfit(x, y, 1)[0])
    return round(slope, 3), [min(d for d, _ in pts), max(d for d, _ in pts)]


def steps_to_tolerance(ladder: Sequence[int], passed: np.ndarray) -> list[int | None]:
    """Smallest ``ladder[i]`` with ``passed[i, g]`` per column ``g`` (``None`` if none passed)."""
    out: list[int | None] = []
    for g in range(passed.shape[1]):
        hits = np.nonzero(passed[:, g])[0]
        out.append(int(ladder[hits[0]]) if hits.size else None)
    return out


def _slopes(steps: Mapping[str, Mapping[str, int | None]]):
    fits = {key: fit_slope(table) for key, table in steps.items()}
    return {k: s for k, (s, _) in fits.items()}, {k: r for k, (_, r) in fits.items()}


# -- results ---
@dataclass(frozen=True)
class SweepTiming:
    """Wall time of one compiled sweep (``first_call_s`` includes the compilation)."""

    first_call_s: float
    runs: int
    total_s: float | None = None
    particles: int | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"first_call_s": self.first_call_s}
        if self.total_s is not None:
            out["total_s"] = self.total_s
        out["runs"] = self.runs
        if self.particles is not None:
            out["particles"] = self.particles
        return out


@dataclass(frozen=True)
class FeatureRow:
    """Features of one run (:func:`nsjax.features.estimate`: ``<f>_hat/_ref/_stderr/_error``)."""

    schedule: str
    solver: str
    d: float
    N: int
    nfe: float
    nonfinite: int
    features: Mapping[str, float]

    def to_json(self) -> dict:
        out = {
            "schedule": self.schedule,
            "solver": self.solver,
            "d": self.d,
            "N": self.N,
            "nfe": self.nfe,
            "nonfinite": self.nonfinite,
        }
        out.update(self.features)
        return out


def _feature_row(name, solver_name, d, n, features, result, i, g) -> FeatureRow:
    return FeatureRow(
        schedule=name,
        solver=solver_name,
        d=float(d),
        N=n,
        nfe=float(result.nfe[i, g].mean()),
        nonfinite=int(result.nonfinite[i, g]),
        features=MappingProxyType(dict(features)),
    )


@dataclass(frozen=True)
class ReductionStudy:
    """Steps to tolerance on the exact GM reduction, keyed ``"<schedule>/<solver>"`` then ``d``."""

    kind: str
    max_steps: int
    steps_to_tolerance: Mapping[str, Mapping[str, int | None]]
    slope: Mapping[str, float | None]
    slope_fit_range: Mapping[str, tuple[float, float] | None]
    rows: tuple[FeatureRow, ...]
    """Feature rows at ``N`` in ``TABLE_STEPS`` (every grid point and solver)."""
    timings: Mapping[str, SweepTiming]


@dataclass(frozen=True)
class ParticleStudy:
    """Feature rows and steps to tolerance (``N`` in ``TABLE_STEPS``) with full particles."""

    target: str
    rows: tuple[FeatureRow, ...]
    steps_to_tolerance: Mapping[str, Mapping[str, int | None]]
    timings: Mapping[str, SweepTiming]


@dataclass(frozen=True)
class AdaptiveRow:
    """One adaptive solve on the exact reduction."""

    schedule: str
    solver: str
    d: float
    nfe_mean: float
    nfe_max: int
    p_error: float
    sigma2_error: float
    within_tolerance: bool
    nonfinite: int


@dataclass(frozen=True)
class AdaptiveStudy:
    """Mean NFE of PID-adaptive solves at ``(rtol, atol)``, keyed ``"<schedule>/<solver>"``, ``d``."""

    rtol: float
    atol: float
    nfe: Mapping[str, Mapping[str, float]]
    rows: tuple[AdaptiveRow, ...]
    slope: Mapping[str, float | None]
    slope_fit_range: Mapping[str, tuple[float, float] | None]
    timings: Mapping[str, SweepTiming]


@dataclass(frozen=True)
class LoopRun:
    """One single :func:`nsjax.sample` run (compiles: new static ``d`` or ``N``)."""

    schedule: str
    d: float
    N: int
    solver: str
    seconds: float


@dataclass(frozen=True)
class LoopComparison:
    """The paper-schedule reduction sweeps against a loop of single runs."""

    runs: tuple[LoopRun, ...]
    sweep_runs: int
    sweep_seconds: float
    particles_per_run: int

    @property
    def loop_seconds_per_run(self) -> float:
        return float(np.mean([r.seconds for r in self.runs]))

    @property
    def loop_seconds_estimated(self) -> float:
        return self.loop_seconds_per_run * self.sweep_runs

    @property
    def speedup(self) -> float | None:
        if self.sweep_seconds <= 0:
            return None
        return self.loop_seconds_estimated / self.sweep_seconds


@dataclass(frozen=True)
class DichotomyRow:
    """Features of one paper schedule at the dichotomy's ``(d, N)``."""

    p_hat: float
    p_error: float
    sigma2_ratio: float
    p_ok: bool
    sigma2_ok: bool


@dataclass(frozen=True)
class CWDichotomyRow:
    """CW features of one paper schedule (full particles) at the CW dichotomy's ``(d, N)``.

    ``p_ok``: ``|p_hat - p| <= P_TOL + 2 sqrt(p (1 - p) / n)`` (binomial standard error from the
    exact ``p``: a sample's own is 0 when every particle picks one mode); ``spread_ok``:
    ``|spread_hat / spread_ref - 1| <= SPREAD_TOL + 2 stderr / spread_ref``.
    """

    p_hat: float
    p_error: float
    spread_ratio: float
    p_ok: bool
    spread_ok: bool


@dataclass(frozen=True)
class CWDichotomy:
    """The CW half: which of ``P(M > 0)`` and the within-mode spread each paper schedule gets."""

    d: float
    N: int
    solver: str
    particles: int
    rows: Mapping[str, CWDichotomyRow]
    agrees: Mapping[str, bool]


@dataclass(frozen=True)
class Dichotomy:
    """Which feature each paper schedule gets; ``agrees[name]``: as the paper claims.

    ``cw``: the Curie–Weiss half (``None`` without CW particle rows)."""

    d: float
    N: int
    solver: str
    rows: Mapping[str, DichotomyRow]
    agrees: Mapping[str, bool]
    cw: CWDichotomy | None = None


# -- the studies ---
def _gm_features(stats: Mapping[str, np.ndarray], d: float, cfg: Config) -> dict[str, float]:
    return estimate(builds.target(cfg, "gm", int(round(d))), stats, allow_empty=True)


def reduction_study(cfg: Config, kind: str, progress: Progress = silent) -> ReductionStudy:
    """Steps to tolerance and feature rows on the exact reduction (fixed steps).

    ``kind``: ``"paper"`` (the four paper schedules), ``"standard"`` (docs/theory.md §5) or
    ``"kappa"`` (the dilated schedules at each ``kappa`` of ``KAPPA_CHECK``).
    """
    if kind == "paper":
        grid = builds.paper_grid(PAPER, cfg.reduction_dims, cfg)
        build, max_n = builds.reduced_paper_build, cfg.max_steps_paper
    elif kind == "standard":
        grid = builds.standard_grid(cfg.reduction_dims, cfg)
        build, max_n = builds.reduced_standard_build, cfg.max_steps_standard
    elif kind == "kappa":
        grid = builds.kappa_check_grid(cfg.reduction_dims, KAPPA_CHECK, cfg)
        build, max_n = builds.reduced_paper_build, cfg.max_steps_paper
    else:
        raise ValueError(f"kind must be 'paper', 'standard' or 'kappa', got {kind!r}")
    ladder = [2**k for k in range(1, int(math.log2(max_n)) + 1)]
    steps = sorted(set(ladder) | set(TABLE_STEPS))
    z = builds.quantiles(cfg.quantiles)
    found_steps: dict[str, dict[str, int | None]] = {}
    rows: list[FeatureRow] = []
    timings: dict[str, SweepTiming] = {}
    for solver_name in cfg.solvers:
        bar = progress(len(steps), f"reduction {kind} {solver_name}")
        passed = np.zeros((len(steps), len(grid.rows)), bool)

        def stop(i, result, passed=passed, solver_name=solver_name):
            n = result.steps[i]
            for g, (name, d) in enumerate(grid.rows):
                f = _gm_features(result.point(i, g), d, cfg)
                ok = f["p_error"] <= P_TOL and f["sigma2_error"] <= S2_TOL
                passed[i, g] = ok and result.nonfinite[i, g] == 0
                if n in TABLE_STEPS:
                    rows.append(_feature_row(name, solver_name, d, n, f, result, i, g))
            idx = [j for j in range(i + 1) if steps[j] in ladder]
            return bool(n >= max(TABLE_STEPS) and passed[idx].any(0).all())

        result = builds.ladder_sweep(build, grid.params, z, steps, solver_name, bar, stop, cap=max_n)
        timings[f"reduction_{kind}_{solver_name}"] = SweepTiming(
            first_call_s=result.run_seconds[0],
            total_s=float(sum(result.run_seconds)),
            runs=len(result.steps) * len(grid.rows),
        )
        done = len(result.steps)
        lad_idx = [i for i, s in enumerate(steps[:done]) if s in ladder]
        found = steps_to_tolerance([steps[i] for i in lad_idx], passed[lad_idx])
        for g, (name, d) in enumerate(grid.rows):
            found_steps.setdefault(f"{name}/{solver_name}", {})[dim_key(d)] = found[g]
    slope, span = _slopes(found_steps)
    return ReductionStudy(
        kind=kind,
        max_steps=max_n,
        steps_to_tolerance=_frozen(found_steps),
        slope=_frozen(slope),
        slope_fit_range=_frozen(span),
        rows=tuple(rows),
        timings=_frozen(timings),
    )


def particle_study(cfg: Config, target_name: str, progress: Progress = silent) -> ParticleStudy:
    """Feature rows and steps to tolerance (``N`` in ``TABLE_STEPS``) with full particles.

    ``target_name``: ``"gm"`` (dimensions ``cfg.gm_particle_dims``) or ``"cw"``
    (``cfg.cw_particle_dims``); criterion ``error <= tol + 2 stderr`` per feature (GM: ``p``,
    ``sigma2``; CW: ``p``, ``m_abs`` and the within-mode ``spread`` within ``SPREAD_TOL``).
    """
    if target_name not in ("gm", "cw"):
        raise ValueError(f"target_name must be 'gm' or 'cw', got {target_name!r}")
    dims = cfg.gm_particle_dims if target_name == "gm" else cfg.cw_particle_dims
    # relative tolerances of the low-level features (CW: the spread sees constant VE, |M| does not)
    low = {"sigma2": S2_TOL} if target_name == "gm" else {"m_abs": S2_TOL, "spread": SPREAD_TOL}
    rows: list[FeatureRow] = []
    found_steps: dict[str, dict[str, int | None]] = {}
    timings: dict[str, SweepTiming] = {}
    for d in dims:
        target = builds.target(cfg, target_name, d)
        grid = builds.paper_grid(PAPER, [d], cfg)
        num = cfg.particles_at(d)
        keys = jax.random.split(jax.random.PRNGKey(cfg.seed), num)
        for solver_name in cfg.particle_solvers:
            bar = progress(len(TABLE_STEPS), f"particles {target_name} d={d:.0e} {solver_name}")
            result = builds.sweep(
                builds.ParticleBuild(target),
                grid.params,
                keys,
                steps=TABLE_STEPS,
                solver=builds.solver(solver_name),
                dtype=jnp.float32,
                chunk_size=max(1, min(num, 2_000_000 // d)),
                progress=bar.update,
            )
            bar.close()
            timings[f"particles_{target_name}_{d}_{solver_name}"] = SweepTiming(
                first_call_s=result.run_seconds[0],
                total_s=float(sum(result.run_seconds)),
                runs=len(TABLE_STEPS) * len(grid.rows),
                particles=num,
            )
            for g, (name, _) in enumerate(grid.rows):
                found = None
                for i, n in enumerate(TABLE_STEPS):
                    f = estimate(target, result.point(i, g), allow_empty=True)
                    rows.append(_feature_row(name, solver_name, d, n, f, result, i, g))
                    ok = f["p_error"] <= P_TOL + 2 * f["p_stderr"] and all(
                        f[f"{k}_error"] <= tol + 2 * f[f"{k}_stderr"] / f[f"{k}_ref"]
                        for k, tol in low.items()
                    )
                    if ok and found is None and result.nonfinite[i, g] == 0:
                        found = n
                found_steps.setdefault(f"{name}/{solver_name}", {})[dim_key(d)] = found
    return ParticleStudy(
        target=target_name,
        rows=tuple(rows),
        steps_to_tolerance=_frozen(found_steps),
        timings=_frozen(timings),
    )


def adaptive_study(cfg: Config, progress: Progress = silent) -> AdaptiveStudy:
    """Mean NFE of adaptive solves (PID at ``cfg.rtol``, ``cfg.atol``) per schedule and ``d``."""
    z = builds.quantiles(cfg.quantiles)
    kinds = [("paper", builds.reduced_paper_build, builds.paper_grid(PAPER, cfg.reduction_dims, cfg))]
    if cfg.adaptive_standard:
        kinds.append(
            ("standard", builds.reduced_standard_build, builds.standard_grid(cfg.reduction_dims, cfg))
        )
    nfe: dict[str, dict[str, float]] = {}
    rows: list[AdaptiveRow] = []
    timings: dict[str, SweepTiming] = {}
    for solver_name in cfg.adaptive_solvers:
        for kind, build, grid in kinds:
            bar = progress(1, f"adaptive {kind} {solver_name}")
            result = builds.sweep(
                build,
                grid.params,
                z,
                steps=None,
                solver=builds.solver(solver_name),
                rtol=cfg.rtol,
                atol=cfg.atol,
                max_steps=200_000,
                progress=bar.update,
            )
            bar.close()
            timings[f"adaptive_{kind}_{solver_name}"] = SweepTiming(
                first_call_s=result.run_seconds[0], runs=len(grid.rows)
            )
            for g, (name, d) in enumerate(grid.rows):
                f = _gm_features(result.point(0, g), d, cfg)
                mean = float(result.nfe[0, g].mean())
                nfe.setdefault(f"{name}/{solver_name}", {})[dim_key(d)] = mean
                rows.append(
                    AdaptiveRow(
                        schedule=name,
                        solver=solver_name,
                        d=float(d),
                        nfe_mean=mean,
                        nfe_max=int(result.nfe[0, g].max()),
                        p_error=f["p_error"],
                        sigma2_error=f["sigma2_error"],
                        within_tolerance=bool(
                            f["p_error"] <= P_TOL
                            and f["sigma2_error"] <= S2_TOL
                            and result.nonfinite[0, g] == 0
                        ),
                        nonfinite=int(result.nonfinite[0, g]),
                    )
                )
    slope, span = _slopes(nfe)
    return AdaptiveStudy(
        rtol=cfg.rtol,
        atol=cfg.atol,
        nfe=_frozen(nfe),
        rows=tuple(rows),
        slope=_frozen(slope),
        slope_fit_range=_frozen(span),
        timings=_frozen(timings),
    )


_LOOP_PICKS = (
    ("vp-dilated", 1e6, 64, "euler"),
    ("ve", 1e4, 256, "heun"),
    ("vp", 1e8, 1024, "euler"),
    ("ve-dilated", 1e5, 128, "heun"),
    ("vp", 1e3, 32, "heun"),
)


def loop_comparison(cfg: Config, paper: ReductionStudy, progress: Progress = silent) -> LoopComparison:
    """``cfg.loop_runs`` single :func:`nsjax.sample` runs against ``paper``'s compiled sweeps."""
    picks = _LOOP_PICKS[: cfg.loop_runs]
    runs = []
    bar = progress(len(picks), "loop of single sample() runs")
    for name, d, n, solver_name in picks:
        interpolant, schedule = builds.named_schedule(name, int(d), cfg.kappa)
        start = time.perf_counter()
        sample(
            builds.reduced_gm(cfg, int(d)),
            interpolant,
            schedule,
            jax.random.PRNGKey(0),
            cfg.quantiles,
            steps=n,
            solver=builds.solver(solver_name),
            dtype=jnp.float64,
        )
        runs.append(LoopRun(name, d, n, solver_name, time.perf_counter() - start))
        bar.update(1)
    bar.close()
    mine = [t for k, t in paper.timings.items() if k.startswith("reduction_paper")]
    return LoopComparison(
        runs=tuple(runs),
        sweep_runs=sum(t.runs for t in mine),
        sweep_seconds=sum(t.total_s for t in mine),
        particles_per_run=cfg.quantiles,
    )


_PAPER_CLAIM = {"vp": (False, True), "ve": (True, False), "vp-dilated": (True, True)}
"""(gets p, gets sigma^2 / the CW spread) per schedule, as the paper claims."""


def cw_dichotomy(cfg: Config, cw: ParticleStudy | None) -> CWDichotomy | None:
    """CW features of each paper schedule at the largest particle ``d`` (``None``: no rows).

    The dichotomy is a claim at a step count that does not grow with ``d``: ``N`` is the largest
    of ``TABLE_STEPS`` below ``sqrt(d)/kappa`` (constant VP cannot resolve its speciation window
    ``tau <~ kappa/sqrt(d)``; the smallest if none), solver Heun if it ran. Claimed: constant VP
    gets the spread but not ``p``, constant VE ``p`` but not the spread, dilated VP both.
    """
    if cw is None or not cw.rows:
        return None
    d = max(r.d for r in cw.rows)
    solvers = {r.solver for r in cw.rows}
    solver_name = "heun" if "heun" in solvers else sorted(solvers)[0]
    below = [n for n in TABLE_STEPS if n < math.sqrt(d) / cfg.kappa]
    n = max(below) if below else min(TABLE_STEPS)
    table, particles = {}, 0
    for r in cw.rows:
        if r.d == d and r.N == n and r.solver == solver_name and r.schedule in PAPER:
            f = r.features
            particles = int(f["particles"])
            p_se = math.sqrt(f["p_ref"] * (1 - f["p_ref"]) / max(particles, 1))
            table[r.schedule] = CWDichotomyRow(
                p_hat=f["p_hat"],
                p_error=f["p_error"],
                spread_ratio=f["spread_hat"] / f["spread_ref"],
                p_ok=bool(f["p_error"] <= P_TOL + 2 * p_se),
                spread_ok=bool(f["spread_error"] <= SPREAD_TOL + 2 * f["spread_stderr"] / f["spread_ref"]),
            )
    agrees = {k: (table[k].p_ok, table[k].spread_ok) == v for k, v in _PAPER_CLAIM.items() if k in table}
    return CWDichotomy(
        d=d, N=n, solver=solver_name, particles=particles, rows=_frozen(table), agrees=_frozen(agrees)
    )


def dichotomy(cfg: Config, paper: ReductionStudy, cw: ParticleStudy | None = None) -> Dichotomy:
    """Features of each paper schedule at ``d = 1e6`` (or the largest ``d``), ``N = 200``; with
    ``cw`` (the CW particle study) its half too (:func:`cw_dichotomy`)."""
    d = 1e6 if 1e6 in cfg.reduction_dims else max(cfg.reduction_dims)
    solver_name = "heun" if "heun" in cfg.solvers else cfg.solvers[0]
    n = max(TABLE_STEPS)
    table = {}
    for r in paper.rows:
        if r.d == d and r.N == n and r.solver == solver_name and r.schedule in PAPER:
            f = r.features
            table[r.schedule] = DichotomyRow(
                p_hat=f["p_hat"],
                p_error=f["p_error"],
                sigma2_ratio=f["sigma2_hat"] / f["sigma2_ref"],
                p_ok=f["p_error"] <= P_TOL,
                sigma2_ok=f["sigma2_error"] <= S2_TOL,
            )
    agrees = {k: (table[k].p_ok, table[k].sigma2_ok) == v for k, v in _PAPER_CLAIM.items() if k in table}
    return Dichotomy(
        d=d,
        N=n,
        solver=solver_name,
        rows=_frozen(table),
        agrees=_frozen(agrees),
        cw=cw_dichotomy(cfg, cw),
    )


# -- schedule x solver (issue 13) ---
SOLVER_LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
"""Step counts of :func:`solver_study` (ratio <= 1.5 between neighbours, so that "flat within
1.5x" is resolved)."""
DICHOTOMY_STEPS = 64
"""``N`` at which :func:`solver_study` reads the VP/VE dichotomy per solver."""


@dataclass(frozen=True)
class SolverStudy:
    """NFE to tolerance per ``"<schedule>/<solver>"`` and ``d`` (exact reduction, float64).

    ``flat[key]``: tolerance met at every ``d`` with ``max NFE <= 1.5 min NFE`` (dimension-free);
    ``dichotomy[solver]``: at the largest ``d`` and ``N = DICHOTOMY_STEPS``, ``{"vp": (p_ok,
    sigma2_ok), "ve": (...)}``; ``survives[solver]``: VP gets only ``sigma^2`` and VE only ``p``.
    """

    dims: tuple[float, ...]
    nfe_to_tolerance: Mapping[str, Mapping[str, float | None]]
    steps_to_tolerance: Mapping[str, Mapping[str, int | None]]
    flat: Mapping[str, bool]
    dichotomy: Mapping[str, Mapping[str, tuple[bool, bool]]]
    survives: Mapping[str, bool | None]
    timings: Mapping[str, SweepTiming]

    def to_json(self) -> dict:
        return {
            "dims": list(self.dims),
            "nfe_to_tolerance": {k: dict(v) for k, v in self.nfe_to_tolerance.items()},
            "steps_to_tolerance": {k: dict(v) for k, v in self.steps_to_tolerance.items()},
            "flat": dict(self.flat),
            "dichotomy": {s: {k: list(v) for k, v in t.items()} for s, t in self.dichotomy.items()},
            "survives": dict(self.survives),
            "timings": {k: t.to_json() for k, t in self.timings.items()},
        }


def _solver_grids(cfg: Config):
    kinds = [("paper", builds.reduced_paper_build, builds.paper_grid(PAPER, cfg.solver_study_dims, cfg))]
    if cfg.solver_study_standard:
        kinds.append(
            ("standard", builds.reduced_standard_build, builds.standard_grid(cfg.solver_study_dims, cfg))
        )
    return kinds


def solver_study(cfg: Config, progress: Progress = silent) -> SolverStudy:
    """NFE to tolerance for every solver of ``cfg.solver_study_solvers`` under the paper's
    schedules (and the standard ones when ``cfg.solver_study_standard``) at
    ``cfg.solver_study_dims``, exact GM reduction; one compiled sweep per solver and schedule
    family, ``N`` on :data:`SOLVER_LADDER` up to ``cfg.solver_study_max_steps`` (a sweep stops
    once every row met the tolerance and ``N >= DICHOTOMY_STEPS``)."""
    z = builds.quantiles(cfg.solver_study_quantiles)
    ladder = [n for n in SOLVER_LADDER if n <= cfg.solver_study_max_steps]
    if DICHOTOMY_STEPS not in ladder:
        ladder = sorted(set(ladder) | {DICHOTOMY_STEPS})
    dmax = max(cfg.solver_study_dims)
    nfe_found: dict[str, dict[str, float | None]] = {}
    steps_found: dict[str, dict[str, int | None]] = {}
    dich: dict[str, dict[str, tuple[bool, bool]]] = {}
    timings: dict[str, SweepTiming] = {}
    for solver_name in cfg.solver_study_solvers:
        for kind, build, grid in _solver_grids(cfg):
            bar = progress(len(ladder), f"solver study {kind} {solver_name}")
            passed = np.zeros((len(ladder), len(grid.rows)), bool)
            nfe = np.zeros((len(ladder), len(grid.rows)))

            def stop(i, result, passed=passed, nfe=nfe, solver_name=solver_name):
                for g, (name, d) in enumerate(grid.rows):
                    f = _gm_features(result.point(i, g), d, cfg)
                    p_ok, s_ok = f["p_error"] <= P_TOL, f["sigma2_error"] <= S2_TOL
                    passed[i, g] = p_ok and s_ok and result.nonfinite[i, g] == 0
                    nfe[i, g] = float(result.nfe[i, g].mean())
                    if ladder[i] == DICHOTOMY_STEPS and d == dmax and name in ("vp", "ve"):
                        dich.setdefault(solver_name, {})[name] = (bool(p_ok), bool(s_ok))
                return bool(ladder[i] >= DICHOTOMY_STEPS and passed[: i + 1].any(0).all())

            result = builds.ladder_sweep(build, grid.params, z, ladder, solver_name, bar, stop)
            timings[f"solvers_{kind}_{solver_name}"] = SweepTiming(
                first_call_s=result.run_seconds[0],
                total_s=float(sum(result.run_seconds)),
                runs=len(result.steps) * len(grid.rows),
            )
            found = steps_to_tolerance(ladder, passed)
            for g, (name, d) in enumerate(grid.rows):
                key = f"{name}/{solver_name}"
                n = found[g]
                steps_found.setdefault(key, {})[dim_key(d)] = n
                nfe_found.setdefault(key, {})[dim_key(d)] = (
                    float(nfe[ladder.index(n), g]) if n is not None else None
                )
    flat = {}
    for key, table in nfe_found.items():
        values = list(table.values())
        flat[key] = bool(values and all(v is not None for v in values) and max(values) <= 1.5 * min(values))
    survives = {
        s: (t.get("vp") == (False, True) and t.get("ve") == (True, False)) if len(t) == 2 else None
        for s, t in dich.items()
    }
    return SolverStudy(
        dims=tuple(cfg.solver_study_dims),
        nfe_to_tolerance=_frozen(nfe_found),
        steps_to_tolerance=_frozen(steps_found),
        flat=_frozen(flat),
        dichotomy=_frozen(dich),
        survives=_frozen(survives),
        timings=_frozen(timings),
    )
