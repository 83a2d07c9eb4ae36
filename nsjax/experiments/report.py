"""The markdown report (report.md) of one ``nsjax reproduce`` run, from its typed results."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .config import SPREAD_TOL
from .results import Results
from .studies import FeatureRow, dim_key
from .verdicts import dichotomy_verdict, fmt

__all__ = ["render", "write_report"]


def _steps_table(
    steps: Mapping[str, Mapping[str, int | None]],
    slopes: Mapping[str, float | None],
    spans: Mapping[str, Sequence[float] | None],
    dims: Sequence[float],
) -> list[str]:
    head = "| schedule/solver | " + " | ".join(f"{d:.0e}" for d in dims) + " | slope | fit range |"
    lines = [head, "|" + "---|" * (len(dims) + 3)]
    for key, table in steps.items():
        cells = [fmt(table.get(dim_key(d))) for d in dims]
        span = spans.get(key)
        span_s = f"{span[0]:.0e} – {span[1]:.0e}" if span else "—"
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {fmt(slopes.get(key))} | {span_s} |")
    return lines


def _method(res: Results) -> list[str]:
    cfg, rt = res.config, res.runtime
    return [
        "# nsjax reproduce: report",
        "",
        f"Mode `{cfg.mode}`; total wall time **{rt['total_s']:.0f} s** on {res.machine}. "
        f"GM: p = {cfg.p}, σ² = {cfg.sigma2}; CW: θ = {cfg.theta}, h = {cfg.h:.4g} "
        f"({cfg.cw_posterior} posterior); κ = {cfg.kappa}. Paper: Aranguri, Biroli, Mézard, "
        "Vanden-Eijnden, arXiv:2501.00988. Notation: `docs/theory.md` of the project.",
        "",
        "## How the numbers are measured",
        "",
        "- **Exact GM reduction** (float64): each particle is `(u, g, q)`; "
        f"`u(0)` at {cfg.quantiles} "
        "stratified normal quantiles and `q` at its mean (exact for every feature, see "
        "`nsjax.sweeps.QuantileReducedGM`), so p̂ is a quadrature with error ≤ "
        f"{0.5 / cfg.quantiles:.1e}: the criterion |p̂−p| ≤ 0.01, |σ̂²/σ²−1| ≤ 0.02 is applied "
        "as is (the `*_stderr` fields of these rows are Monte-Carlo-equivalent and overstate "
        "the error).",
        "- **Full particles** (float32): error bars are ensemble standard errors; the "
        "criterion allows two of them (`error ≤ tol + 2·stderr`).",
        "- Steps to tolerance: smallest N = 2^k (k ≥ 1) that meets the criterion; `—` = not "
        f"reached up to N = {cfg.max_steps_paper} (paper schedules) / "
        f"{cfg.max_steps_standard} (standard). Slopes: least squares of log N on log d over "
        "the d where N was found (the fit range).",
        "- Standard schedules (docs/theory.md §5) by SNR matching; their ends: start from pure noise "
        "α(τ_min)·x0 (the signal β(τ_min)·x1 is dropped), final denoising step when τ_max < 1. "
        "`*-scaled`: σ_max = √(d(4+2σ²)) ≈ the largest pairwise distance of the data "
        "(Song & Ermon's rule); otherwise the published σ_max (VE-SDE 348, EDM 80).",
        "",
    ]


def _dichotomy(res: Results) -> list[str]:
    dich = res.dichotomy
    lines = [
        "## The dichotomy (exact reduction)",
        "",
        f"d = {dich.d:.0e}, N = {dich.N}, {dich.solver}:",
        "",
        "| schedule | p̂ | |p̂−p| | σ̂²/σ² | p ok | σ² ok |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in dich.rows.items():
        lines.append(
            f"| {name} | {r.p_hat:.4f} | {r.p_error:.2e} | "
            f"{r.sigma2_ratio:.4f} | {'yes' if r.p_ok else 'no'} | "
            f"{'yes' if r.sigma2_ok else 'no'} |"
        )
    cw = dich.cw
    if cw is not None and cw.rows:
        lines += [
            "",
            f"Curie–Weiss (full particles, {cw.particles} per schedule), d = {cw.d:.0e}, "
            f"N = {cw.N} (the largest table N below √d/κ), {cw.solver}; spread = "
            "mean_i (x_i − M)², reference 1 − E[M²] from the exact law of S; p ok: "
            "|p̂−p| ≤ 0.01 + 2 binomial standard errors; spread ok: |ŝ/s − 1| ≤ "
            f"{SPREAD_TOL:g} + 2 stderr/s:",
            "",
            "| schedule | p̂ | |p̂−p| | spread/ref | p ok | spread ok |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in cw.rows.items():
            lines.append(
                f"| {name} | {r.p_hat:.4f} | {r.p_error:.2e} | {r.spread_ratio:.4g} | "
                f"{'yes' if r.p_ok else 'no'} | {'yes' if r.spread_ok else 'no'} |"
            )
    return lines + ["", dichotomy_verdict(dich), ""]


def _steps(res: Results) -> list[str]:
    cfg, notes, paper, std = res.config, res.notes, res.paper, res.standard
    lines = ["## Steps versus dimension (exact reduction)", ""]
    lines += _steps_table(paper.steps_to_tolerance, paper.slope, paper.slope_fit_range, cfg.reduction_dims)
    lines += ["", "![steps versus dimension](fig3_steps_vs_dimension.png)", ""]
    lines += list(notes.steps) + [""]
    if std is not None and std.steps_to_tolerance:
        lines += ["### Standard schedules (what they cost at this tolerance)", ""]
        lines += _steps_table(std.steps_to_tolerance, std.slope, std.slope_fit_range, cfg.reduction_dims)
        lines += [""] + list(notes.standard) + [""]
    if res.split is not None:
        from .standard_split import report_lines

        lines += report_lines(res.split)
    return lines


def _particles(res: Results) -> list[str]:
    lines = ["## Full particles: steps to tolerance for N in {5, 10, 20, 50, 100, 200}", ""]
    for study in (res.gm_particles, res.cw_particles):
        table = study.steps_to_tolerance
        dims = sorted({float(d) for t in table.values() for d in t})
        if not dims:
            continue
        criterion = (
            "|p̂−p| ≤ 0.01, |σ̂²/σ²−1| ≤ 0.02"
            if study.target == "gm"
            else "|p̂−P(M>0)| ≤ 0.01, |m̂_abs/E|M|−1| ≤ 0.02, |spread/(1−E[M²])−1| ≤ "
            f"{SPREAD_TOL:g}, exact finite-d references"
        )
        lines += [f"**{study.target.upper()}** (criterion: {criterion}, each + 2 stderr):", ""]
        lines += _steps_table(table, {}, {}, dims) + [""]
    return lines


def _feature_tables(res: Results) -> list[str]:
    lines = ["## Feature tables (excerpt; all rows in results.json)", ""]
    tables: tuple[tuple[str, tuple[str, ...], Sequence[FeatureRow]], ...] = (
        ("gm_reduction", ("sigma2",), [r for s in res.reductions for r in s.rows]),
        ("gm_particles", ("sigma2",), res.gm_particles.rows),
        ("cw_particles", ("m_abs", "spread"), res.cw_particles.rows),
    )
    for tname, feats, rows in tables:
        if not rows:
            continue
        dmax = max(r.d for r in rows) if tname != "gm_reduction" else 1e6
        lines += [
            f"**{tname}**, d = {dmax:.0e}:",
            "",
            "| schedule | solver | N | p̂ ± se | "
            + " | ".join(f"{feat}_hat ± se" for feat in feats)
            + " | p err | "
            + " | ".join(f"{feat} err" for feat in feats)
            + " |",
            "|---|---|---|---|" + "---|" * (2 * len(feats) + 1),
        ]
        for r in rows:
            if r.d != dmax or r.N not in (10, 50, 200):
                continue
            f = r.features
            lines.append(
                f"| {r.schedule} | {r.solver} | {r.N} | "
                f"{f['p_hat']:.4f} ± {f['p_stderr']:.4f} | "
                + "".join(f"{f[f'{feat}_hat']:.4f} ± {f[f'{feat}_stderr']:.4f} | " for feat in feats)
                + f"{f['p_error']:.2e} | "
                + "".join(f"{f[f'{feat}_error']:.2e} | " for feat in feats).rstrip(" ")
            )
        lines.append("")
    lines += ["![feature error](fig4_feature_error.png)", ""]
    if res.cw_particles.rows:
        lines += ["![feature error, Curie–Weiss](fig4b_feature_error_cw.png)", ""]
    return lines


def _adaptive(res: Results) -> list[str]:
    cfg, ad = res.config, res.adaptive
    if not ad.nfe:
        return []
    dims = cfg.reduction_dims
    lines = [
        f"## Adaptive solvers (PID, rtol = {cfg.rtol:g}, atol = {cfg.atol:g})",
        "",
        "Mean NFE per particle (✓: the adaptive solve met the feature tolerance):",
        "",
        "| schedule/solver | " + " | ".join(f"{d:.0e}" for d in dims) + " | slope |",
        "|" + "---|" * (len(dims) + 2),
    ]
    ok = {(r.schedule, r.solver, r.d): r.within_tolerance for r in ad.rows}
    for key, table in ad.nfe.items():
        name, solver = key.split("/")
        cells = []
        for d in dims:
            v = table.get(dim_key(d))
            cells.append("—" if v is None else f"{v:.0f}{' ✓' if ok.get((name, solver, d)) else ' ✗'}")
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {fmt(ad.slope.get(key))} |")
    return lines + ["", "![adaptive NFE](fig5_adaptive_nfe.png)", ""] + list(res.notes.adaptive) + [""]


def _paper_figures(res: Results) -> list[str]:
    lines = ["## Figures 1 and 2 of the paper", "", "![figure 1](fig1_schedules.png)", ""]
    w = res.figure1.window
    lines += [
        "Fraction of sampler time t spent with τ√d ≤ 3κ (the speciation window), d = 256²: "
        + ", ".join(f"{k} {v:.3f}" for k, v in w.items())
        + ".",
        "",
    ]
    lines += ["![figure 2](fig2_paths.png)", ""]
    for label, f2 in res.figure2.panels.items():
        lines.append(
            f"- {label}, d = {f2.d:.0e}: {f2.realizations} realizations, fraction "
            f"ending with M > 0: {f2.fraction_positive:.2f}, mean |M_1| "
            f"{f2.final_overlap_mean_abs:.3f} ({f2.seconds:.1f} s)."
        )
    return lines + [""]


def _closing(res: Results) -> list[str]:
    lines = []
    sv = res.loop
    if sv is not None:
        lines += [
            "## Closing note: compiled sweeps versus a Python loop",
            "",
            f"The paper-schedule reduction sweeps ran {sv.sweep_runs} ensembles "
            f"({sv.particles_per_run} particles each, all N and d) in "
            f"{sv.sweep_seconds:.1f} s "
            "with one compilation per solver. A loop of single `nsjax.sample` runs recompiles "
            "for every new d or N (static shapes): measured "
            f"{sv.loop_seconds_per_run:.2f} s per run over {len(sv.runs)} runs, "
            f"so ≈ {sv.loop_seconds_estimated:.0f} s for the same ensembles: speed-up "
            f"**≈ {sv.speedup:.0f}×**.",
            "",
        ]
    lines += ["## Runtime", "", "| part | seconds |", "|---|---|"]
    for k, v in res.runtime.items():
        lines.append(f"| {k.removesuffix('_s')} | {v:.1f} |")
    return lines


def _solver_study(res: Results) -> list[str]:
    """The schedule x solver table: NFE to tolerance per ``d``, dimension-free pairs, and the
    VP/VE dichotomy per solver."""
    st = res.solvers
    if st is None:
        return []
    from .studies import DICHOTOMY_STEPS

    dims = [dim_key(d) for d in st.dims]
    lines = ["## Schedule x solver (exact reduction, NFE to tolerance)", ""]
    lines.append("| schedule/solver | " + " | ".join(f"d = {float(d):.0e}" for d in dims) + " | dimension-free |")
    lines.append("|---" * (len(dims) + 2) + "|")
    for key, table in st.nfe_to_tolerance.items():
        cells = [f"{table[d]:.0f}" if table.get(d) is not None else "—" for d in dims]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {'yes' if st.flat[key] else 'no'} |")
    lines += ["", "Dimension-free: the tolerance met at every d with max NFE <= 1.5 min NFE.", ""]
    flat = [k for k, v in st.flat.items() if v]
    lines.append("Dimension-free pairs: " + (", ".join(flat) if flat else "none") + ".")
    lines.append("")
    for solver, ok in st.survives.items():
        rows = st.dichotomy.get(solver, {})
        desc = ", ".join(f"{k}: p {'ok' if v[0] else 'missed'}, σ² {'ok' if v[1] else 'missed'}" for k, v in rows.items())
        verdict = "survives" if ok else "does not survive" if ok is not None else "not measured"
        lines.append(f"- {solver}: the VP/VE dichotomy {verdict} (d = {max(st.dims):.0e}, N = {DICHOTOMY_STEPS}: {desc}).")
    return lines + [""]


def _tolerance(res: Results) -> list[str]:
    """The tolerance study's section (:func:`nsjax.experiments.tolerance.report_lines`)."""
    if getattr(res, "tolerance", None) is None:
        return []
    from .tolerance import report_lines

    return report_lines(res.tolerance)
def _learned(res: Results) -> list[str]:
    if res.learned is None:
        return []
    from .learned import report_lines

    return report_lines(res.learned)


def _cw_reduced(res: Results) -> list[str]:
    if res.cw_reduced is None:
        return []
    from .cw_reduced import report_lines

    return report_lines(res.cw_reduced)


def render(res: Results) -> str:
    """The report: method, dichotomy, steps versus ``d``, particles, feature tables, adaptive
    solvers, Figures 1-2, sweep versus loop, runtime."""
    parts = (
        _method,
        _dichotomy,
        _steps,
        _particles,
        _feature_tables,
        _adaptive,
        _solver_study,
        _tolerance,
        _learned,
        _cw_reduced,
        _paper_figures,
        _closing,
    )
    return "\n".join(line for part in parts for line in part(res)) + "\n"


def write_report(res: Results, folder: str) -> str:
    """Write :func:`render` to ``folder/report.md``; returns the path."""
    path = os.path.join(folder, "report.md")
    with open(path, "w") as handle:
        handle.write(render(res))
    return path
