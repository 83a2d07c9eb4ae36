"""Schedule benchmark: exact errors of schedules against NFE on the exact GM reduction.

GM p = 0.8, sigma2 = 1/4 at d in {1e3, 1e6, 1e9, 1e12}, float64, stratified normal quantiles
(:class:`nsjax.sweeps.QuantileReducedGM`, :func:`nsjax.sweeps.normal_quantiles`); tolerance as
``nsjax reproduce``: ``|p_hat - p| <= 0.01`` and ``|sigma2_hat / sigma2 - 1| <= 0.02``.

Schedules (VP noise ``c = 1`` and VE noise ``c = sqrt(d)``): the paper's dilations and the
constant step, DDPM / VP-SDE / cosine / VE-SDE / EDM as shipped (registry formulas, solved by
:func:`nsjax.solve`); and lists generated per ``(d, N)`` as :class:`nsjax.schedules.Tabulated`
(sigma ``x = x1 + sigma z``, SNR matching ``tau = c / (sigma + c)``):

- ``karras``: EDM rho = 7 between ``sigma_min`` and ``sigma_max`` then 0;
- ``kl-optimal``: ``sigma(t) = tan((1 - t) atan(sigma_max) + t atan(sigma_min))`` then 0;
- ``logsnr``: log-SNR-uniform (geometric sigma) then 0;
- ``ays``: Align Your Steps SD1.5 10-step timesteps [999, 850, ..., 24, 0] through the DDPM
  table, log-linearly interpolated in sigma for other N (AYS's ``loglinear_interp``), final
  denoising step;
- ``sd3``: SD3 shift of uniform rectified-flow time, ``t' = s t / (1 + (s - 1) t)`` with
  ``1 - tau = t'`` and ``s = sqrt(d / d_base)``, ``d_base = 256 * 256 * 3 / 64 = 3072``;
- ``gits``: dynamic-programming selection of N steps from a fine grid (64 / 128 points,
  geometric in sigma) minimising the summed local error of one Euler step started on a fine-step
  Heun teacher's trajectory (GITS, Chen et al. 2024);
- ``tsit5-frozen``: the step density an adaptive Tsit5 run accepts (tau-time, rtol 1e-5),
  averaged over particles and frozen into N steps (equal shares of accepted steps).

Sigma ranges: VP uses the DDPM table's (``sqrt((1 - abar)/abar)`` in [0.0292, 157.4], what
diffusers' Karras / exponential sigmas use); VE uses ``[0.002, sqrt(d (4 + 2 sigma2))]`` (EDM's
sigma_min, Song & Ermon's largest pairwise distance of the data as sigma_max: the ``*-scaled``
rows of ``nsjax reproduce``). A list schedule steps on its knots: one Runge–Kutta step per
interval, in tau-time (a Tabulated schedule's piecewise-linear ``tau(t)`` makes that the same step
as :func:`nsjax.solve` on it, ``tests/test_tabulated.py``); multistep history carries across
knots, as in diffusers.

Proxies, each against the exact error ``max(p_error / 0.01, sigma2_error / 0.02)`` by Spearman
rank correlation over (schedule, solver, NFE) per d: ``teacher``: mean ``|x_N - x_teacher|^2 / d``
from the same initial quantile; ``kl``: AYS-style KL upper bound along the teacher path,
``sum_k sum_{j in step k} |dsigma_j| / sigma_j^3 E|eta(x(tau_j)) - eta(x(tau_k))|^2 / d``.

    python benchmarks/schedules.py --quick --out benchmarks/results/schedules_quick.json

Learned schedules: every schedule file (``nsjax-schedule/1``, :mod:`nsjax.schedule_files`) in
``--learned`` (default ``benchmarks/results/learned/*.json``) is scored under its noise as
``learned:<file stem>`` (the ``file:`` schedule at each ``d``), with the benchmark's solvers and the
solver it was trained with. Any other schedule plugs in through :func:`score`
(``schedule_factory(d, N) -> (interpolant, schedule)``).
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from nsjax.experiments.config import P_TOL, S2_TOL  # noqa: E402
from nsjax.experiments.studies import steps_to_tolerance  # noqa: E402
from nsjax.export import grid_values  # noqa: E402
from nsjax.features import estimate  # noqa: E402
from nsjax.interpolants import make_interpolant  # noqa: E402
from nsjax.registry import make_schedule, noise_scale  # noqa: E402
from nsjax.schedule_files import load_schedule, read_schedule  # noqa: E402
from nsjax.schedules import DDPM, Constant, Tabulated, tau_to_sigma  # noqa: E402
from nsjax.solve import PieceSteps, piece_term, solve, step_grid  # noqa: E402
from nsjax.solvers import evaluations_per_step, make_solver  # noqa: E402
from nsjax.sweeps import QuantileReducedGM, normal_quantiles  # noqa: E402
from nsjax.targets import GaussianMixture  # noqa: E402

P, SIGMA2, KAPPA = 0.8, 0.25, 3.0
DIMS = (1e3, 1e6, 1e9, 1e12)
D_BASE = 256 * 256 * 3 / 64
AYS_SD15 = (999, 850, 736, 645, 545, 455, 343, 233, 124, 24, 0)
Factory = Callable[[float, int], tuple]


# -- the exact runs ---------------------------------------------------------------------------------
def _system(d):
    return QuantileReducedGM(GaussianMixture(dim=2, p=P, sigma2=SIGMA2), dim=d)


def _step_to(term, solver, knots, y0, saveat):
    """One solver step per interval of ``knots`` (tau-time), saved at ``saveat``."""
    sol = diffrax.diffeqsolve(
        term,
        solver,
        knots[0],
        knots[-1],
        None,
        y0,
        stepsize_controller=diffrax.StepTo(ts=knots),
        max_steps=knots.shape[0] - 1,
        saveat=saveat,
        throw=False,
    )
    return sol.ys


@functools.partial(jax.jit, static_argnames=("solver_name", "ends"))
def _run_list(taus, d, c, z, solver_name, ends):
    """A tau list stepped on its knots (tau-time, one Runge–Kutta step per interval)."""
    system, interpolant = _system(d), make_interpolant("linear", c)
    term = piece_term(system, interpolant, Constant(), 0)

    def one(zi):
        y0 = system.init(zi, c * interpolant.alpha(taus[0], 1 - taus[0]), jnp.float64)
        ys = _step_to(term, make_solver(solver_name), taus, y0, diffrax.SaveAt(t1=True))
        y = jax.tree.map(lambda leaf: leaf[-1], ys)
        if not ends:
            y = system.denoise(interpolant, taus[-1], 1 - taus[-1], y)
        return y

    return jax.vmap(one)(z)


@eqx.filter_jit
def _run_formula(system, interpolant, schedule, z, counts, solver):
    return jax.vmap(
        lambda zi: (
            solve(
                system,
                interpolant,
                schedule,
                key=zi,
                steps=PieceSteps(counts),
                solver=solver,
                dtype=jnp.float64,
            ).state
        )
    )(z)


def _traced(tree):
    """Python-number leaves to arrays, so that a new ``d`` reuses the compiled program."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if isinstance(x, (int, float)) else x, tree)


def run(interpolant, schedule, d, n, solver_name, z):
    """Final reduced states of ``n`` steps of ``schedule`` from quantiles ``z``."""
    c = float(interpolant.noise_scale)
    if isinstance(schedule, Tabulated):
        taus = np.asarray(grid_values(schedule, n)[1])
        return _run_list(jnp.asarray(taus), d, c, jnp.asarray(z), solver_name, schedule.ends_at_data)
    counts = jnp.asarray([len(g) - 1 for g in step_grid(schedule, n)], jnp.int32)
    return _run_formula(
        _system(jnp.float64(d)),
        _traced(interpolant),
        _traced(schedule),
        jnp.asarray(z),
        counts,
        make_solver(solver_name),
    )


def nfe_of(schedule, n, solver_name):
    per_step, once = evaluations_per_step(make_solver(solver_name))
    return per_step * n + once + (0 if schedule.ends_at_data else 1)


def features(state, d):
    stats = {k: np.asarray(v) for k, v in _system(d).statistics(state).items()}
    return estimate(GaussianMixture(dim=int(d), p=P, sigma2=SIGMA2), stats, allow_empty=True)


def score(
    schedule_factory: Factory,
    solver: str,
    ds: Sequence[float],
    nfes: Sequence[int],
    *,
    quantiles: int = 512,
    teacher=None,
    name: str = "schedule",
) -> list[dict]:
    """Exact errors of ``schedule_factory(d, N) -> (interpolant, schedule)`` with ``solver``.

    For each ``d`` and each NFE budget, ``N`` is the largest step count within the budget; rows:
    ``schedule, solver, d, N, nfe, p_error, sigma2_error, error`` (``max(p_error / 0.01,
    sigma2_error / 0.02)``), ``pass``, and the proxies when ``teacher`` (:func:`teacher_path` per
    ``d``) is given.
    """
    z = normal_quantiles(quantiles)
    per_step, once = evaluations_per_step(make_solver(solver))
    rows = []
    for d in ds:
        probe = schedule_factory(d, 4)[1]
        extra = 0 if probe.ends_at_data else 1
        ns = sorted({(nfe - once - extra) // per_step for nfe in nfes} - {0, -1})
        ns = [n for n in ns if n >= max(1, len(probe.intervals()))]
        for n in ns:
            try:
                interpolant, schedule = schedule_factory(d, n)
            except ValueError:  # e.g. GITS: more steps than its fine grid has intervals
                continue
            state = run(interpolant, schedule, d, n, solver, z)
            f = features(state, d)
            error = max(f["p_error"] / P_TOL, f["sigma2_error"] / S2_TOL)
            row = {
                "schedule": name,
                "solver": solver,
                "d": float(d),
                "N": n,
                "nfe": nfe_of(schedule, n, solver),
                "p_error": f["p_error"],
                "sigma2_error": f["sigma2_error"],
                "error": float(error) if np.isfinite(error) else None,
                "pass": bool(np.isfinite(error) and error <= 1.0 and f["nonfinite"] == 0),
            }
            if teacher is not None:
                row.update(proxies(teacher[d], interpolant, schedule, n, state, d))
            rows.append(row)
    return rows


# -- teacher, proxies, GITS, frozen Tsit5 -----------------------------------------------------------
def teacher_grid(d, c, points):
    """``points`` taus: 0, geometric sigma from 1e4 sqrt(d) to 1e-4, and 1."""
    sigma = np.geomspace(1e4 * math.sqrt(d), 1e-4, points - 2)
    return np.concatenate([[0.0], c / (sigma + c), [1.0]])


@functools.partial(jax.jit, static_argnames=("sub",))
def _teacher(taus, d, c, z, sub):
    """Heun with ``sub`` substeps per interval of ``taus``; states at every tau."""
    system, interpolant = _system(d), make_interpolant("linear", c)
    term = piece_term(system, interpolant, Constant(), 0)
    fine = jnp.concatenate(
        [(taus[:-1, None] + (taus[1:] - taus[:-1])[:, None] * jnp.arange(sub) / sub).ravel(), taus[-1:]]
    )

    def one(zi):
        y0 = system.init(zi, c, jnp.float64)
        return _step_to(term, make_solver("heun"), fine, y0, diffrax.SaveAt(ts=taus))

    return jax.vmap(one)(z)


def teacher_path(d, c, *, points=1025, sub=8, particles=64):
    taus = teacher_grid(d, c, points)
    z = normal_quantiles(particles)
    states = _teacher(jnp.asarray(taus), d, c, jnp.asarray(z), sub)  # [P, T]
    system, interpolant = _system(d), make_interpolant("linear", c)
    eta = jax.vmap(jax.vmap(lambda t, y: system.denoise(interpolant, t, 1 - t, y), (0, 0)), (None, 0))(
        jnp.asarray(taus[:-1]), jax.tree.map(lambda x: x[:, :-1], states)
    )
    return {
        "taus": taus,
        "z": z,
        "c": c,
        "u": np.asarray(states.u),
        "g": np.asarray(states.g),
        "q": np.asarray(states.q),
        "eta_u": np.asarray(eta.u),
        "eta_g": np.asarray(eta.g),
    }


def _interp_path(path, key, taus):
    return np.stack([np.interp(taus, path["taus"][: path[key].shape[1]], row) for row in path[key]])


def proxies(path, interpolant, schedule, n, state, d):
    """Teacher distance (same initial quantiles) and the AYS-style KL bound of the grid."""
    taus = np.clip(grid_values(schedule, n)[1], 0, 1)
    du = np.asarray(state.u) - path["u"][:, -1]  # same initial quantiles
    dg = np.asarray(state.g) - path["g"][:, -1]
    teacher = float(np.mean((du**2 + path["q"][:, -1] * dg**2) / d))
    # KL bound: sum over fine sigma in each coarse step of |dsigma| / sigma^3 |eta_j - eta_k|^2 / d
    ft = path["taus"][1:-1]
    sig = tau_to_sigma(ft, 1 - ft, path["c"])
    dsig = np.abs(np.gradient(sig))
    eu, eg = _interp_path(path, "eta_u", ft), _interp_path(path, "eta_g", ft)
    k = np.clip(np.searchsorted(taus, ft, side="right") - 1, 0, len(taus) - 2)
    start = np.maximum(taus[k], taus[0])
    su, sg = _interp_path(path, "eta_u", start), _interp_path(path, "eta_g", start)
    q = path["q"][:, :1]
    inside = (ft >= taus[0]) & (ft <= taus[-1])
    gap = np.mean(((eu - su) ** 2 + q * (eg - sg) ** 2) / d, axis=0)
    kl = float(np.sum(np.where(inside, dsig / sig**3 * gap, 0.0)))
    return {"teacher_distance": teacher, "kl_bound": kl}


def gits_taus(path, n, fine_points):
    """DP choice of ``n`` steps on a sub-grid of the teacher's taus (Euler local error)."""
    taus_all = path["taus"]
    sel = np.unique(np.round(np.linspace(0, len(taus_all) - 1, fine_points)).astype(int))
    taus = taus_all[sel]
    if n >= len(taus):
        raise ValueError(f"n must be < {len(taus)} (the fine grid's intervals), got {n}")
    u, g, q = path["u"][:, sel], path["g"][:, sel], path["q"][:, :1]
    d = path["d"]
    system, interpolant = _system(d), make_interpolant("linear", path["c"])
    vel = jax.vmap(jax.vmap(lambda t, y: system.velocity(interpolant, t, 1 - t, y), (0, 0)), (None, 0))
    from nsjax.reduction import ReducedState

    v = vel(jnp.asarray(taus), ReducedState(jnp.asarray(u), jnp.asarray(g), jnp.asarray(q + 0 * u)))
    vu, vg = np.asarray(v.u), np.asarray(v.g)
    h = taus[None, :] - taus[:, None]  # h[i, j]
    pu = u[:, :, None] + h[None] * vu[:, :, None] - u[:, None, :]
    pg = g[:, :, None] + h[None] * vg[:, :, None] - g[:, None, :]
    cost = np.mean((pu**2 + q[:, :, None] * pg**2) / d, axis=0)
    m = len(taus)
    best = np.full((n + 1, m), np.inf)
    back = np.zeros((n + 1, m), int)
    best[0, 0] = 0.0
    for s in range(1, n + 1):
        total = best[s - 1][:, None] + np.where(np.triu(np.ones((m, m), bool), 1), cost, np.inf)
        back[s] = np.argmin(total, axis=0)
        best[s] = total[back[s], np.arange(m)]
    path_idx = [m - 1]
    for s in range(n, 0, -1):
        path_idx.append(back[s, path_idx[-1]])
    return taus[path_idx[::-1]]


@functools.partial(jax.jit, static_argnames=("rtol", "atol"))
def _tsit5_times(d, c, zi, rtol, atol):
    system, interpolant = _system(d), make_interpolant("linear", c)
    term = piece_term(system, interpolant, Constant(), 0)
    y0 = system.init(zi, c, jnp.float64)
    sol = diffrax.diffeqsolve(
        term,
        diffrax.Tsit5(),
        0.0,
        1.0,
        1e-3,
        y0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(steps=True),
        max_steps=4096,
        throw=False,
    )
    return sol.ts


def tsit5_density(d, c, *, particles=16, rtol=1e-5, atol=1e-8):
    """Normalised cumulative count of accepted Tsit5 steps as a function of tau (tau-time)."""
    grid = np.linspace(0, 1, 20001) ** 1  # evaluation taus
    grid = np.unique(np.concatenate([grid, 1 - np.geomspace(1, 1e-9, 2000), np.geomspace(1e-9, 1, 2000)]))
    cdf = np.zeros_like(grid)
    for zi in normal_quantiles(particles):
        ts = np.asarray(_tsit5_times(jnp.float64(d), jnp.float64(c), jnp.float64(zi), rtol, atol))
        ts = np.concatenate([[0.0], ts[np.isfinite(ts)]])
        cdf += np.interp(grid, ts, np.linspace(0, 1, len(ts)))
    return grid, cdf / particles


# -- the schedules ----------------------------------------------------------------------------------
def _ddpm_sigma_range():
    with jax.enable_x64(True):
        la = np.asarray(DDPM().log_alpha_bar(np.array([1.0, 1000.0])))
    return tuple(np.sqrt(np.expm1(-la)))  # (sigma_min, sigma_max)


def _sigma_range(noise, d):
    return _ddpm_sigma_range() if noise == "vp" else (0.002, math.sqrt(d * (4 + 2 * SIGMA2)))


def _listed(noise, d, sigmas):
    c = noise_scale(noise, d)
    return make_interpolant("linear", c), Tabulated.from_sigmas(sigmas, c)


def _ays_sigmas(n):
    with jax.enable_x64(True):
        la = np.asarray(DDPM().log_alpha_bar(np.asarray(AYS_SD15, float) + 1))
    sig = np.sqrt(np.expm1(-la))
    x = np.linspace(0, 1, len(sig))
    return np.exp(np.interp(np.linspace(0, 1, n + 1), x, np.log(sig)))


def factories(noise, paths, fine_points, densities):
    """``{name: schedule_factory}`` for one noise."""

    def registry(name, **params):
        def make(d, n):
            c = noise_scale(noise, d)
            return make_interpolant("linear", c), make_schedule(name, d, noise_scale=c, **params)

        return make

    def formula(sigma_of_t):
        def make(d, n):
            lo, hi = _sigma_range(noise, d)
            t = np.linspace(0, 1, n)
            return _listed(noise, d, [*sigma_of_t(t, lo, hi), 0.0])

        return make

    karras = formula(lambda t, lo, hi: (hi ** (1 / 7) + t * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7)
    kl = formula(lambda t, lo, hi: np.tan((1 - t) * np.arctan(hi) + t * np.arctan(lo)))
    logsnr = formula(lambda t, lo, hi: np.exp((1 - t) * np.log(hi) + t * np.log(lo)))

    def ays(d, n):
        c = noise_scale(noise, d)
        return make_interpolant("linear", c), Tabulated.from_sigmas(_ays_sigmas(n), c)

    def sd3(d, n):
        s = math.sqrt(d / D_BASE)
        t = 1 - np.linspace(0, 1, n + 1)  # rectified-flow time, 1 = noise
        shifted = s * t / (1 + (s - 1) * t)
        return make_interpolant("linear", noise_scale(noise, d)), Tabulated(1 - shifted, shifted)

    def gits(d, n):
        return make_interpolant("linear", noise_scale(noise, d)), Tabulated(
            gits_taus(paths[d], n, fine_points)
        )

    def frozen(d, n):
        grid, cdf = densities[d]
        taus = np.interp(np.linspace(0, 1, n + 1), cdf, grid)
        taus[0], taus[-1] = 0.0, 1.0
        taus = np.maximum.accumulate(taus)
        taus = taus + np.arange(n + 1) * 1e-15  # strictly increasing
        taus[-1] = 1.0
        return make_interpolant("linear", noise_scale(noise, d)), Tabulated(np.minimum(taus, 1.0))

    out = {
        f"{noise}-dilated": registry(f"{noise}-dilated", kappa=KAPPA),
        f"{noise}-constant": registry("constant"),
    }
    if noise == "vp":
        out.update(ddpm=registry("ddpm"), vpsde=registry("vpsde"), cosine=registry("cosine"))
    else:
        out.update(vesde=registry("vesde"), edm=registry("edm"))
    out.update(
        {
            "karras": karras,
            "kl-optimal": kl,
            "logsnr": logsnr,
            "ays": ays,
            "sd3": sd3,
            "gits": gits,
            "tsit5-frozen": frozen,
        }
    )
    return out


LEARNED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "learned")


def learned_factories(paths: Sequence[str]) -> dict[str, tuple[str, str | None, Factory]]:
    """``{"learned:<stem>": (noise, training solver, factory)}`` of the schedule files ``paths``:
    the factory loads the file at each ``d`` (``file:PATH``, :func:`nsjax.schedule_files.load_schedule`)."""
    out = {}
    for path in paths:
        record = read_schedule(path)
        noise = record["noise"]

        def make(d, n, path=path, noise=noise):
            return make_interpolant("linear", noise_scale(noise, d)), load_schedule(path, d, dtype=jnp.float64)

        out[f"learned:{os.path.splitext(os.path.basename(path))[0]}"] = (noise, record.get("solver"), make)
    return out


# -- the report -------------------------------------------------------------------------------------
def rank_correlations(rows):
    out = {}
    for noise in ("vp", "ve"):
        for d in sorted({r["d"] for r in rows}):
            sel = [
                r
                for r in rows
                if r["noise"] == noise and r["d"] == d and r["error"] is not None and "teacher_distance" in r
            ]
            err = [r["error"] for r in sel]
            key = f"{noise}/{int(d)}"
            rho = {
                p: float(spearmanr([r[p] for r in sel], err).statistic)
                for p in ("teacher_distance", "kl_bound")
            }
            out[key] = {p: (v if np.isfinite(v) else None) for p, v in rho.items()}
    return out


def smallest_nfe(rows):
    """Per noise and schedule: the smallest NFE passing at every d (over solvers), and per solver."""
    out: dict = {}
    for noise in ("vp", "ve"):
        for name in sorted({r["schedule"] for r in rows if r["noise"] == noise}):
            best = {}
            for solver in sorted({r["solver"] for r in rows}):
                sel = [
                    r for r in rows if r["noise"] == noise and r["schedule"] == name and r["solver"] == solver
                ]
                ds = sorted({r["d"] for r in sel})
                nfes = sorted({r["nfe"] for r in sel})
                passed = np.array(
                    [
                        [any(r["pass"] for r in sel if r["nfe"] == nfe and r["d"] == d) for d in ds]
                        for nfe in nfes
                    ]
                ).reshape(len(nfes), len(ds))
                all_d = passed.all(axis=1, keepdims=True) if len(nfes) else passed
                best[solver] = steps_to_tolerance(nfes, all_d)[0] if len(nfes) else None
            hits = [v for v in best.values() if v is not None]
            out.setdefault(noise, {})[name] = {"best": min(hits) if hits else None, **best}
    return out


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(2, len(ds), figsize=(4 * len(ds), 7), sharey=True, squeeze=False)
    for i, noise in enumerate(("vp", "ve")):
        for j, d in enumerate(ds):
            ax = axes[i, j]
            names = sorted({r["schedule"] for r in rows if r["noise"] == noise})
            for name in names:
                sel = [r for r in rows if r["noise"] == noise and r["schedule"] == name and r["d"] == d]
                pts = {}
                for r in sel:  # best solver at each NFE
                    e = r["error"] if r["error"] is not None else np.inf
                    pts[r["nfe"]] = min(pts.get(r["nfe"], np.inf), e)
                xs = sorted(pts)
                style = dict(lw=2.4, marker="*", ms=8, zorder=5) if name.startswith("learned:") else {}
                ax.loglog(xs, [min(pts[x], 1e4) for x in xs], label=name, **{"marker": ".", **style})
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
            ax.set_title(f"{noise.upper()}  d = {d:.0e}")
            ax.set_xlabel("NFE")
        axes[i, 0].set_ylabel("error / tolerance (best solver)")
        axes[i, -1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="heun + dpmpp-2m (+ each learned file's solver), NFE <= 64, 256 quantiles (667 s measured "
        "on 2 CPU cores shared with 3 other jobs; 254 s before the learned rows, less loaded)",
    )
    parser.add_argument(
        "--solvers", default=None, help="comma-separated solver names (see nsjax.solvers.SOLVERS)"
    )
    parser.add_argument("--dims", default=None, help="comma-separated d (default 1e3,1e6,1e9,1e12)")
    parser.add_argument("--schedules", default=None, help="comma-separated schedule names (default all)")
    parser.add_argument(
        "--learned",
        default=os.path.join(LEARNED, "*.json"),
        help="glob of schedule files scored as learned:<stem> ('' for none)",
    )
    parser.add_argument("--out", default="benchmarks/results/schedules.json", help="JSON out (PNG beside it)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.quick:
        solvers, nfes, quantiles, fine, teacher_points = (
            ["heun", "dpmpp-2m"],
            [6, 8, 10, 12, 16, 24, 32, 64],
            256,
            97,
            513,
        )
    else:
        solvers = ["euler", "heun", "dpmpp-2m", "dpmpp-3m", "unipc"]
        nfes, quantiles, fine, teacher_points = (
            [4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 256, 512],
            1024,
            161,
            2049,
        )
    if args.solvers:
        solvers = args.solvers.split(",")
    dims = tuple(float(x) for x in args.dims.split(",")) if args.dims else DIMS
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        revision = None
    header = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, jax {jax.__version__} "
        f"{jax.devices()[0].platform}",
        "revision": revision,
        "p": P,
        "sigma2": SIGMA2,
        "kappa": KAPPA,
        "d_base": D_BASE,
        "quantiles": quantiles,
        "solvers": solvers,
        "nfes": nfes,
    }
    learned = learned_factories(sorted(glob.glob(args.learned))) if args.learned else {}
    header["learned"] = {name: {"noise": v[0], "solver": v[1]} for name, v in learned.items()}
    print(f"command: {header['command']}\nmachine: {header['machine']}", flush=True)
    rows = []
    for noise in ("vp", "ve"):
        paths, densities = {}, {}
        for d in dims:
            c = noise_scale(noise, d)
            paths[d] = teacher_path(d, c, points=teacher_points, particles=quantiles)
            paths[d]["d"] = d
            densities[d] = tsit5_density(d, c)
        print(f"[{time.perf_counter() - start:6.1f}s] {noise}: teachers and Tsit5 densities", flush=True)
        table = {name: (factory, solvers) for name, factory in factories(noise, paths, fine, densities).items()}
        for name, (kind, trained, factory) in learned.items():
            if kind == noise:  # the benchmark's solvers and the one it was trained with
                table[name] = (factory, solvers + [s for s in [trained] if s and s not in solvers])
        for name, (factory, names) in table.items():
            if args.schedules and name not in args.schedules.split(","):
                continue
            for solver in names:
                for r in score(factory, solver, dims, nfes, quantiles=quantiles, teacher=paths, name=name):
                    rows.append({"noise": noise, **r})
            print(f"[{time.perf_counter() - start:6.1f}s] {noise} {name}", flush=True)
    result = {
        **header,
        "wall_seconds": time.perf_counter() - start,
        "smallest_nfe_all_d": smallest_nfe(rows),
        "rank_correlation": rank_correlations(rows),
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    figure(rows, os.path.splitext(args.out)[0] + ".png")
    print("smallest NFE passing at every d (best solver; per solver):")
    for noise, table in result["smallest_nfe_all_d"].items():
        for name, v in table.items():
            print(f"  {noise:2s} {name:14s} {v}")
    print("Spearman(proxy, exact error):", json.dumps(result["rank_correlation"]))
    print(f"wall {result['wall_seconds']:.1f}s -> {args.out}")


if __name__ == "__main__":
    main()
