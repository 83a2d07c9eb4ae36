"""Tolerance curves, the dilated-VE floor and Heun growth laws, and the trig interpolant
(docs/theory.md §6, §7; issue 12 items 3 and 7).

Every number here is an infinite-ensemble feature of the exact GM reduction
(:mod:`nsjax.reduction`), computed without sampling error by :func:`exact_features`:

- the flow map ``z -> u_1(z)`` of the initial standard-normal quantile is evaluated on a grid of
  ``z`` in ``[-8, 8]``; each sign change is refined by repeated ``SUBDIVIDE``-fold subdivision to
  a bracket of width ``16 / num_grid / SUBDIVIDE^rounds`` (``~1e-12``; no Newton step: at large
  ``d`` the map is a step function of ``z`` and a tangent there is meaningless), so that
  ``p_hat = sum of the normal masses of the intervals on which u_1 > 0``, exact to ``~1e-12``;
- ``sigma2_hat = (E[(u_1 - sign(u_1) R)^2] + g_1^2 c0^2 (d - 1)) / d``, the expectation by
  24-point Gauss–Legendre quadrature in probability on each interval between crossings.

These are the limits of :meth:`nsjax.reduction.ReducedGM.statistics` averaged over particles
(``tests/test_tolerance.py`` checks them against stratified particles). The criterion at tolerance
``eps`` is ``|p_hat - p| <= eps`` and ``|sigma2_hat / sigma^2 - 1| <= S2_RATIO eps`` (the study
default ``0.01 / 0.02`` is ``eps = 0.01``); ``N(eps)`` is the smallest ``N`` of the ladder from
which on every larger ladder ``N`` meets it (so ``N(eps)`` never decreases as ``eps`` shrinks and a
lucky zero crossing of an error does not count).

**Dilated VE + Euler floor** (derived here). Write ``w = sqrt(d)(1 - tau)`` (the noise per
coordinate) and ``S = g_1 c0`` (the per-coordinate standard deviation across ``r``). As
``d -> inf`` the phase-1 steps in ``w`` have size ``~2 sqrt(d) / N -> inf``; on ``w >> sigma`` the
exact ``S = w`` is reproduced by Euler, and the last phase-1 step, from ``w = kappa + dw`` to
``kappa``, gives ``S = (kappa w + sigma^2) S / (sigma^2 + w^2) -> kappa`` instead of
``sqrt(kappa^2 + sigma^2)``. Phase 2 is ``dS/dw = S w / (sigma^2 + w^2)`` from ``w = kappa`` to
``0`` in ``N/2`` Euler steps of ``Delta = 2 kappa / N``; summing the local errors,

    sigma2_hat / sigma^2 -> floor(N) = a - b / N + O(N^-2),
    a = kappa^2 / (kappa^2 + sigma^2),
    b = a kappa (kappa / (kappa^2 + sigma^2) + arctan(kappa / sigma) / sigma).

(``a = 0.973``, ``b = 9.15`` at ``kappa = 3``, ``sigma^2 = 1/4``.)

**Dilated VE + Heun growth** (derived here). Heun's corrector on that last phase-1 step averages
the slope ``1`` at ``w = kappa + dw`` with ``a`` at ``kappa``: ``S = kappa + x``,
``x = (dw / 2)(1 - a) = sqrt(d) sigma^2 / (N (kappa^2 + sigma^2))``; phase 2 then multiplies
``S^2`` by ``sigma^2 / (kappa^2 + sigma^2)``:

    sigma2_hat ~ (kappa + x)^2 sigma^2 / (kappa^2 + sigma^2) ~ C d / N^2,
    C = sigma^6 / (kappa^2 + sigma^2)^3    (x >> kappa).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from ..objectives import gm_reference
from ..reduction import ReducedState
from ..solve import PieceSteps, solve, step_grid
from ..targets import GaussianMixture
from . import builds
from .config import PAPER, Config
from .studies import Progress, _frozen, silent

__all__ = [
    "S2_RATIO",
    "SUBDIVIDE",
    "floor_prediction",
    "heun_prediction",
    "exact_features",
    "EPS",
    "TRIG_EPS",
    "step_ladder",
    "steps_to_eps",
    "FloorFit",
    "HeunGrowth",
    "ToleranceStudy",
    "tolerance_study",
    "tolerance_figures",
    "report_lines",
]

S2_RATIO = 2.0
"""``sigma2`` tolerance / ``p`` tolerance (the study default ``0.01 / 0.02``)."""
SUBDIVIDE = 64
"""Subdivision factor of each refinement round of a crossing's bracket."""

_GL_NODES, _GL_WEIGHTS = (np.asarray(a) for a in np.polynomial.legendre.leggauss(24))


def floor_prediction(kappa: float, sigma2: float) -> tuple[float, float]:
    """``(a, b)`` of the dilated-VE Euler floor ``sigma2_hat / sigma^2 -> a - b / N`` (d -> inf)."""
    s = math.sqrt(sigma2)
    a = kappa**2 / (kappa**2 + sigma2)
    b = a * kappa * (kappa / (kappa**2 + sigma2) + math.atan(kappa / s) / s)
    return a, b


def heun_prediction(kappa: float, sigma2: float, d: Any, n: Any) -> Any:
    """Dilated VE + Heun, large ``d``: ``sigma2_hat / sigma^2 ~ (kappa + x)^2 / (kappa^2 +
    sigma^2)``, ``x = sqrt(d) sigma^2 / (N (kappa^2 + sigma^2))``."""
    x = np.sqrt(d) * sigma2 / (np.asarray(n, float) * (kappa**2 + sigma2))
    return (kappa + x) ** 2 / (kappa**2 + sigma2)


# -- the exact features -------------------------------------------------------------------------
class _Static(eqx.Module):
    build: Any = eqx.field(static=True)
    solver: Any = eqx.field(static=True)
    rounds: int = eqx.field(static=True)
    max_crossings: int = eqx.field(static=True)


@eqx.filter_jit
def _features_program(params, counts, static: _Static):
    """One solve call site (one compilation of the flow), in a loop of ``rounds + 2`` batches of
    ``B = max_crossings (SUBDIVIDE + 1)`` particles: a grid of ``z``, ``rounds`` subdivisions of
    each crossing's bracket, then the quadrature nodes."""
    mc, k, dtype = static.max_crossings, SUBDIVIDE, jnp.float64
    B = mc * (k + 1)
    nodes, weights = jnp.asarray(_GL_NODES, dtype), jnp.asarray(_GL_WEIGHTS, dtype)
    num_nodes = (mc + 1) * nodes.shape[0]
    take = lambda a, i: jnp.take_along_axis(a, i[:, None], axis=1)[:, 0]  # noqa: E731

    def point(pt):
        system, interpolant, schedule = static.build(pt)
        start = schedule.evaluate(jnp.zeros((), dtype), 0)
        c0 = interpolant.noise_scale * interpolant.alpha(start.tau, start.tau_c)

        def finals(z):
            y0 = ReducedState(c0 * z, 1 + 0 * z, 0 * z)
            run = lambda y: solve(  # noqa: E731
                system, interpolant, schedule, y, steps=PieceSteps(counts), solver=static.solver,
                dtype=dtype,
            ).state
            return jax.vmap(run)(y0)

        def intervals(lo, hi, used):
            z_star = jnp.where(used, (lo + hi) / 2, jnp.inf)
            inf = jnp.full((1,), jnp.inf, dtype)
            edges = ndtr(jnp.concatenate([-inf, z_star, inf]))
            mass = edges[1:] - edges[:-1]
            probs = (edges[:-1, None] + mass[:, None] * (1 + nodes) / 2).reshape(-1)
            return mass, ndtri(jnp.clip(probs, 1e-300, 1 - 1e-16))

        def body(i, carry):
            z, lo_old, hi_old, first_positive, count, _, _ = carry
            state = finals(z)
            u = state.u
            # i == 0: sign changes on the grid
            positive = u > 0
            changes = positive[1:] != positive[:-1]
            (cells,) = jnp.nonzero(changes, size=mc, fill_value=B - 2)
            # i >= 1: the sub-bracket of each crossing's subdivision
            zs, us = z.reshape(mc, k + 1), u.reshape(mc, k + 1)
            j = jnp.argmax((us[:, 1:] > 0) != (us[:, :-1] > 0), axis=1)
            refining = i <= static.rounds  # the last batch holds the quadrature nodes
            lo = jnp.where(i == 0, z[cells], jnp.where(refining, take(zs, j), lo_old))
            hi = jnp.where(i == 0, z[cells + 1], jnp.where(refining, take(zs, j + 1), hi_old))
            count = jnp.where(i == 0, jnp.sum(changes).astype(jnp.int32), count)
            first_positive = jnp.where(i == 0, positive[0], first_positive)
            used = jnp.arange(mc) < count
            _, z_nodes = intervals(lo, hi, used)
            subdivided = jax.vmap(lambda a, b: jnp.linspace(a, b, k + 1))(lo, hi).reshape(-1)
            padded = jnp.zeros((B,), dtype).at[:num_nodes].set(z_nodes)
            z_next = jnp.where(i == static.rounds, padded, subdivided)
            return z_next, lo, hi, first_positive, count, u, state.g[0]

        zero = jnp.zeros((mc,), dtype)
        init = (
            jnp.linspace(-8.0, 8.0, B, dtype=dtype), zero, zero, jnp.zeros((), bool),
            jnp.zeros((), jnp.int32), jnp.zeros((B,), dtype), jnp.zeros((), dtype),
        )
        _, lo, hi, first_positive, count, u, g1 = jax.lax.fori_loop(0, static.rounds + 2, body, init)
        used = jnp.arange(mc) < count
        mass, _ = intervals(lo, hi, used)
        sign = jnp.where(first_positive, 1.0, -1.0) * (-1.0) ** jnp.arange(mc + 1)
        p_hat = jnp.sum(jnp.where(sign > 0, mass, 0.0))
        masses = (mass[:, None] * weights / 2).reshape(-1)
        R, d = system.r_norm, system.dimension
        along = jnp.sum(masses * (u[:num_nodes] - jnp.repeat(sign, nodes.shape[0]) * R) ** 2)
        sigma2_hat = (along + g1**2 * c0**2 * (d - 1)) / d
        valid = (count <= mc) & jnp.isfinite(p_hat) & jnp.isfinite(sigma2_hat)
        return {"p_hat": p_hat, "sigma2_hat": sigma2_hat, "crossings": count, "valid": valid}

    return jax.vmap(point)(params)


def exact_features(
    build: Any,
    params: Mapping[str, Any],
    steps: Sequence[int],
    solver: str,
    *,
    rounds: int = 6,
    max_crossings: int = 8,
) -> dict[str, np.ndarray]:
    """Exact ``p_hat`` and ``sigma2_hat`` (infinite ensemble) for every grid point and ``N``.

    ``build``: a reduced-GM build of :mod:`nsjax.experiments.builds` (``point -> (ReducedGM,
    interpolant, schedule)``); ``params``: ``{name: values of shape (G,)}``; one compiled program
    per ``(build, solver, G)``, ``N`` traced. Returns ``{"p_hat", "sigma2_hat", "crossings",
    "valid", "seconds"}``, arrays of shape ``(len(steps), G)`` (``seconds``: per ``N``, the first
    including the compilation).
    """
    traced = {k: jnp.asarray(np.asarray(v, np.float64)) for k, v in params.items()}
    _, _, probe = build({k: v[0] for k, v in traced.items()})
    static = _Static(build, builds.solver(solver), rounds, max_crossings)
    parts, seconds = [], []
    for n in steps:
        counts = jnp.asarray([len(g) - 1 for g in step_grid(probe, int(n))], jnp.int32)
        t0 = time.perf_counter()
        out = jax.tree.map(np.asarray, jax.block_until_ready(_features_program(traced, counts, static)))
        seconds.append(time.perf_counter() - t0)
        parts.append(out)
    result = {k: np.stack([p[k] for p in parts]) for k in parts[0]}
    result["seconds"] = np.asarray(seconds)
    return result


# -- the study ----------------------------------------------------------------------------------
EPS = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
"""Tolerances of the ``N(eps)`` curves (``p``; ``sigma2`` at ``S2_RATIO eps``)."""
TRIG_EPS = 0.01
"""Tolerance of the trig-versus-linear steps table (the study default ``0.01 / 0.02``)."""
FLOOR_MIN_STEPS = 64
"""Smallest ``N`` of the floor fit ``a - b / N + c / N^2``."""
HEUN_STEPS = (16, 128)
"""``N`` range of the Heun growth fit."""


def step_ladder(max_steps: int) -> tuple[int, ...]:
    """Even ``N`` about ``2^(k/2)`` from 4 to ``max_steps`` (every power of 2 included)."""
    out = {4}
    k = 4
    while 2 ** (k / 2) <= max_steps + 1e-9:
        out.add(int(2 * round(2 ** (k / 2) / 2)))
        k += 1
    return tuple(sorted(n for n in out if n <= max_steps))


def steps_to_eps(steps: Sequence[int], error: np.ndarray, eps: float) -> int | None:
    """Smallest ``steps[i]`` with ``error[j] <= eps`` for every ``j >= i`` (``None``: not reached
    up to ``steps[-1]``); ``error`` NaN counts as a miss."""
    err = np.where(np.isfinite(error), error, np.inf)
    tail = np.maximum.accumulate(err[::-1])[::-1]
    hits = np.nonzero(tail <= eps)[0]
    return int(steps[hits[0]]) if hits.size else None


def _key(d: float) -> str:
    return str(int(round(d)))


def _eps_key(eps: float) -> str:
    return f"{eps:g}"


@dataclass(frozen=True)
class FloorFit:
    """Dilated VE + Euler at ``d``: ``sigma2_hat / sigma^2`` against ``N`` and the fit
    ``a - b / N + c / N^2 + e N`` (``N >= FLOOR_MIN_STEPS``) beside the prediction ``(a, b, e)``."""

    kappa: float
    sigma2: float
    d: float
    steps: tuple[int, ...]
    ratio: tuple[float, ...]
    a_fit: float
    b_fit: float
    c_fit: float
    a_pred: float
    b_pred: float
    e_fit: float
    e_pred: float
    """The finite-``d`` term ``e N``: fitted and ``a sigma^2 / (kappa sqrt(d))``."""


@dataclass(frozen=True)
class HeunGrowth:
    """Dilated VE + Heun: ``sigma2_hat`` on a ``(d, N)`` grid, the least-squares law
    ``sigma2_hat = C d^alpha N^beta`` and the prediction (``C_pred`` with ``alpha = 1, beta = -2``;
    ``formula``: :func:`heun_prediction` times ``sigma^2``)."""

    kappa: float
    sigma2: float
    d: tuple[float, ...]
    steps: tuple[int, ...]
    sigma2_hat: tuple[float, ...]
    formula: tuple[float, ...]
    alpha: float
    beta: float
    C_fit: float
    C_pred: float
    max_formula_deviation: float
    """``max |sigma2_hat / formula - 1|`` over the grid."""


@dataclass(frozen=True)
class ToleranceStudy:
    """Tolerance curves, error against ``d`` at fixed ``N``, the floor and growth laws and the
    trig-versus-linear steps (exact GM reduction, float64); keys ``"<schedule>/<solver>"``."""

    p: float
    sigma2: float
    kappa: float
    eps: tuple[float, ...]
    s2_ratio: float
    steps: tuple[int, ...]
    dims: tuple[float, ...]
    vs_d_dims: tuple[float, ...]
    fixed_steps: int
    p_error: Mapping[str, Mapping[str, tuple[float, ...]]]
    """``p_hat - p_ref`` per key, ``d`` and ladder ``N`` (``steps``); trig rows keyed
    ``"<schedule>/<solver>/trig"``."""
    sigma2_error: Mapping[str, Mapping[str, tuple[float, ...]]]
    """``sigma2_hat / sigma2_ref - 1``, same layout."""
    steps_to_eps: Mapping[str, Mapping[str, Mapping[str, int | None]]]
    """``N(eps)`` per key, ``d`` of ``dims`` and ``eps`` (``"0.01"``)."""
    floor: tuple[FloorFit, ...]
    heun: HeunGrowth | None
    trig_steps: Mapping[str, Mapping[str, int | None]]
    """``N(TRIG_EPS)`` per ``"<schedule>/<solver>/<form>"`` and ``d`` of ``trig_dims``."""
    trig_dims: tuple[float, ...]
    seconds: Mapping[str, float]

    def to_json(self) -> dict:
        def plain(v):
            if isinstance(v, Mapping):
                return {str(k): plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, (float, np.floating)):
                return float(v) if math.isfinite(v) else None
            if isinstance(v, np.integer):
                return int(v)
            return v

        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["floor"] = [dict(vars(f)) for f in self.floor]
        out["heun"] = dict(vars(self.heun)) if self.heun is not None else None
        return plain(out)


def _rows(names, dims, kappa, sigma2):
    return [(n, float(d), float(kappa), float(sigma2)) for n in names for d in dims if kappa < math.sqrt(d)]


def _params(rows, cfg):
    return {
        "schedule": [builds.PAPER_SCHEDULES.index(n) for n, *_ in rows],
        "d": [d for _, d, _, _ in rows],
        "kappa": [k for *_, k, _ in rows],
        "p": [cfg.p] * len(rows),
        "sigma2": [s for *_, s in rows],
    }


def _references(rows, p):
    """``(p_ref, sigma2_ref)`` per row (exact finite-``d`` values)."""
    refs = [gm_reference(GaussianMixture(dim=2, p=p, sigma2=s), d) for _, d, _, s in rows]
    return np.asarray([float(a) for a, _ in refs]), np.asarray([float(b) for _, b in refs])


def _floor_fit(steps, ratio, kappa, sigma2, d) -> FloorFit:
    """Least squares of ``a - b/N + c/N^2 + e N`` over ``N >= FLOOR_MIN_STEPS``: ``e N`` is the
    finite-``d`` term (the last phase-1 step ends at ``S = kappa + sigma^2 N / (2 sqrt(d))``, so
    ``e = a sigma^2 / (kappa sqrt(d))``), which the large-``N`` points of a long ladder feel."""
    steps = np.asarray(steps, float)
    keep = (steps >= FLOOR_MIN_STEPS) & np.isfinite(ratio)
    x, n = 1 / steps[keep], steps[keep]
    design = np.stack([np.ones_like(x), -x, x**2, n], 1)
    coef = np.linalg.lstsq(design, ratio[keep], rcond=None)[0]
    a_pred, b_pred = floor_prediction(kappa, sigma2)
    return FloorFit(
        kappa, sigma2, d, tuple(int(v) for v in steps), tuple(float(r) for r in ratio),
        float(coef[0]), float(coef[1]), float(coef[2]), a_pred, b_pred,
        float(coef[3]), a_pred * sigma2 / (kappa * math.sqrt(d)),
    )


def _heun_fit(kappa, sigma2, d, steps, sigma2_hat) -> HeunGrowth:
    """Exponents and ``C`` (exponents fixed at 1, -2: geometric mean of ``sigma2_hat N^2 / d``)
    over the points with ``x >= 10 kappa`` (the asymptotic regime of the law)."""
    d, n, s = (np.asarray(v, float) for v in (d, steps, sigma2_hat))
    x = np.sqrt(d) * sigma2 / (n * (kappa**2 + sigma2))
    k = x >= 10 * kappa
    design = np.stack([np.ones_like(d), np.log(d), np.log(n)], 1)[k]
    coef = np.linalg.lstsq(design, np.log(s[k]), rcond=None)[0]
    formula = heun_prediction(kappa, sigma2, d, n) * sigma2
    return HeunGrowth(
        kappa, sigma2, tuple(d.tolist()), tuple(int(v) for v in n), tuple(s.tolist()),
        tuple(formula.tolist()), float(coef[1]), float(coef[2]),
        float(np.exp(np.mean(np.log(s[k] * n[k] ** 2 / d[k])))),
        sigma2**3 / (kappa**2 + sigma2) ** 3, float(np.max(np.abs(s / formula - 1))),
    )


def tolerance_study(cfg: Config, progress: Progress = silent) -> ToleranceStudy:
    """The tolerance study of ``cfg`` (sizes: ``tolerance_*``, ``floor_*``, ``heun_growth_dims``,
    ``trig_*``): one compiled program per solver and interpolant, every row on one ladder of ``N``.
    """
    ladder = step_ladder(cfg.tolerance_max_steps)
    fixed = cfg.tolerance_fixed_steps
    if fixed not in ladder:
        ladder = tuple(sorted(set(ladder) | {fixed}))
    main_dims = sorted(set(cfg.tolerance_dims) | set(cfg.tolerance_vs_d_dims)
                       | {d for d in cfg.trig_dims if "heun" in cfg.trig_solvers or "euler" in cfg.trig_solvers})
    main = _rows(PAPER, main_dims, cfg.kappa, cfg.sigma2)
    floor_rows = [("ve-dilated", cfg.floor_dim, k, s) for k in cfg.floor_kappas for s in cfg.floor_sigma2s]
    heun_rows = [("ve-dilated", d, cfg.kappa, cfg.sigma2) for d in cfg.heun_growth_dims]
    p_err, s_err, n_eps, seconds = {}, {}, {}, {}
    floor: list[FloorFit] = []
    heun = None
    trig_steps: dict[str, dict[str, int | None]] = {}

    def run(build, rows, solver_name, label):
        bar = progress(1, f"tolerance {label}")
        out = exact_features(build, _params(rows, cfg), ladder, solver_name)
        bar.update(1)
        bar.close()
        seconds[label] = float(out["seconds"].sum())
        p_ref, s_ref = _references(rows, cfg.p)
        ok = out["valid"]
        pe = np.where(ok, out["p_hat"] - p_ref, np.nan)
        se = np.where(ok, out["sigma2_hat"] / s_ref - 1, np.nan)
        return out, pe, se

    for solver_name in cfg.tolerance_solvers:
        rows = main + (floor_rows if solver_name == "euler" else [])
        rows += heun_rows if solver_name == "heun" else []
        out, pe, se = run(builds.reduced_paper_build, rows, solver_name, f"linear_{solver_name}")
        for g, (name, d, _, _) in enumerate(rows[: len(main)]):
            key = f"{name}/{solver_name}"
            p_err.setdefault(key, {})[_key(d)] = tuple(pe[:, g].tolist())
            s_err.setdefault(key, {})[_key(d)] = tuple(se[:, g].tolist())
            err = np.maximum(np.abs(pe[:, g]), np.abs(se[:, g]) / S2_RATIO)
            if d in cfg.tolerance_dims:
                n_eps.setdefault(key, {})[_key(d)] = {_eps_key(e): steps_to_eps(ladder, err, e) for e in EPS}
            if d in cfg.trig_dims and solver_name in cfg.trig_solvers:
                trig_steps.setdefault(f"{key}/linear", {})[_key(d)] = steps_to_eps(ladder, err, TRIG_EPS)
        offset = len(main)
        if solver_name == "euler":
            for g, (_, d, k, s) in enumerate(floor_rows, start=offset):
                ratio = out["sigma2_hat"][:, g] / s
                floor.append(_floor_fit(ladder, np.where(out["valid"][:, g], ratio, np.nan), k, s, d))
        if solver_name == "heun" and heun_rows:
            pts = [(d, n, out["sigma2_hat"][i, g])
                   for g, (_, d, _, _) in enumerate(heun_rows, start=offset)
                   for i, n in enumerate(ladder) if HEUN_STEPS[0] <= n <= HEUN_STEPS[1] and n & (n - 1) == 0]
            heun = _heun_fit(cfg.kappa, cfg.sigma2, *zip(*pts))
    for solver_name in cfg.trig_solvers:
        rows = _rows(PAPER, cfg.trig_dims, cfg.kappa, cfg.sigma2)
        _, pe, se = run(builds.reduced_paper_trig_build, rows, solver_name, f"trig_{solver_name}")
        for g, (name, d, _, _) in enumerate(rows):
            err = np.maximum(np.abs(pe[:, g]), np.abs(se[:, g]) / S2_RATIO)
            trig_steps.setdefault(f"{name}/{solver_name}/trig", {})[_key(d)] = steps_to_eps(ladder, err, TRIG_EPS)
            p_err.setdefault(f"{name}/{solver_name}/trig", {})[_key(d)] = tuple(pe[:, g].tolist())
            s_err.setdefault(f"{name}/{solver_name}/trig", {})[_key(d)] = tuple(se[:, g].tolist())
    return ToleranceStudy(
        p=cfg.p, sigma2=cfg.sigma2, kappa=cfg.kappa, eps=EPS, s2_ratio=S2_RATIO, steps=ladder,
        dims=tuple(cfg.tolerance_dims), vs_d_dims=tuple(cfg.tolerance_vs_d_dims), fixed_steps=fixed,
        p_error=_frozen(p_err), sigma2_error=_frozen(s_err), steps_to_eps=_frozen(n_eps),
        floor=tuple(floor), heun=heun, trig_steps=_frozen(trig_steps),
        trig_dims=tuple(cfg.trig_dims), seconds=_frozen(seconds),
    )


# -- figures and report -------------------------------------------------------------------------
_COLORS = {"vp": "tab:blue", "ve": "tab:orange", "vp-dilated": "tab:green", "ve-dilated": "tab:red"}
_DIM_STYLES = ("-", "--", ":", "-.")


def _linear_solvers(study: ToleranceStudy) -> list[str]:
    order = ["euler", "heun", "dpmpp-2m"]
    found = {k.split("/")[1] for k in study.p_error if k.count("/") == 1}
    return sorted(found, key=lambda s: (order.index(s) if s in order else len(order), s))


def tolerance_figures(study: ToleranceStudy, folder: str) -> tuple[str, ...]:
    """Write the study's PNGs to ``folder``: ``tolerance_curves.png`` (``N(eps)`` per schedule x
    solver), ``tolerance_vs_d.png`` (errors at fixed ``N`` against ``d``, with the ``d -> inf``
    limits), ``tolerance_floor.png`` (the floor law fitted and predicted) and
    ``tolerance_heun.png`` (Heun growth with the ``C d / N^2`` line); returns the paths."""
    import os

    from .plotting import plt

    os.makedirs(folder, exist_ok=True)
    paths = []
    solvers = _linear_solvers(study)

    # N(eps)
    fig, axes = plt.subplots(1, len(solvers), figsize=(5.2 * len(solvers) + 2.2, 4.4), squeeze=False)
    eps = np.asarray(study.eps)
    for ax, solver in zip(axes[0], solvers):
        for name in PAPER:
            table = study.steps_to_eps.get(f"{name}/{solver}", {})
            for j, d in enumerate(study.dims):
                ns = table.get(_key(d))
                if ns is None:
                    continue
                y = np.asarray([ns[_eps_key(e)] if ns[_eps_key(e)] is not None else np.nan for e in eps], float)
                ax.plot(eps, y, _DIM_STYLES[j % 4], marker="o", ms=3, color=_COLORS[name],
                        label=f"{name}, d = {d:.0e}")
                miss = ~np.isfinite(y)
                if miss.any() and (~miss).any():
                    ax.plot(eps[miss][0], max(study.steps), "x", color=_COLORS[name], ms=7)
        ax.axhline(max(study.steps), color="k", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel=r"tolerance $\varepsilon$ (p; $\sigma^2$ at "
               + f"{study.s2_ratio:g}" + r"$\varepsilon$)", ylabel=r"steps $N(\varepsilon)$", title=solver)
        ax.invert_xaxis()
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       title=f"× / dotted: not reached\nup to N = {max(study.steps)}", title_fontsize=7)
    path = os.path.join(folder, "tolerance_curves.png")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    paths.append(path)

    # error at fixed N against d
    i = study.steps.index(study.fixed_steps)
    dims = np.asarray(study.vs_d_dims)
    fig, axes = plt.subplots(2, len(solvers), figsize=(5.2 * len(solvers) + 2.4, 7.2), squeeze=False)
    for col, solver in enumerate(solvers):
        for row, (table, label) in enumerate(((study.p_error, r"$|\hat p - p|$"),
                                              (study.sigma2_error, r"$|\hat\sigma^2/\sigma^2 - 1|$"))):
            ax = axes[row, col]
            for name in PAPER:
                per_d = table.get(f"{name}/{solver}", {})
                y = np.asarray([abs(per_d[_key(d)][i]) if _key(d) in per_d else np.nan for d in dims])
                ax.plot(dims, np.maximum(y, 1e-12), marker="o", ms=3, color=_COLORS[name], label=name)
            if row == 0:
                ax.axhline(1 - study.p, color=_COLORS["vp"], ls="--", lw=1, label=r"constant VP limit $1 - p$")
            else:
                ax.axhline(1.0, color=_COLORS["ve"], ls="--", lw=1, label=r"constant VE limit ($\hat\sigma^2 \to 0$)")
                if solver == "euler":
                    a, b = floor_prediction(study.kappa, study.sigma2)
                    ax.axhline(abs(a - b / study.fixed_steps - 1), color=_COLORS["ve-dilated"], ls="--", lw=1,
                               label=r"dilated VE floor $|a - b/N - 1|$")
                if solver == "heun":
                    grid = np.geomspace(dims.min(), dims.max(), 50)
                    ax.plot(grid, np.abs(heun_prediction(study.kappa, study.sigma2, grid, study.fixed_steps) - 1),
                            color=_COLORS["ve-dilated"], ls="--", lw=1, label=r"dilated VE law $(\kappa + x)^2/(\kappa^2+\sigma^2) - 1$")
            ax.axhline(0.01 * (study.s2_ratio if row else 1), color="k", ls=":", lw=0.8, label="default tolerance")
            ax.set(xscale="log", yscale="log", xlabel="d", ylabel=label,
                   title=f"{solver}, N = {study.fixed_steps}")
            if col == len(solvers) - 1:
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    path = os.path.join(folder, "tolerance_vs_d.png")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    paths.append(path)

    # floor law
    if study.floor:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
        cmap = plt.get_cmap("viridis")
        for j, f in enumerate(study.floor):
            color = cmap(j / max(1, len(study.floor) - 1))
            n = np.asarray(f.steps, float)
            left.plot(n, np.asarray(f.ratio), "o", ms=3, color=color,
                      label=rf"$\kappa$ = {f.kappa:g}, $\sigma^2$ = {f.sigma2:g}")
            nn = np.geomspace(n.min(), n.max(), 100)
            left.plot(nn, f.a_pred - f.b_pred / nn + f.e_pred * nn, "-", lw=0.8, color=color)
            right.plot(f.a_pred, f.a_fit, "o", color=color)
        left.set(xscale="log", xlabel="N", ylabel=r"$\hat\sigma^2/\sigma^2$ at d = " + f"{study.floor[0].d:.0e}",
                 title=r"dilated VE + Euler: data (dots), predicted $a - b/N + eN$ (lines)")
        left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        lims = [min(f.a_pred for f in study.floor) - 0.02, 1.0]
        right.plot(lims, lims, "k:", lw=0.8, label="fitted = predicted")
        right.set(xlabel=r"predicted $a = \kappa^2/(\kappa^2+\sigma^2)$", ylabel=r"fitted $a$ ($a - b/N + c/N^2$)",
                  title="floor at N -> inf")
        right.legend(fontsize=8, loc="lower right")
        path = os.path.join(folder, "tolerance_floor.png")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        paths.append(path)

    # Heun growth
    h = study.heun
    if h is not None:
        fig, ax = plt.subplots(figsize=(7.8, 4.6))
        d, n, s = (np.asarray(v, float) for v in (h.d, h.steps, h.sigma2_hat))
        x = d / n**2
        for j, dv in enumerate(sorted(set(h.d))):
            m = d == dv
            ax.plot(x[m], s[m], "o", label=f"data, d = {dv:.0e}", color=f"C{j}")
        xx = np.geomspace(x.min(), x.max(), 50)
        ax.plot(xx, h.C_pred * xx, "k--", lw=1, label=rf"$C d/N^2$, $C = \sigma^6/(\kappa^2+\sigma^2)^3$ = {h.C_pred:.3g}")
        ax.plot(x, h.C_fit * d**h.alpha * n**h.beta, "+", color="gray", ms=8,
                label=rf"least-squares $C d^{{{h.alpha:.2f}}} N^{{{h.beta:.2f}}}$, C = {h.C_fit:.3g}")
        ax.plot(x, np.asarray(h.formula), "x", color="k", ms=5, label=r"$\sigma^2(\kappa + x)^2/(\kappa^2+\sigma^2)$")
        ax.set(xscale="log", yscale="log", xlabel=r"$d / N^2$", ylabel=r"$\hat\sigma^2$",
               title=rf"dilated VE + Heun, $\kappa$ = {h.kappa:g}, $\sigma^2$ = {h.sigma2:g}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        path = os.path.join(folder, "tolerance_heun.png")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        paths.append(path)
    return tuple(paths)


def _flat(table: Mapping[str, int | None]) -> bool:
    """Reached at every ``d`` with ``max N <= 1.5 min N`` (the solver study's dimension-free)."""
    values = list(table.values())
    return bool(values) and all(v is not None for v in values) and max(values) <= 1.5 * min(values)


def report_lines(study: ToleranceStudy) -> list[str]:
    """The study's report section (markdown): the floor and growth laws checked against the data
    (headline), ``N(eps)``, errors at fixed ``N`` against ``d``, and trig versus linear."""
    lines = ["## Tolerance curves, the dilated-VE floor and the Heun growth (exact reduction)", ""]
    if study.floor:
        worst_a = max(abs(f.a_fit - f.a_pred) for f in study.floor)
        worst_b = max(abs(f.b_fit / f.b_pred - 1) for f in study.floor)
        ref = min(study.floor, key=lambda f: abs(f.kappa - study.kappa) + abs(f.sigma2 - study.sigma2))
        lines.append(
            f"**Dilated VE + Euler has a d -> inf floor**: at d = {ref.d:.0e}, sigma2_hat/sigma2 = a - b/N with "
            f"a = kappa^2/(kappa^2 + sigma2) and b = a kappa (kappa/(kappa^2 + sigma2) + arctan(kappa/sigma)/sigma) "
            f"(derived in `nsjax.experiments.tolerance`); at kappa = {ref.kappa:g}, sigma2 = {ref.sigma2:g} the fit "
            f"gives a = {ref.a_fit:.4f}, b = {ref.b_fit:.2f} against {ref.a_pred:.4f}, {ref.b_pred:.2f}; over "
            f"kappa x sigma2 = {sorted({f.kappa for f in study.floor})} x {sorted({f.sigma2 for f in study.floor})} "
            f"|a_fit - a_pred| <= {worst_a:.1e} and |b_fit/b_pred - 1| <= {worst_b:.3f}. The steps to a "
            f"tolerance grow with d only because the tolerance is below 1 - a."
        )
        lines.append("")
    h = study.heun
    if h is not None:
        lines.append(
            f"**Dilated VE + Heun has no limit at fixed N**: least squares over d = {min(h.d):.0e}..{max(h.d):.0e}, "
            f"N = {min(h.steps)}..{max(h.steps)} (points with x >= 10 kappa) gives sigma2_hat ~ d^{h.alpha:.3f} N^{h.beta:.3f} "
            f"(predicted d^1 N^-2); with the exponents fixed, C = {h.C_fit:.3g} against "
            f"C = sigma^6/(kappa^2 + sigma2)^3 = {h.C_pred:.3g}; the finite-x law sigma2 (kappa + x)^2/(kappa^2 + sigma2), "
            f"x = sqrt(d) sigma2/(N (kappa^2 + sigma2)), is within {100 * h.max_formula_deviation:.1f}% of every point."
        )
        lines.append("")
    if study.floor:
        lines += ["| kappa | sigma2 | a fitted | a = kappa²/(kappa²+sigma2) | b fitted | b predicted | c fitted | e fitted | e predicted |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for f in study.floor:
            lines.append(f"| {f.kappa:g} | {f.sigma2:g} | {f.a_fit:.4f} | {f.a_pred:.4f} | {f.b_fit:.2f} | "
                         f"{f.b_pred:.2f} | {f.c_fit:.1f} | {f.e_fit:.2e} | {f.e_pred:.2e} |")
        lines += ["", f"Fit of a - b/N + c/N² + e N over N >= {FLOOR_MIN_STEPS} on the ladder at d = {study.floor[0].d:.0e} "
                  "(e N: the finite-d term, e = a sigma2/(kappa sqrt(d))).", ""]
    lines += [
        f"**N(eps)**: smallest N of the ladder ({min(study.steps)}..{max(study.steps)}, ratio sqrt 2) from which on "
        f"|p_hat - p| <= eps and |sigma2_hat/sigma2 - 1| <= {study.s2_ratio:g} eps (eps = 0.01: the study's "
        "default tolerance); — : not reached.",
        "",
        "| schedule/solver | d | " + " | ".join(f"eps = {e:g}" for e in study.eps) + " |",
        "|---|---|" + "---|" * len(study.eps),
    ]
    for key, per_d in study.steps_to_eps.items():
        for d, ns in per_d.items():
            cells = [str(ns[_eps_key(e)]) if ns[_eps_key(e)] is not None else "—" for e in study.eps]
            lines.append(f"| {key} | {float(d):.0e} | " + " | ".join(cells) + " |")
    lines.append("")
    i = study.steps.index(study.fixed_steps)
    dims = [_key(d) for d in study.vs_d_dims]
    lines += [f"Errors at N = {study.fixed_steps} against d (p_hat - p / sigma2_hat/sigma2 - 1):", "",
              "| schedule/solver | " + " | ".join(f"d = {float(d):.0e}" for d in dims) + " |",
              "|---|" + "---|" * len(dims)]
    for key in study.p_error:
        if key.count("/") != 1:
            continue
        cells = []
        for d in dims:
            if d in study.p_error[key]:
                cells.append(f"{study.p_error[key][d][i]:+.4f} / {study.sigma2_error[key][d][i]:+.3g}")
            else:
                cells.append("")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("")
    if any(k.endswith("/trig") for k in study.trig_steps):
        tdims = [_key(d) for d in study.trig_dims]
        lines += [f"**Trig interpolant** (alpha = sqrt(1 - tau^2), beta = tau; dilated VE in its trig form, "
                  f"docs/theory.md §4): steps to eps = {TRIG_EPS:g} (sigma2 at {study.s2_ratio * TRIG_EPS:g}) against d.",
                  "", "| schedule/solver | interpolant | " + " | ".join(f"d = {float(d):.0e}" for d in tdims) + " | d-free |",
                  "|---|---|" + "---|" * (len(tdims) + 1)]
        for key in sorted(study.trig_steps, key=lambda k: (k.split("/")[1], PAPER.index(k.split("/")[0]), k)):
            name, solver, form = key.split("/")
            table = study.trig_steps[key]
            cells = [str(table.get(d)) if table.get(d) is not None else "—" for d in tdims]
            lines.append(f"| {name}/{solver} | {form} | " + " | ".join(cells) + f" | {'yes' if _flat(table) else 'no'} |")
        lines.append("")
        verdict = []
        for name in ("vp-dilated", "ve-dilated"):
            flags = [_flat(t) for k, t in study.trig_steps.items() if k.startswith(name + "/") and k.endswith("/trig")]
            if flags:
                verdict.append(f"{name}: {'d-independent' if all(flags) else 'not d-independent'} on the trig interpolant")
        at = study.steps.index(study.fixed_steps)
        growth = []
        for key, per_d in study.sigma2_error.items():
            if key.startswith("ve-dilated/") and key.endswith("/trig"):
                ds = sorted(per_d, key=float)
                growth.append(f"{key.split('/')[1]}: sigma2_hat/sigma2 - 1 = "
                              + ", ".join(f"{per_d[d][at]:+.3g}" for d in ds) + " at d = "
                              + ", ".join(f"{float(d):.0e}" for d in ds) + f", N = {study.fixed_steps}")
        lines.append(
            "Conclusion: " + "; ".join(verdict) + ". The dilated VP schedule keeps its d-free step count; the "
            "trig VE form does not, because phase 1 is linear in tau while the noise sqrt(d) sqrt(1 - tau^2) has an "
            "infinite tau-slope at tau = 1: the last phase-1 step falls from about 2 sqrt(d/N) to kappa, which no "
            "fixed-step solver follows, and sigma2_hat grows like d/N ("
            + "; ".join(growth) + ")."
        )
        lines.append("")
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in study.seconds.items())
    lines += [f"Compiled programs (first N includes compilation): {secs}.", ""]
    return lines
