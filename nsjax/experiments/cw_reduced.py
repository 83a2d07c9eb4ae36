"""Curie–Weiss steps versus ``d`` on the reduced CW flow (:mod:`nsjax.cw_reduction`), 1e3 to 1e9.

For each paper schedule x solver, steps double from 2 until ``|p_hat - p| <= P_TOL`` and
``|spread_hat / spread - 1| <= S2_TOL`` (and ``|E|M|_hat / E|M| - 1| <= S2_TOL``) against the exact
finite-``d`` references (:func:`nsjax.cw_reduction.cw_reference`). The ``u`` particles are
stratified normal quantiles (``p_hat`` deterministic, error ``<= 1/(2 n)``); the reduction's own
error is ``O(1/d)`` in the features plus the graded rule's (docs/theory.md §3). Also: the
dichotomy at ``d = 1e6`` and the ``d -> infinity`` limit at fixed steps (Theorem 3).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from ..cw_reduction import cw_reference
from . import builds
from .config import P_TOL, PAPER, S2_TOL, Config

__all__ = ["CWReducedStudy", "cw_reduced_study", "cw_reduced_figure", "report_lines"]


@dataclass(frozen=True)
class CWReducedStudy:
    """Steps to tolerance ``steps["<schedule>/<solver>"]["<d>"]`` (``None``: not reached up to
    ``max_steps``), features per run ``rows``, the limit table ``limit``."""

    dims: tuple[float, ...]
    max_steps: int
    quantiles: int
    nodes: int
    steps: Mapping[str, Mapping[str, int | None]]
    rows: tuple[dict, ...]
    limit: tuple[dict, ...]
    limit_steps: int
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


def _key(d: float) -> str:
    return f"{d:.0e}"


def _features(stats, ref) -> dict[str, float]:
    mag = np.asarray(stats["magnetization"])
    p_hat = float(np.mean(mag > 0))
    m_abs = float(np.mean(np.abs(mag)))
    spread = float(np.mean(stats["spread"]))
    return {
        "p_hat": p_hat, "p_error": abs(p_hat - ref["p"]),
        "m_abs_ratio": m_abs / ref["m_abs"], "spread_ratio": spread / ref["spread"],
    }


def _passes(f) -> bool:
    return f["p_error"] <= P_TOL and abs(f["spread_ratio"] - 1) <= S2_TOL and abs(f["m_abs_ratio"] - 1) <= S2_TOL


def cw_reduced_study(cfg: Config, progress: Callable = None) -> CWReducedStudy:
    """Run the reduced-CW steps-versus-``d`` study of ``cfg`` (``cw_reduced_*`` fields)."""
    import time

    start = time.perf_counter()
    dims = tuple(d for d in cfg.cw_reduced_dims if cfg.kappa < math.sqrt(d))
    grid = builds.paper_grid(PAPER, dims, cfg)
    build = builds.reduced_cw_paper_build(cfg)
    refs = {d: cw_reference(cfg.theta, cfg.h, d) for d in dims}
    z = builds.quantiles(cfg.cw_reduced_quantiles)
    ladder = [2**k for k in range(1, int(math.log2(cfg.cw_reduced_max_steps)) + 1)]
    steps_found: dict[str, dict[str, int | None]] = {}
    rows: list[dict] = []
    for solver_name in cfg.solvers:
        passed: dict[int, set] = {}

        def stop(i, result, solver_name=solver_name):
            n = result.steps[i]
            for g, (name, d) in enumerate(grid.rows):
                f = _features(result.point(i, g), refs[d])
                ok = _passes(f) and result.nonfinite[i, g] == 0
                rows.append({"schedule": name, "solver": solver_name, "d": d, "N": n, "ok": bool(ok), **f})
                if ok:
                    passed.setdefault(g, set()).add(n)
            return len(passed) == len(grid.rows)

        builds.sweep(build, grid.params, z, steps=ladder, solver=builds.solver(solver_name), stop=stop)
        for g, (name, d) in enumerate(grid.rows):
            found = min(passed.get(g, ()), default=None)
            steps_found.setdefault(f"{name}/{solver_name}", {})[_key(d)] = found
    # the d -> infinity limit at fixed steps (dilated schedules)
    limit = []
    lgrid = builds.paper_grid(("vp-dilated", "ve-dilated"), dims, cfg)
    for solver_name in cfg.solvers:
        result = builds.sweep(
            build, lgrid.params, z, steps=[cfg.cw_reduced_limit_steps], solver=builds.solver(solver_name)
        )
        for g, (name, d) in enumerate(lgrid.rows):
            f = _features(result.point(0, g), refs[d])
            limit.append({"schedule": name, "solver": solver_name, "d": d, **f})
    return CWReducedStudy(
        dims=dims, max_steps=cfg.cw_reduced_max_steps, quantiles=cfg.cw_reduced_quantiles,
        nodes=cfg.cw_reduced_nodes, steps=steps_found, rows=tuple(rows), limit=tuple(limit),
        limit_steps=cfg.cw_reduced_limit_steps, seconds=time.perf_counter() - start,
    )


def _limit_order(values: list[tuple[float, float]]) -> float | None:
    """Slope ``a`` of ``log |f(d) - f(d_max)|`` against ``log d`` (the finite-``d`` correction ``d^-a``)."""
    if len(values) < 3:
        return None
    d_max, f_max = values[-1]
    pts = [(math.log(d), math.log(abs(f - f_max))) for d, f in values[:-1] if abs(f - f_max) > 1e-12]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(-np.polyfit(x, y, 1)[0])


def report_lines(study: CWReducedStudy) -> list[str]:
    """Markdown: steps table, the d = 1e6 dichotomy, the limit table."""
    keys = [_key(d) for d in study.dims]
    lines = [
        "## Curie–Weiss steps versus d (reduced CW flow)",
        "",
        f"Steps doubling from 2 until |p_hat - p| <= {P_TOL}, spread and E|M| within {S2_TOL} (relative), "
        f"against the exact finite-d law; {study.quantiles} stratified u quantiles, {study.nodes} graded "
        f"nodes; '>{study.max_steps}': not reached up to N_max.",
        "",
        "| schedule / solver | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for series, by_d in study.steps.items():
        cells = [str(by_d.get(k)) if by_d.get(k) is not None else f">{study.max_steps}" for k in keys]
        lines.append(f"| {series} | " + " | ".join(cells) + " |")
    near = min(study.dims, key=lambda d: abs(math.log10(d) - 6))
    lines += ["", f"Dichotomy at d = {near:.0e} (largest N run per schedule):", ""]
    lines += ["| schedule / solver | N | p_hat (error) | spread_hat/spread | E|M|_hat/E|M| |", "|---|---|---|---|---|"]
    for series in study.steps:
        name, solver = series.split("/")
        mine = [r for r in study.rows if r["schedule"] == name and r["solver"] == solver and r["d"] == near]
        for r in mine[:1] + mine[-1:] if len(mine) > 1 else mine:
            lines.append(
                f"| {series} | {r['N']} | {r['p_hat']:.4f} ({r['p_error']:.4f}) | {r['spread_ratio']:.4f} "
                f"| {r['m_abs_ratio']:.4f} |"
            )
    lines += ["", f"d -> infinity at fixed N = {study.limit_steps} (dilated schedules; Theorem 3):", ""]
    lines += ["| schedule / solver | " + " | ".join(keys) + " | fitted order a (d^-a) |", "|---" * (len(keys) + 2) + "|"]
    series_names = sorted({(r["schedule"], r["solver"]) for r in study.limit})
    for name, solver in series_names:
        mine = sorted((r for r in study.limit if r["schedule"] == name and r["solver"] == solver), key=lambda r: r["d"])
        for label, field in (("p_hat", "p_hat"), ("spread ratio", "spread_ratio")):
            order = _limit_order([(r["d"], r[field]) for r in mine])
            cells = " | ".join(f"{r[field]:.4f}" for r in mine)
            lines.append(f"| {name}/{solver} {label} | {cells} | {'-' if order is None else f'{order:.2f}'} |")
    return lines


def cw_reduced_figure(study: CWReducedStudy, folder: str) -> str:
    """Steps to tolerance against ``d`` for every schedule x solver; unreached runs at ``N_max``
    with open markers; a ``sqrt(d)`` guide. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    dims = np.array(study.dims)
    for series, by_d in study.steps.items():
        ys = [by_d.get(_key(d)) for d in dims]
        reached = np.array([y is not None for y in ys])
        vals = np.array([y if y is not None else study.max_steps for y in ys], float)
        (line,) = ax.plot(dims, vals, "-", marker="o", label=series, alpha=0.8)
        ax.plot(dims[~reached], vals[~reached], "o", mfc="white", color=line.get_color())
    guide = 8 * np.sqrt(dims / dims[0])
    ax.plot(dims, guide, "k:", label="sqrt(d) guide")
    ax.axhline(study.max_steps, color="grey", lw=0.5)
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="steps to tolerance",
           title=f"Curie–Weiss (reduced): open markers = not reached up to N_max = {study.max_steps}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path = os.path.join(folder, "fig_cw_reduced_steps.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
