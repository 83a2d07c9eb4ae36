"""Plots of ``nsjax reproduce`` (matplotlib, Agg backend, PNG files).

Each function takes plain numbers (from ``results.json`` or the study) and a path, and writes
one figure with labelled axes and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .config import P_TOL, S2_TOL, SPREAD_TOL  # noqa: E402

__all__ = ["schedules_figure", "paths_figure", "steps_figure", "error_figure", "adaptive_figure"]

COLORS = {
    "vp": "tab:blue",
    "ve": "tab:orange",
    "vp-dilated": "tab:green",
    "ve-dilated": "tab:red",
    "ddpm": "tab:purple",
    "vpsde": "tab:brown",
    "cosine": "tab:pink",
    "vesde": "tab:gray",
    "edm": "tab:olive",
    "vesde-scaled": "black",
    "edm-scaled": "tab:cyan",
}
MARKERS = {"euler": "o", "heun": "s", "tsit5": "^", "dopri5": "v"}


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def schedules_figure(
    curves: Mapping[str, Mapping[str, np.ndarray]], dim: int, kappa: float, path: str
) -> None:
    """Figure 1: VP schedules as ``tau(t)`` and VE schedules as ``sqrt(d)(1 - tau(t))``.

    ``curves[panel][name] = (t, y)`` with panels ``"vp"`` and ``"ve"``.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, (t, tau) in curves["vp"].items():
        positive = tau > 0  # log axis: tau = 0 points (cosine, constant VP at t = 0) left out, not clipped
        style = {"lw": 2.2, "ls": "--", "zorder": 4} if name == "ddpm" else {}
        label = f"{name} (SNR matching, nsjax)" if name in ("ddpm", "vpsde", "cosine") else name
        left.plot(t[positive], tau[positive], label=label, color=COLORS.get(name), **style)
    left.axhline(
        kappa / math.sqrt(dim),
        color="k",
        ls=":",
        lw=1,
        label=rf"$\kappa/\sqrt{{d}}$ = {kappa / math.sqrt(dim):.3g}",
    )
    left.set_yscale("log")
    left.set_ylim(kappa / math.sqrt(dim) / 20, 1.5)  # tau -> 0 at t = 0 is off the axis, not plunged
    left.set_xlabel("sampler time t")
    left.set_ylabel(r"interpolant time $\tau(t)$ (VP, c = 1)")
    left.set_title(rf"VP schedules, d = {dim:,} (speciation at $\tau\sqrt{{d}}$ = O(1))")
    left.legend(fontsize=7, title="standard schedules mapped by SNR matching (docs/theory.md §5);\n"
                "the paper's Figure 1 caption mapping was not available here", title_fontsize=6.5)
    for name, (t, noise) in curves["ve"].items():
        positive = noise > 0  # noise magnitude 0 at t = 1 (tau = 1) left out, not clipped
        label = f"{name} (SNR matching, nsjax)" if name in ("vesde", "edm") else name
        right.plot(t[positive], noise[positive], label=label, color=COLORS.get(name))
    right.axhline(1.0, color="k", ls=":", lw=1, label="noise per coordinate = 1")
    right.set_yscale("log")
    right.set_ylim(1e-3, 2 * math.sqrt(dim))
    right.set_xlabel("sampler time t")
    right.set_ylabel(r"VE noise magnitude $\sqrt{d}\,(1-\tau)$")
    right.set_title(f"VE schedules, d = {dim:,}")
    right.legend(fontsize=8)
    _save(fig, path)


def paths_figure(panels: Sequence[Mapping], path: str) -> None:
    """Figure 2: ``M_t`` of many realizations (with the paper's dashed lines), the first
    coordinates of one, and a histogram of the final ``M_1`` against the exact law, per target.

    Each panel: ``{"title", "t", "overlap" (R, T), "coords" (T, k), "t_min_coords"}`` and
    optionally ``"modes": {sign: (weight, centre, sd, z, density)}`` and ``"lines": ((value, label or None), ...)``.
    """
    fig, axes = plt.subplots(len(panels), 3, figsize=(15, 3.9 * len(panels)), squeeze=False,
                             gridspec_kw={"width_ratios": (1.2, 1.2, 0.8)})
    for row, panel in zip(axes, panels, strict=True):
        t, overlap = np.asarray(panel["t"]), np.asarray(panel["overlap"])
        for path_m in overlap:
            row[0].plot(t, path_m, lw=0.6, alpha=0.5, color="tab:blue")
        row[0].set_xlabel("sampler time t")
        row[0].set_ylabel(r"$M_t = r\cdot X_t / d$")
        row[0].set_title(f"{panel['title']}\n{overlap.shape[0]} realizations of $M_t$", fontsize=10)
        row[0].axvline(0.5, color="k", ls=":", lw=1, label="breakpoint t = 1/2")
        for value, label in panel.get("lines", ()):
            row[0].axhline(value, color="k", ls="--", lw=0.9, label=label)
        row[0].legend(fontsize=7, loc="lower left")
        keep = t >= panel.get("t_min_coords", 0.5)
        coords = np.asarray(panel["coords"])[keep]
        row[1].plot(t[keep], coords, lw=0.4, alpha=0.5)
        row[1].set_xlabel("sampler time t")
        row[1].set_ylabel(r"coordinates $X_{t,i}$")
        row[1].set_title(f"first {coords.shape[1]} coordinates of one realization", fontsize=10)
        final = overlap[:, -1]
        for sign, (w, mean, sd, z, dens) in sorted(panel.get("modes", {}).items(), reverse=True):
            color = "tab:blue" if sign > 0 else "tab:orange"
            side = final[final * sign > 0]
            label = "M > 0" if sign > 0 else "M < 0"
            if side.size:
                row[2].hist((side - mean) / sd, bins=10, density=True, alpha=0.45, color=color,
                            label=f"{label}: {side.size}/{final.size} (exact weight {w:.3f})")
            row[2].plot(z, dens, color=color, lw=1.2, label=f"exact law, {label} (centre {mean:.4g}, sd {sd:.2g})")
        row[2].set_xlabel("final (M_1 − mode centre) / mode sd (exact)")
        row[2].set_ylabel("density")
        row[2].set_title("final time, per mode: histogram vs exact law", fontsize=10)
        row[2].legend(fontsize=6.5, loc="upper left")
    _save(fig, path)


def steps_figure(
    steps: Mapping[str, Mapping[str, int | None]],
    slopes: Mapping[str, float | None],
    path: str,
    title: str,
    max_steps: int | None = None,
) -> None:
    """Smallest ``N`` reaching tolerance against ``d`` (log-log); fitted slopes in the legend.

    Every series is drawn: ``d`` where the tolerance was not reached up to ``max_steps`` are open
    markers at ``2 max_steps`` (above a dotted line at ``N_max``); a ``sqrt(d)`` guide is dashed."""
    fig, ax = plt.subplots(figsize=(10.5, 5.2))
    all_d = sorted({float(k) for table in steps.values() for k in table})
    top = 2.0 * (max_steps or max([v for t in steps.values() for v in t.values() if v] or [1]))
    for key, table in steps.items():
        name, solver = key.split("/")
        d = np.array([float(k) for k in table])
        n = np.array([top if v is None else float(v) for v in table.values()])
        hit = np.array([v is not None for v in table.values()])
        slope = slopes.get(key)
        label = f"{key} (slope {slope:.2f})" if slope is not None else f"{key}"
        if not hit.any():
            label += " — not reached"
        color = COLORS.get(name)
        marker = MARKERS.get(solver, "o")
        ax.plot(d, n, ls="-" if solver == "heun" else "--", color=color, lw=1, label=label)
        ax.scatter(d[hit], n[hit], marker=marker, color=color, s=20, zorder=3)
        ax.scatter(d[~hit], n[~hit], marker=marker, facecolors="none", edgecolors=color, s=36, zorder=3)
    if all_d:
        d = np.array(all_d)
        base = min([v for t in steps.values() for v in t.values() if v] or [1])
        ax.plot(d, base * np.sqrt(d / d[0]), color="k", ls=(0, (6, 3)), lw=1, alpha=0.6, label="√d guide")
    if max_steps:
        ax.axhline(max_steps, color="k", ls=":", lw=1)
        ax.text(0.01, 0.98, f"open markers at 2·N_max: not reached up to N_max = {max_steps}",
                transform=ax.transAxes, fontsize=7, va="top")
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("smallest N with |p̂-p| ≤ 0.01 and |σ̂²/σ²-1| ≤ 0.02")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


def error_figure(rows: Sequence[Mapping], dim: float, path: str, features: Sequence[str], title: str,
                 errorbars: bool = False) -> None:
    """Feature error against ``N`` per schedule and solver at dimension ``dim`` (log-log);
    ``errorbars``: one standard error (``*_stderr``, relative for relative errors; drawn down to
    at most the value itself on the log axis)."""
    fig, axes = plt.subplots(1, len(features), figsize=(5.5 * len(features), 4.3))
    axes = np.atleast_1d(axes)
    keys = sorted({(r["schedule"], r["solver"]) for r in rows if r["d"] == dim})
    for ax, feature in zip(axes, features, strict=True):
        for name, solver in keys:
            sel = sorted(
                (r for r in rows if r["d"] == dim and r["schedule"] == name and r["solver"] == solver),
                key=lambda r: r["N"],
            )
            n = np.array([r["N"] for r in sel], float)
            err = np.array([max(r[f"{feature}_error"], 1e-6) for r in sel])
            se = np.array([
                (r.get(f"{feature}_stderr") or 0.0) / (1.0 if feature == "p" else abs(r.get(f"{feature}_ref") or 1.0))
                for r in sel
            ])
            if errorbars:
                ax.errorbar(n, err, yerr=np.minimum(se, 0.999 * err), fmt="none", ecolor=COLORS.get(name),
                            elinewidth=0.8, capsize=2, alpha=0.7)
            ax.plot(
                n,
                err,
                marker=MARKERS.get(solver, "o"),
                ls="-" if solver == "heun" else "--",
                color=COLORS.get(name),
                label=f"{name}/{solver}",
            )
        tol = {"p": P_TOL, "spread": SPREAD_TOL}.get(feature, S2_TOL)
        ax.axhline(tol, color="k", ls=":", lw=1, label=f"tolerance {tol}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps N")
        ylabel = {
            "p": "|p̂ - p|",
            "sigma2": "|σ̂²/σ² - 1|",
            "m_abs": "|m̂/E|M| - 1|",
            "spread": "|ŝ/(1 - E[M²]) - 1|, ŝ = mean_i (x_i - M)²",
        }[feature]
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}, d = {dim:.0e}")
        ax.legend(fontsize=6.5, loc="lower left")
    _save(fig, path)


def adaptive_figure(nfe: Mapping[str, Mapping[str, float]], path: str, title: str,
                    passed: Mapping[str, Mapping[str, bool]] | None = None) -> None:
    """Mean NFE of adaptive solves against ``d`` per schedule and solver (log-log); with
    ``passed[key][d]``: filled markers met the feature tolerance, crosses did not. Legend outside."""
    fig, ax = plt.subplots(figsize=(10, 5))
    for key, table in nfe.items():
        name, solver = key.split("/")
        d = np.array([float(k) for k in table])
        y = np.array(list(table.values()), float)
        color = COLORS.get(name)
        ax.plot(d, y, ls="-" if solver == "tsit5" else "--", color=color, lw=1, label=key)
        ok = np.array([bool((passed or {}).get(key, {}).get(k, True)) for k in table])
        ax.scatter(d[ok], y[ok], marker=MARKERS.get(solver, "o"), color=color, s=20, zorder=3)
        ax.scatter(d[~ok], y[~ok], marker="x", color=color, s=40, zorder=3)
    if passed is not None:
        ax.scatter([], [], marker="o", color="gray", label="met the feature tolerance")
        ax.scatter([], [], marker="x", color="gray", label="missed it")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("mean NFE per particle")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


_VARIANT_STYLE = {"shipped": ("tab:red", "o"), "marginal": ("tab:green", "s"), "rescaled": ("tab:blue", "^")}


def split_figure(
    steps: Mapping[str, Mapping[str, int | None]],
    families: Sequence[str],
    variants: Sequence[str],
    max_steps: int,
    path: str,
) -> None:
    """Steps to tolerance against ``d`` of each standard schedule three ways (one panel per
    family; solid Heun, dashed Euler); "not reached up to N_max" drawn as open markers at
    ``2 N_max`` above a dotted line at ``N_max``."""
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 4.4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, family in zip(axes, families, strict=True):
        for key, table in steps.items():
            name, solver = key.split("/")
            variant = name[len(family) + 1:] if name.startswith(family + "-") else None
            if variant not in variants:
                continue
            color, marker = _VARIANT_STYLE.get(variant, ("k", "o"))
            d = np.array([float(k) for k in table])
            n = np.array([2.0 * max_steps if v is None else float(v) for v in table.values()])
            ls = "-" if solver == "heun" else "--"
            ax.plot(d, n, ls=ls, color=color, lw=1, alpha=0.8, label=f"{variant}/{solver}")
            hit = np.array([v is not None for v in table.values()])
            ax.scatter(d[hit], n[hit], marker=marker, color=color, s=22, zorder=3)
            ax.scatter(d[~hit], n[~hit], marker=marker, facecolors="none", edgecolors=color, s=40, zorder=3)
        ax.axhline(max_steps, color="k", ls=":", lw=1)
        ax.text(0.02, 0.97, f"open markers at 2·N_max: not reached "
                f"up to N_max = {max_steps}", transform=ax.transAxes, fontsize=6.5, va="top")
        ax.set_xscale("log")
        ax.set_yscale("log", base=2)
        ax.set_xlabel("dimension d")
        ax.set_title(family)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("smallest N with |p̂-p| ≤ 0.01 and |σ̂²/σ²-1| ≤ 0.02")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Standard schedules: shipped (pure-noise start), exact marginal start, rescaled "
                 "(zero terminal SNR / σ_max = 100√d)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
