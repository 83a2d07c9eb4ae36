"""Figure drivers of ``nsjax reproduce``: Figures 1 and 2 of the paper, and the result figures.

Each driver writes PNG files into ``folder`` through :mod:`nsjax.experiments.plotting` and
returns what it measured (frozen dataclasses) and the paths.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np

from ..ensemble import sample
from . import builds, plotting
from .config import PAPER, Config
from .studies import AdaptiveStudy, ParticleStudy, Progress, ReductionStudy, dim_key, silent

__all__ = ["Figure1", "PathSummary", "Figure2", "figure1", "figure2", "result_figures"]


@dataclass(frozen=True)
class Figure1:
    """Figure 1 (schedules at ``d``) and the fraction of ``t`` with ``tau sqrt(d) <= 3 kappa``."""

    path: str
    d: int
    window: Mapping[str, float]


@dataclass(frozen=True)
class PathSummary:
    """Paths of ``M_t = r.X_t / d`` of one Figure 2 panel: where they end."""

    d: int
    realizations: int
    fraction_positive: float
    final_overlap_mean_abs: float
    seconds: float


@dataclass(frozen=True)
class Figure2:
    """Figure 2 (paths of ``M_t`` under dilated VE) with one summary per target (GM, CW)."""

    path: str
    panels: Mapping[str, PathSummary]


def figure1(cfg: Config, folder: str) -> Figure1:
    """VP schedules as ``tau(t)``, VE as ``sqrt(d)(1 - tau(t))`` at ``d = cfg.fig1_dim``."""
    d = cfg.fig1_dim
    t = np.linspace(0.0, 1.0, 2001)
    curves: dict[str, dict] = {"vp": {}, "ve": {}}
    for name in ("vp-dilated", "ddpm", "vpsde", "cosine", "vp"):
        _, schedule = builds.named_schedule(name, d, cfg.kappa)
        tau, _ = schedule(jnp.asarray(t))
        curves["vp"][name] = (t, np.asarray(tau))
    for name in ("ve-dilated", "vesde", "edm", "ve"):
        _, schedule = builds.named_schedule(name, d, cfg.kappa)
        _, tau_c = schedule(jnp.asarray(t))
        curves["ve"][name] = (t, math.sqrt(d) * np.asarray(tau_c))
    path = os.path.join(folder, "fig1_schedules.png")
    plotting.schedules_figure(curves, d, cfg.kappa, path)
    # where each VP schedule spends its steps: fraction of t with tau sqrt(d) <= 3 kappa
    window = {n: float(np.mean(tau * math.sqrt(d) <= 3 * cfg.kappa)) for n, (_, tau) in curves["vp"].items()}
    return Figure1(path=path, d=d, window=MappingProxyType(window))


def figure2(cfg: Config, folder: str, progress: Progress = silent) -> Figure2:
    """Paths of ``M_t`` (dilated VE, 100 steps) for GM at ``cfg.fig2_gm_dim`` (and CW)."""
    targets = [("GM", "gm", cfg.fig2_gm_dim)]
    if cfg.fig2_cw_dim:
        targets.append(("CW", "cw", cfg.fig2_cw_dim))
    ts = np.round(np.linspace(0, 1, 101), 10)
    panels, summaries = [], {}
    bar = progress(len(targets), "figure 2 paths")
    for label, name, d in targets:
        interpolant, schedule = builds.named_schedule("ve-dilated", d, cfg.kappa)
        result = sample(
            builds.target(cfg, name, d),
            interpolant,
            schedule,
            jax.random.PRNGKey(cfg.seed + 1),
            cfg.fig2_realizations,
            steps=100,
            path_ts=ts,
            path_coords=min(500, d),
            chunk_size=max(1, min(cfg.fig2_realizations, 50_000_000 // d)),
            dtype=jnp.float32,
        )
        overlap = result.path["overlap"]
        exact, lines = _final_law(cfg, name, d)
        title = f"{label} (d = {d:.0e}, dilated VE, κ = {cfg.kappa:g}, dt = 0.01" + (
            f", σ² = {cfg.sigma2:g}, p = {cfg.p:g})"
            if label == "GM"
            else f", θ = {cfg.theta:g}, h = {cfg.h:g})"
        )
        panels.append(
            {
                "title": title,
                "t": result.path_ts,
                "overlap": overlap,
                "coords": result.path["coords"][0],
                "t_min_coords": 0.5,
                "modes": exact,
                "lines": lines,
            }
        )
        final = overlap[:, -1]
        summaries[label] = PathSummary(
            d=d,
            realizations=cfg.fig2_realizations,
            fraction_positive=float(np.mean(final > 0)),
            final_overlap_mean_abs=float(np.mean(np.abs(final))),
            seconds=result.wall_seconds,
        )
        bar.update(1)
    bar.close()
    path = os.path.join(folder, "fig2_paths.png")
    plotting.paths_figure(panels, path)
    return Figure2(path=path, panels=MappingProxyType(summaries))


def _final_law(cfg: Config, name: str, d: int):
    """The exact per-mode law of ``M = r.x1/d`` and the dashed lines of the paper's Figure 2.

    Returns ``(modes, lines)``: ``modes[sign] = (weight, mean, sd, z, density)`` with the mode's
    exact law standardised (``z = (M - mean)/sd``); ``lines = ((value, label or None), ...)``.
    GM: ``N(±1, sigma^2/d)``, weights ``p``, ``1 - p``, lines ``M = ±1`` (mode centres). CW: the
    exact law of ``S = d M`` (:func:`nsjax.targets.curie_weiss.magnetization_law`) split at
    ``M = 0`` (a lattice of spacing ``2/d``: density ``P(S = k) d sd / 2``), lines ``M = ±1``
    (the paper's) and the mean-field centres ``±m``."""
    modes = {}
    if name == "gm":
        sd = math.sqrt(cfg.sigma2 / d)
        z = np.linspace(-4, 4, 401)
        dens = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
        for sign, w in ((1, cfg.p), (-1, 1 - cfg.p)):
            modes[sign] = (w, float(sign), sd, z, dens)
        return modes, ((1.0, "mode centres M = ±1"), (-1.0, None))
    from ..targets.curie_weiss import magnetization_law

    k, prob = magnetization_law(d, cfg.theta, cfg.h)
    m = k / d
    for sign in (1, -1):
        side = (m * sign) > 0
        w = float(prob[side].sum())
        q = prob[side] / w
        mean = float((q * m[side]).sum())
        sd = float(np.sqrt((q * (m[side] - mean) ** 2).sum()))
        zz = (m[side] - mean) / sd
        keep = np.abs(zz) <= 4
        modes[sign] = (w, mean, sd, zz[keep], q[keep] * d * sd / 2)
    m_star = float(builds.target(cfg, "cw", min(d, 1000)).m)
    return modes, ((1.0, "M = ±1 (paper)"), (-1.0, None), (m_star, f"±m = ±{m_star:.3f} (mean field)"),
                   (-m_star, None))


def result_figures(
    cfg: Config,
    folder: str,
    paper: ReductionStudy,
    standard: ReductionStudy | None,
    cw: ParticleStudy | None,
    adaptive: AdaptiveStudy,
) -> tuple[str, ...]:
    """Steps versus ``d`` (paper; standard), feature error versus ``N`` (GM; CW), adaptive NFE."""
    paths = []
    path = os.path.join(folder, "fig3_steps_vs_dimension.png")
    plotting.steps_figure(
        paper.steps_to_tolerance,
        paper.slope,
        path,
        f"Steps to tolerance, exact GM reduction (p = {cfg.p}, σ² = {cfg.sigma2}, κ = {cfg.kappa})",
        max_steps=paper.max_steps,
    )
    paths.append(path)
    if standard is not None:
        path = os.path.join(folder, "fig3b_steps_standard.png")
        plotting.steps_figure(
            standard.steps_to_tolerance,
            standard.slope,
            path,
            "Standard schedules (SNR-matched), exact GM reduction",
            max_steps=standard.max_steps,
        )
        paths.append(path)
    path = os.path.join(folder, "fig4_feature_error.png")
    d_err = 1e6 if 1e6 in cfg.reduction_dims else max(cfg.reduction_dims)
    rows = [r.to_json() for r in paper.rows if r.schedule in PAPER]
    plotting.error_figure(rows, d_err, path, ("p", "sigma2"), "GM (exact reduction)")
    paths.append(path)
    if cw is not None and cw.rows:
        rows = [r.to_json() for r in cw.rows]
        path = os.path.join(folder, "fig4b_feature_error_cw.png")
        plotting.error_figure(
            rows, max(r["d"] for r in rows), path, ("p", "m_abs", "spread"),
            f"CW (particles, ±1 stderr; {cfg.particles_at(int(max(r['d'] for r in rows)))} per run)",
            errorbars=True,
        )
        paths.append(path)
    if adaptive.nfe:
        path = os.path.join(folder, "fig5_adaptive_nfe.png")
        passed: dict[str, dict[str, bool]] = {}
        for r in adaptive.rows:
            passed.setdefault(f"{r.schedule}/{r.solver}", {})[dim_key(r.d)] = r.within_tolerance
        plotting.adaptive_figure(
            adaptive.nfe, path, f"Adaptive solves, PID rtol = {cfg.rtol:g}: NFE against d", passed
        )
        paths.append(path)
    return tuple(paths)
