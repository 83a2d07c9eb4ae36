"""The results of one ``nsjax reproduce`` run: the typed studies and their results.json form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .config import KAPPA_CHECK, P_TOL, S2_TOL, SPREAD_TOL, Config
from .figures import Figure1, Figure2
from .schema import SCHEMA_VERSION
from .studies import (
    AdaptiveStudy,
    Dichotomy,
    LoopComparison,
    ParticleStudy,
    ReductionStudy,
    SolverStudy,
)
from .verdicts import Notes, adaptive_notes, dichotomy_verdict, standard_notes, step_notes

__all__ = ["Results", "to_plain"]


@dataclass(frozen=True)
class Results:
    """Every study of one run (``None``: the study was off in ``config``)."""

    config: Config
    machine: str
    paper: ReductionStudy
    standard: ReductionStudy | None
    kappa_check: ReductionStudy | None
    adaptive: AdaptiveStudy
    gm_particles: ParticleStudy
    cw_particles: ParticleStudy
    figure1: Figure1
    figure2: Figure2
    loop: LoopComparison | None
    dichotomy: Dichotomy
    figures: tuple[str, ...]
    """File names (in the output folder) of the figures, in the order written."""
    runtime: Mapping[str, float]
    """Wall seconds per part (``<part>_s``) and in all (``total_s``)."""
    solvers: SolverStudy | None = None
    """The schedule x solver study (``None``: off)."""
    tolerance: Any = None
    """The tolerance study (:class:`nsjax.experiments.tolerance.ToleranceStudy`; ``None``: off)."""
    split: Any = None
    """The standard schedules split (:class:`.standard_split.StandardSplitStudy`; ``None``: off)."""
    learned: Any = None
    cw_reduced: Any = None
    """The reduced-CW study (:class:`nsjax.experiments.cw_reduced.CWReducedStudy`; ``None``: off)."""
    """The learned-schedules section (:class:`nsjax.experiments.learned.LearnedStudy`; ``None``: off)."""

    @property
    def reductions(self) -> tuple[ReductionStudy, ...]:
        """The paper and standard reduction studies (the ``steps_to_tolerance`` tables)."""
        return tuple(s for s in (self.paper, self.standard) if s is not None)

    @property
    def notes(self) -> Notes:
        """Prose verdicts (:mod:`nsjax.experiments.verdicts`)."""
        cfg = self.config
        return Notes(
            steps=step_notes(cfg, self.paper, self.kappa_check),
            standard=standard_notes(cfg, self.standard),
            adaptive=adaptive_notes(cfg, self.adaptive),
        )

    def to_json(self) -> dict[str, Any]:
        """The results.json document (plain JSON types; NaN and inf as ``None``)."""
        steps, slope, span, max_steps, sweep_runtime = {}, {}, {}, {}, {}
        for study in self.reductions:
            steps.update(study.steps_to_tolerance)
            slope.update(study.slope)
            span.update(study.slope_fit_range)
        for study in (self.paper, self.standard, self.kappa_check):
            if study is not None:
                max_steps[study.kind] = study.max_steps
        for study in (
            self.paper,
            self.standard,
            self.kappa_check,
            self.adaptive,
            self.gm_particles,
            self.cw_particles,
        ):
            if study is not None:
                sweep_runtime.update({k: t.to_json() for k, t in study.timings.items()})
        notes = self.notes
        ad = self.adaptive
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "config": self.config.to_json(),
            "machine": self.machine,
            "tolerance": {
                "p": P_TOL,
                "sigma2_relative": S2_TOL,
                "m_abs_relative": S2_TOL,
                "spread_relative": SPREAD_TOL,
            },
            "steps_to_tolerance": steps,
            "slope": slope,
            "slope_fit_range": span,
            "max_steps_searched": max_steps,
            "steps_to_tolerance_particles": {
                "gm": self.gm_particles.steps_to_tolerance,
                "cw": self.cw_particles.steps_to_tolerance,
            },
            "feature_tables": {
                "gm_reduction": [r.to_json() for s in self.reductions for r in s.rows],
                "gm_particles": [r.to_json() for r in self.gm_particles.rows],
                "cw_particles": [r.to_json() for r in self.cw_particles.rows],
            },
            "adaptive": {
                "nfe": ad.nfe,
                "rows": [asdict(r) for r in ad.rows],
                "slope": ad.slope,
                "slope_fit_range": ad.slope_fit_range,
                "rtol": ad.rtol,
                "atol": ad.atol,
            },
            "figure2": {k: asdict(v) for k, v in self.figure2.panels.items()},
            "runtime": self.runtime,
            "sweep_runtime": sweep_runtime,
            "notes": {
                "steps": notes.steps,
                "standard": notes.standard,
                "adaptive": notes.adaptive,
            },
            "figures": self.figures,
        }
        if self.kappa_check is not None:
            out["kappa_check"] = {
                "kappas": KAPPA_CHECK,
                "steps_to_tolerance": self.kappa_check.steps_to_tolerance,
                "slope": self.kappa_check.slope,
                "slope_fit_range": self.kappa_check.slope_fit_range,
            }
        out["figure1"] = {
            "d": self.figure1.d,
            "fraction_of_t_in_speciation_window": self.figure1.window,
        }
        if self.loop is not None:
            lc = self.loop
            out["sweep_vs_loop"] = {
                "loop_runs_measured": len(lc.runs),
                "loop_seconds_per_run": lc.loop_seconds_per_run,
                "loop_runs": [asdict(r) for r in lc.runs],
                "sweep_runs": lc.sweep_runs,
                "sweep_seconds": lc.sweep_seconds,
                "loop_seconds_estimated": lc.loop_seconds_estimated,
                "speedup": lc.speedup,
                "particles_per_run": lc.particles_per_run,
            }
        if self.solvers is not None:
            out["solver_study"] = self.solvers.to_json()
        if self.tolerance is not None:
            out["tolerance_study"] = self.tolerance.to_json()
        if self.split is not None:
            out["standard_split"] = self.split.to_json()
        if self.learned is not None:
            out["learned"] = self.learned.to_json()
        if self.cw_reduced is not None:
            out["cw_reduced"] = self.cw_reduced.to_json()
        dich = self.dichotomy
        out["dichotomy"] = {
            "d": dich.d,
            "N": dich.N,
            "solver": dich.solver,
            "rows": {k: asdict(v) for k, v in dich.rows.items()},
            "agrees": dich.agrees,
            "verdict": dichotomy_verdict(dich),
        }
        if dich.cw is not None:
            out["dichotomy"]["cw"] = {
                "d": dich.cw.d,
                "N": dich.cw.N,
                "solver": dich.cw.solver,
                "particles": dich.cw.particles,
                "rows": {k: asdict(v) for k, v in dich.cw.rows.items()},
                "agrees": dich.cw.agrees,
            }
        return to_plain(out)


def to_plain(value: Any) -> Any:
    """JSON-safe copy: mappings to dicts (string keys), sequences to lists, numpy scalars to
    Python, NaN and inf to ``None``."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
