"""The learned schedules of ``nsjax reproduce`` (issue 11): steps to tolerance, transfer, shape.

The section loads committed schedule files (``nsjax optimize`` output, :mod:`nsjax.schedule_files`;
no optimisation here) from ``cfg.learned_dir`` (default: ``benchmarks/results/learned`` of the
checkout) and compares each with the paper's dilation of the same noise (``kappa = cfg.kappa``,
:class:`~nsjax.schedules.TwoPhase` with zero warps, which *is* the paper's linear-form dilation),
under the solver the file was trained with:

- **Steps to tolerance and error versus NFE** on the exact GM reduction (float64,
  ``cfg.learned_quantiles`` stratified quantiles: ``p_hat`` to ``0.5 / quantiles``), GM ``cfg.p``,
  ``cfg.sigma2`` at ``cfg.learned_dims``; ``N`` on :data:`~nsjax.experiments.studies.SOLVER_LADDER`
  up to ``cfg.learned_max_steps``; criterion ``|p_hat - p| <= P_TOL``,
  ``|sigma2_hat / sigma2 - 1| <= S2_TOL``.
- **Transfer matrix**: the same schedules (the files in ``cfg.learned_per_d``: one learned per
  ``d``, too) at every ``d`` and on every GM of ``cfg.learned_gm_targets`` ``(p, sigma2)``, and on
  the K-mode mixture with full particles (``cfg.learned_kmode_dim``, ``cfg.learned_kmode_particles``;
  criterion ``error <= tol + 2 stderr`` per feature, as the particle studies): steps to tolerance.
- **Shape**: ``tau(t)`` in the rescaled coordinates of the two phases, ``tau sqrt(d)`` (phase 1)
  and ``sqrt(d) (1 - tau)`` (phase 2), against the local time ``s`` of each phase, at every ``d``;
  for the per-``d`` files, the largest distance between the phase-1 curves learned at consecutive
  ``d`` (does the optimum converge to one shape as ``d`` grows?).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..features import estimate
from ..schedule_files import read_schedule
from ..targets import GaussianMixture
from . import builds
from .config import P_TOL, S2_TOL, Config
from .studies import SOLVER_LADDER, Progress, _frozen, dim_key, silent, steps_to_tolerance

__all__ = [
    "LearnedRow",
    "LearnedStudy",
    "KModeFeatures",
    "learned_dir",
    "learned_study",
    "rescaled_shapes",
    "figures",
    "report_lines",
]

DILATED = "{noise}-dilated"
"""Row name of the paper's dilation of ``noise``."""
SHAPE_POINTS = 65
"""Points of the local time ``s`` in each phase of the shape curves."""


def learned_dir(cfg: Config) -> str:
    """``cfg.learned_dir``, or ``benchmarks/results/learned`` of the checkout holding nsjax."""
    if cfg.learned_dir:
        return cfg.learned_dir
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "benchmarks", "results", "learned")


@dataclass(frozen=True)
class LearnedRow:
    """Exact (reduction) or estimated (particles) errors of one schedule at one setting and ``N``."""

    schedule: str
    solver: str
    target: str
    """``gm(p=..,sigma2=..)`` or ``kmode``."""
    d: float
    N: int
    nfe: float
    error: float | None
    """``max_f |error_f| / tol_f`` (``None``: not finite)."""
    passed: bool
    p_error: float | None = None
    sigma2_error: float | None = None


@dataclass(frozen=True)
class LearnedStudy:
    """What :func:`learned_study` measured (mappings read-only)."""

    dims: tuple[float, ...]
    files: Mapping[str, Mapping[str, Any]]
    """``{schedule name: {file, noise, solver, steps, nfe, kappa, dims}}`` of the loaded files."""
    rows: tuple[LearnedRow, ...]
    steps_to_tolerance: Mapping[str, Mapping[str, int | None]]
    """``{"<schedule>/<solver>": {d: N}}`` on the GM of ``cfg`` (``None``: not reached)."""
    nfe_to_tolerance: Mapping[str, Mapping[str, float | None]]
    transfer: Mapping[str, Mapping[str, float | None]]
    """``{"<schedule>/<solver>": {"<target>@<d>": NFE to tolerance}}``."""
    shapes: Mapping[str, Mapping[str, Any]]
    """``{schedule: {"s": [...], "d": {d: {"phase1": tau sqrt(d), "phase2": sqrt(d)(1 - tau)}}}}``."""
    convergence: Mapping[str, float | None]
    """``{"<d_i>-><d_j>": max_s |F_i(s) - F_j(s)| / max_s F_j}`` of the phase-1 rescaled curves
    (VP) of the files learned at single consecutive ``d``."""
    seconds: float

    def to_json(self) -> dict:
        return {
            "dims": list(self.dims),
            "files": {k: dict(v) for k, v in self.files.items()},
            "rows": [asdict(r) for r in self.rows],
            "steps_to_tolerance": {k: dict(v) for k, v in self.steps_to_tolerance.items()},
            "nfe_to_tolerance": {k: dict(v) for k, v in self.nfe_to_tolerance.items()},
            "transfer": {k: dict(v) for k, v in self.transfer.items()},
            "shapes": {
                k: {"s": list(v["s"]), "d": {d: {p: list(c) for p, c in t.items()} for d, t in v["d"].items()}}
                for k, v in self.shapes.items()
            },
            "convergence": dict(self.convergence),
            "seconds": self.seconds,
        }


# -- loading ---------------------------------------------------------------------------------------
def _load(cfg: Config) -> dict[str, dict]:
    """``{name: record}``: ``learned:<stem>`` of ``cfg.learned_files`` and ``cfg.learned_per_d``."""
    folder = learned_dir(cfg)
    out = {}
    for name in tuple(cfg.learned_files) + tuple(cfg.learned_per_d):
        path = name if os.path.isabs(name) else os.path.join(folder, name)
        if not os.path.exists(path):
            raise ValueError(
                f"learned_files: schedule file {path!r} does not exist (set learned_dir to the "
                "folder of the committed files, benchmarks/results/learned, or learned_files=())"
            )
        record = read_schedule(path)
        record["_path"] = path
        out[f"learned:{os.path.splitext(os.path.basename(path))[0]}"] = record
    return out


def _dilated(noise: str, cfg: Config, num: int, split: float) -> dict:
    return {"noise": noise, "log_kappa": math.log(cfg.kappa), "first": [0.0] * num, "second": [0.0] * num,
            "split": split}


def _columns(record: Mapping, num: int) -> dict[str, float]:
    pad = lambda v: list(v) + [0.0] * (num - len(v))  # noqa: E731 (zero Legendre terms: the same warp)
    cols = {"log_kappa": record["log_kappa"]}
    cols.update({f"a{k}": v for k, v in enumerate(pad(record["first"]))})
    cols.update({f"b{k}": v for k, v in enumerate(pad(record["second"]))})
    return cols


def _gm_label(p: float, sigma2: float) -> str:
    return f"gm(p={p:g},sigma2={sigma2:g})"


def _groups(cfg: Config, records: Mapping[str, dict]):
    """``{(noise, solver, split): {name: record}}``: each group one compiled sweep, the paper's
    dilation of the noise added (same solver)."""
    groups: dict[tuple, dict] = {}
    for name, rec in records.items():
        solver = rec.get("solver") or "heun"
        groups.setdefault((rec["noise"], solver, float(rec["split"])), {})[name] = rec
    for (noise, _, split), members in groups.items():
        num = max(len(r["first"]) for r in members.values())
        members[DILATED.format(noise=noise)] = _dilated(noise, cfg, num, split)
    return groups


def _error(f: Mapping[str, float], two_stderr: bool = False) -> tuple[float | None, bool]:
    """``(max_f |error_f| / tol_f, passed)``; ``two_stderr``: each error may exceed its tolerance
    by two standard errors (full particles)."""
    names = [k[: -len("_error")] for k in f if k.endswith("_error")]
    ratios, ok = [], True
    for n in names:
        tol = P_TOL if n.startswith("p") else S2_TOL
        err = abs(f[f"{n}_error"])
        ratios.append(err / tol)
        ok = ok and bool(err <= tol + (2 * f[f"{n}_stderr"] if two_stderr else 0.0))
    worst = max(ratios) if ratios else math.nan
    finite = math.isfinite(worst) and f.get("nonfinite", 0) == 0
    return (float(worst) if finite else None), bool(ok and finite)


class KModeFeatures:
    """:meth:`KModeMixture.features` with the exact reference computed once (it is a pure-Python
    quadrature of seconds): ``estimate(KModeFeatures(target), stats)``."""

    def __init__(self, target):
        self.target = target
        self.reference = target.reference()

    def features(self, stats):
        from ..features import Feature

        ref, K = self.reference, self.target.num_modes
        mode, sq_dev = np.asarray(stats["mode"]), np.asarray(stats["sq_dev"])
        out = {f"p{k}": Feature(mode == k, ref[f"p{k}"], relative=False) for k in range(K)}
        for k in range(K):
            out[f"sigma2_{k}"] = Feature(sq_dev[mode == k], ref[f"sigma2_{k}"], relative=True)
        return out


# -- the study -------------------------------------------------------------------------------------
def learned_study(cfg: Config, progress: Progress = silent) -> LearnedStudy:
    """Steps to tolerance, error versus NFE, transfer matrix and rescaled shapes of the learned
    schedule files of ``cfg`` beside the paper's dilations (see the module docstring)."""
    start = time.perf_counter()
    records = _load(cfg)
    dims = tuple(float(d) for d in cfg.learned_dims)
    gms = [(cfg.p, cfg.sigma2)] + [t for t in cfg.learned_gm_targets if tuple(t) != (cfg.p, cfg.sigma2)]
    ladder = [n for n in SOLVER_LADDER if n <= cfg.learned_max_steps]
    z = builds.quantiles(cfg.learned_quantiles)
    rows: list[LearnedRow] = []
    steps_found: dict[str, dict[str, int | None]] = {}
    nfe_found: dict[str, dict[str, float | None]] = {}
    transfer: dict[str, dict[str, float | None]] = {}
    for (noise, solver_name, split), members in _groups(cfg, records).items():
        num = max(len(r["first"]) for r in members.values())
        names, cols = [], {}
        for name, rec in members.items():
            for p, s2 in gms:
                for d in dims:
                    if math.exp(rec["log_kappa"]) >= math.sqrt(d):
                        continue
                    names.append((name, _gm_label(p, s2), p, s2, d))
                    for k, v in {**_columns(rec, num), "d": d, "p": p, "sigma2": s2}.items():
                        cols.setdefault(k, []).append(v)
        params = {k: np.asarray(v, float) for k, v in cols.items()}
        bar = progress(len(ladder), f"learned {noise} {solver_name}")
        passed = np.zeros((len(ladder), len(names)), bool)
        nfe = np.zeros((len(ladder), len(names)))

        def stop(i, result, names=names, passed=passed, nfe=nfe, solver_name=solver_name):
            for g, (name, label, p, s2, d) in enumerate(names):
                target = GaussianMixture(dim=int(round(d)), p=p, sigma2=s2)
                f = estimate(target, result.point(i, g), allow_empty=True)
                f["nonfinite"] = int(result.nonfinite[i, g])
                error, ok = _error(f)
                passed[i, g], nfe[i, g] = ok, float(result.nfe[i, g].mean())
                rows.append(LearnedRow(name, solver_name, label, d, ladder[i], nfe[i, g], error, ok,
                                       _finite(f["p_error"]), _finite(f["sigma2_error"])))
            return bool(passed[: i + 1].any(0).all())

        builds.ladder_sweep(builds.LearnedBuild(noise, split, num), params, z, ladder, solver_name, bar, stop)
        found = steps_to_tolerance(ladder, passed)
        for g, (name, label, p, s2, d) in enumerate(names):
            key, n = f"{name}/{solver_name}", found[g]
            nfe_n = float(nfe[ladder.index(n), g]) if n is not None else None
            transfer.setdefault(key, {})[f"{label}@{dim_key(d)}"] = nfe_n
            if (p, s2) == (cfg.p, cfg.sigma2):
                steps_found.setdefault(key, {})[dim_key(d)] = n
                nfe_found.setdefault(key, {})[dim_key(d)] = nfe_n
        if cfg.learned_kmode_particles and noise == "vp":
            _kmode(cfg, noise, solver_name, split, num, members, ladder, rows, transfer, progress)
    own = {float(r["dims"][0]) for r in records.values() if len(r.get("dims") or []) == 1}
    shapes, convergence = rescaled_shapes(records, sorted(set(dims) | own))
    files = {
        name: {
            "file": os.path.basename(rec["_path"]),
            "noise": rec["noise"],
            "solver": rec.get("solver"),
            "steps": rec.get("steps"),
            "nfe": rec.get("nfe"),
            "kappa": math.exp(rec["log_kappa"]),
            "dims": list(rec.get("dims") or []),
            "target": (rec.get("target") or {}).get("name"),
        }
        for name, rec in records.items()
    }
    return LearnedStudy(
        dims=dims,
        files=_frozen(files),
        rows=tuple(rows),
        steps_to_tolerance=_frozen(steps_found),
        nfe_to_tolerance=_frozen(nfe_found),
        transfer=_frozen(transfer),
        shapes=_frozen(shapes),
        convergence=_frozen(convergence),
        seconds=time.perf_counter() - start,
    )


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _kmode(cfg, noise, solver_name, split, num, members, ladder, rows, transfer, progress):
    """The K-mode column of the transfer matrix (full particles, float32, ``tol + 2 stderr``)."""
    d = cfg.learned_kmode_dim
    target = builds.kmode_target(d)
    observable = KModeFeatures(target)
    names = [n for n, r in members.items() if math.exp(r["log_kappa"]) < math.sqrt(d)]
    params = {k: np.asarray(v, float) for k, v in _stack([_columns(members[n], num) for n in names]).items()}
    params["d"] = np.full(len(names), float(d))
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.learned_kmode_particles)
    lad = [n for n in ladder if n <= 64]
    passed = np.zeros((len(lad), len(names)), bool)
    nfe = np.zeros((len(lad), len(names)))
    bar = progress(len(lad), f"learned kmode {solver_name}")

    def stop(i, result):
        for g, name in enumerate(names):
            f = estimate(observable, result.point(i, g), allow_empty=True)
            f["nonfinite"] = int(result.nonfinite[i, g])
            error, ok = _error(f, two_stderr=True)
            passed[i, g], nfe[i, g] = ok, float(result.nfe[i, g].mean())
            rows.append(LearnedRow(name, solver_name, "kmode", float(d), lad[i], nfe[i, g], error, ok))
        return bool(passed[: i + 1].any(0).all())

    builds.ladder_sweep(
        builds.LearnedBuild(noise, split, num, target), params, keys, lad, solver_name, bar, stop, dtype=jnp.float32
    )
    found = steps_to_tolerance(lad, passed)
    for g, name in enumerate(names):
        n = found[g]
        transfer.setdefault(f"{name}/{solver_name}", {})[f"kmode@{dim_key(d)}"] = (
            float(nfe[lad.index(n), g]) if n is not None else None
        )


def _stack(dicts: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for item in dicts:
        for k, v in item.items():
            out.setdefault(k, []).append(v)
    return out


def rescaled_shapes(records: Mapping[str, Mapping], dims: Sequence[float]):
    """``(shapes, convergence)`` of :class:`LearnedStudy`: each file's ``tau sqrt(d)`` on phase 1
    and ``sqrt(d)(1 - tau)`` on phase 2 against the local time ``s`` in ``[0, 1]`` of the phase, at
    each ``d`` of ``dims`` with ``kappa < sqrt(d)``; ``convergence`` compares the phase-1 curves
    of the VP files learned at one ``d`` each (``dims`` in the file: one entry), at consecutive
    ``d``, relative to the larger curve's maximum."""
    s = np.linspace(0.0, 1.0, SHAPE_POINTS)
    shapes: dict[str, dict] = {}
    with jax.enable_x64(True):
        for name, rec in records.items():
            split = float(rec["split"])
            entry: dict[str, Any] = {"s": s.tolist(), "d": {}}
            for d in dims:
                if math.exp(rec["log_kappa"]) >= math.sqrt(d):
                    continue
                _, schedule = builds.two_phase(
                    rec["noise"],
                    float(d),
                    jnp.float64(rec["log_kappa"]),
                    [jnp.float64(v) for v in rec["first"]],
                    [jnp.float64(v) for v in rec["second"]],
                    split,
                )
                one = schedule.evaluate(jnp.asarray(s * split), 0)
                two = schedule.evaluate(jnp.asarray(split + s * (1 - split)), 1)
                root = math.sqrt(d)
                entry["d"][dim_key(d)] = {
                    "phase1": (np.asarray(one.tau) * root).tolist(),
                    "phase2": (np.asarray(two.tau_c) * root).tolist(),
                }
            shapes[name] = entry
    single = sorted(
        (float(rec["dims"][0]), name)
        for name, rec in records.items()
        if rec["noise"] == "vp" and len(rec.get("dims") or []) == 1
    )
    convergence: dict[str, float | None] = {}
    for (d0, a), (d1, b) in zip(single, single[1:]):
        ca, cb = (shapes[n]["d"].get(dim_key(d)) for n, d in ((a, d0), (b, d1)))
        if ca is None or cb is None:
            convergence[f"{dim_key(d0)}->{dim_key(d1)}"] = None
            continue
        fa, fb = np.asarray(ca["phase1"]), np.asarray(cb["phase1"])
        convergence[f"{dim_key(d0)}->{dim_key(d1)}"] = float(np.max(np.abs(fa - fb)) / np.max(fb))
    return shapes, convergence


# -- figures and report ----------------------------------------------------------------------------
def figures(study: LearnedStudy, folder: str) -> tuple[str, ...]:
    """``learned_error_vs_nfe.png`` (GM of the study, one panel per noise and ``d``) and
    ``learned_shapes.png`` (the rescaled ``tau(t)``); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    gm = _gm_targets(study)[0] if study.rows else None
    noises = sorted({v["noise"] for v in study.files.values()}, key=lambda n: n != "vp")
    dims = study.dims
    fig, axes = plt.subplots(len(noises), len(dims), figsize=(3.6 * len(dims), 3.2 * len(noises)),
                             squeeze=False, sharey=True)
    for i, noise in enumerate(noises):
        names = sorted({r.schedule for r in study.rows if r.target == gm and _noise(study, r.schedule) == noise})
        for j, d in enumerate(dims):
            ax = axes[i, j]
            for name in names:
                sel = sorted((r.nfe, r.error) for r in study.rows if r.schedule == name and r.d == d and r.target == gm)
                if not sel:
                    continue
                xs, ys = zip(*[(x, min(y, 1e4) if y is not None else 1e4) for x, y in sel])
                style = {"lw": 1.0, "ls": "--"} if "dilated" in name else {"lw": 1.8}
                ax.loglog(xs, ys, marker=".", label=name.removeprefix("learned:"), **style)
            ax.axhline(1.0, color="k", lw=0.7, ls=":")
            ax.set_title(f"{noise.upper()}  d = {d:.0e}", fontsize=9)
            ax.set_xlabel("NFE")
        axes[i, 0].set_ylabel("error / tolerance")
        axes[i, -1].legend(fontsize=6)
    fig.suptitle(f"Learned schedules vs the paper's dilations, exact GM reduction ({gm})", fontsize=10)
    fig.tight_layout()
    path = os.path.join(folder, "learned_error_vs_nfe.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    cmap = plt.get_cmap("viridis")
    panels = (
        (axes[0], "vp", "phase1", "VP phase 1: τ√d (speciation window)"),
        (axes[1], "vp", "phase2", "VP phase 2: √d(1−τ)"),
        (axes[2], "ve", "phase2", "VE phase 2: √d(1−τ) (collapse window)"),
    )
    multi = [n for n, f in study.files.items() if len(f["dims"]) != 1]
    for ax, noise, phase, title in panels:
        for name, entry in study.shapes.items():
            if study.files[name]["noise"] != noise:
                continue
            own = study.files[name]["dims"]
            single = len(own) == 1
            for dkey, curves in entry["d"].items():
                if single and float(dkey) != float(own[0]):
                    continue  # a per-d file: its own d only
                color = cmap(math.log10(float(dkey)) / 13)
                ls = "-" if single else ("--", ":", "-.")[multi.index(name) % 3]
                label = f"{name.removeprefix('learned:')} d={float(dkey):.0e}"
                s_values, y = np.asarray(entry["s"]), np.asarray(curves[phase])
                keep = y > 0 if phase == "phase2" else np.ones_like(y, bool)  # log axis: tau = 1 ends
                ax.plot(s_values[keep], y[keep], ls=ls, color=color, lw=1.2, label=label)
        if phase == "phase2":
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("local time s of the phase")
        ax.legend(fontsize=5)
    fig.tight_layout()
    path = os.path.join(folder, "learned_shapes.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return tuple(paths)


def _noise(study: LearnedStudy, name: str) -> str:
    if name in study.files:
        return study.files[name]["noise"]
    return name.split("-")[0]


def _gm_targets(study: LearnedStudy) -> list[str]:
    seen: list[str] = []
    for r in study.rows:
        if r.target.startswith("gm") and r.target not in seen:
            seen.append(r.target)
    return seen


def report_lines(study: LearnedStudy) -> list[str]:
    """The report section: files, steps to tolerance, transfer matrix, shape convergence."""
    fmt = lambda v: "—" if v is None else f"{v:.0f}"  # noqa: E731
    dims = [dim_key(d) for d in study.dims]
    lines = ["## Learned schedules (exact GM reduction; transfer)", ""]
    lines += ["Files (`nsjax optimize`, loaded, not re-optimised):", ""]
    for f in study.files.values():
        lines.append(
            f"- `{f['file']}`: {f['noise'].upper()}, {f['solver']}, {f['steps']} steps ({f['nfe']} NFE), "
            f"κ = {f['kappa']:.3g}, trained on {f['target'] or 'gm'} at d = "
            + ", ".join(f"{d:.0e}" for d in f["dims"])
        )
    gm = _gm_targets(study)[0] if study.rows else "gm"
    lines += ["", f"NFE to tolerance on {gm} (smallest ladder N that passes; —: not up to the cap):", ""]
    lines.append("| schedule/solver | " + " | ".join(f"d = {float(d):.0e}" for d in dims) + " |")
    lines.append("|---" * (len(dims) + 1) + "|")
    for key, table in study.nfe_to_tolerance.items():
        lines.append(f"| {key} | " + " | ".join(fmt(table.get(d)) for d in dims) + " |")
    lines += ["", "![learned error vs NFE](learned_error_vs_nfe.png)", ""]
    columns = sorted({c for t in study.transfer.values() for c in t}, key=lambda c: (c.split("@")[0] != gm, c))
    lines += ["Transfer matrix: NFE to tolerance of each schedule on each target (GM: exact reduction; "
              "kmode: K-mode mixture, full particles, criterion + 2 stderr):", ""]
    lines.append("| schedule/solver | " + " | ".join(c.replace("@", " d=") for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for key, table in study.transfer.items():
        lines.append(f"| {key} | " + " | ".join(fmt(table.get(c)) for c in columns) + " |")
    lines += ["", "![learned shapes](learned_shapes.png)", ""]
    if study.convergence:
        pairs = ", ".join(
            f"{k.replace('->', ' → ')}: {'—' if v is None else f'{v:.3f}'}" for k, v in study.convergence.items()
        )
        lines.append(
            "Shape of the optimum (phase 1, τ√d against the phase's local time, schedules learned at one "
            f"d each): largest gap between consecutive d relative to the curve's maximum: {pairs}."
        )
    lines.append(
        "A file learned over several d has one τ√d curve in phase 1 (VP) and one √d(1−τ) curve in "
        "phase 2 (VE) at every d by construction (the two-phase parametrisation)."
    )
    return lines + [""]


def dump(study: LearnedStudy, path: str) -> None:
    """Write ``study.to_json()`` to ``path`` (debugging aid)."""
    with open(path, "w") as handle:
        json.dump(study.to_json(), handle, indent=1)
