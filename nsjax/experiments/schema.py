"""The schema of results.json and :func:`validate`.

The schema is a tree of small specs (:class:`Record`, :class:`Map`, :class:`List`, :class:`Opt`
and the scalars ``INT``, ``NUM``, ``STR``, ``BOOL``); :func:`validate` walks a loaded document
against :data:`RESULTS` and raises ``ValueError`` naming the first path that does not fit.
Records are closed: a key that the schema does not list is an error, so any change of the
document's structure is a change of this file and of :data:`SCHEMA_VERSION`.

Keys of a step table are ``"<schedule>/<solver>"`` then the dimension as an integer string
(``steps_to_tolerance["vp/heun"]["1000000"]``); ``None`` means not reached (steps) or not fitted
(slopes), or a non-finite number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "RESULTS", "Record", "Map", "List", "Opt", "validate"]

SCHEMA_VERSION = 1


class _Spec:
    def check(self, value: Any, path: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _fail(path: str, expected: str, value: Any) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise ValueError(f"results.json{path or ''}: expected {expected}, got {shown}")


@dataclass(frozen=True)
class _Scalar(_Spec):
    name: str
    types: tuple[type, ...]

    def check(self, value, path):
        if isinstance(value, bool) and bool not in self.types:
            _fail(path, self.name, value)
        if not isinstance(value, self.types):
            _fail(path, self.name, value)


INT = _Scalar("an integer", (int,))
NUM = _Scalar("a number", (int, float))
STR = _Scalar("a string", (str,))
BOOL = _Scalar("a boolean", (bool,))


@dataclass(frozen=True)
class Opt(_Spec):
    """``spec`` or ``None``."""

    spec: _Spec

    def check(self, value, path):
        if value is not None:
            self.spec.check(value, path)


@dataclass(frozen=True)
class List(_Spec):
    """A list of ``item``; ``length``: exact length if given, ``min_length`` at least."""

    item: _Spec
    length: int | None = None
    min_length: int = 0

    def check(self, value, path):
        if not isinstance(value, list):
            _fail(path, "a list", value)
        if self.length is not None and len(value) != self.length:
            _fail(path, f"a list of length {self.length}", value)
        if len(value) < self.min_length:
            _fail(path, f"a list of at least {self.min_length} items", value)
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]")


@dataclass(frozen=True)
class Map(_Spec):
    """An object with any keys matching ``key`` (a regular expression) and ``value`` values."""

    value: _Spec
    key: str = r".+"

    def check(self, value, path):
        if not isinstance(value, dict):
            _fail(path, "an object", value)
        for k, v in value.items():
            if not re.fullmatch(self.key, k):
                _fail(f"{path}[{k!r}]", f"a key matching {self.key!r}", k)
            self.value.check(v, f"{path}[{k!r}]")


@dataclass(frozen=True)
class Record(_Spec):
    """An object with the ``required`` keys, maybe the ``optional`` ones, and ``extra`` (a spec
    of any other key's value; ``None``: no other key)."""

    required: Mapping[str, _Spec]
    optional: Mapping[str, _Spec] = field(default_factory=dict)
    extra: _Spec | None = None

    def check(self, value, path):
        if not isinstance(value, dict):
            _fail(path, "an object", value)
        for k in self.required:
            if k not in value:
                _fail(path, f"an object with key {k!r}", sorted(value))
        for k, v in value.items():
            if k in self.required:
                spec = self.required[k]
            else:
                spec = self.optional[k] if k in self.optional else self.extra
            if spec is None:
                _fail(f"{path}[{k!r}]", "no such key (not in the schema)", k)
            spec.check(v, f"{path}[{k!r}]")


# -- results.json ---
DIM = r"[0-9]+"
"""A dimension key: ``str(int(round(d)))``."""
RUN = r"[^/]+/[^/]+"
"""A ``"<schedule>/<solver>"`` key."""

STEPS = Map(Map(Opt(INT), DIM), RUN)
SLOPES = Map(Opt(NUM), RUN)
SPANS = Map(Opt(List(NUM, length=2)), RUN)
TIMING = Record({"first_call_s": NUM, "runs": INT}, {"total_s": NUM, "particles": INT})
FEATURE_ROW = Record(
    {
        "schedule": STR,
        "solver": STR,
        "d": NUM,
        "N": INT,
        "nfe": NUM,
        "nonfinite": INT,
        "p_hat": Opt(NUM),
        "p_ref": Opt(NUM),
        "p_stderr": Opt(NUM),
        "p_error": Opt(NUM),
    },
    extra=Opt(NUM),  # sigma2_* (GM), m_abs_*, spread_* and spin_error_* (CW)
)
_SERIES = Map(Map(List(Opt(NUM)), DIM))
TOLERANCE_STUDY = Record(
    {
        "p": NUM,
        "sigma2": NUM,
        "kappa": NUM,
        "eps": List(NUM, min_length=1),
        "s2_ratio": NUM,
        "steps": List(INT, min_length=1),
        "dims": List(NUM),
        "vs_d_dims": List(NUM),
        "fixed_steps": INT,
        "p_error": _SERIES,
        "sigma2_error": _SERIES,
        "steps_to_eps": Map(Map(Map(Opt(INT)), DIM)),
        "floor": List(
            Record(
                {"kappa": NUM, "sigma2": NUM, "d": NUM, "steps": List(INT), "ratio": List(Opt(NUM))},
                extra=Opt(NUM),  # a_fit, b_fit, c_fit, a_pred, b_pred
            )
        ),
        "heun": Opt(
            Record(
                {
                    "kappa": NUM,
                    "sigma2": NUM,
                    "d": List(NUM),
                    "steps": List(INT),
                    "sigma2_hat": List(Opt(NUM)),
                    "formula": List(Opt(NUM)),
                },
                extra=Opt(NUM),  # alpha, beta, C_fit, C_pred, max_formula_deviation
            )
        ),
        "trig_steps": Map(Map(Opt(INT), DIM)),
        "trig_dims": List(NUM),
        "seconds": Map(NUM),
    }
)
"""The ``tolerance_study`` entry (:class:`nsjax.experiments.tolerance.ToleranceStudy`)."""
CONFIG = Record(
    {
        "mode": STR,
        "p": NUM,
        "sigma2": NUM,
        "kappa": NUM,
        "theta": NUM,
        "h": NUM,
        "reduction_dims": List(NUM, min_length=1),
        "quantiles": INT,
        "max_steps_paper": INT,
        "max_steps_standard": INT,
        "standard": BOOL,
        "kappa_check": BOOL,
        "solvers": List(STR, min_length=1),
        "adaptive_solvers": List(STR),
        "adaptive_standard": BOOL,
        "rtol": NUM,
        "atol": NUM,
        "gm_particle_dims": List(INT),
        "cw_particle_dims": List(INT),
        "particles": Map(INT, DIM),
        "particle_solvers": List(STR),
        "cw_posterior": STR,
        "fig2_gm_dim": INT,
        "fig2_cw_dim": INT,
        "fig2_realizations": INT,
        "fig1_dim": INT,
        "loop_runs": INT,
        "seed": INT,
    },
    {
        "solver_study_solvers": List(STR),
        "solver_study_standard": BOOL,
        "solver_study_dims": List(NUM),
        "solver_study_quantiles": INT,
        "solver_study_max_steps": INT,
        "tolerance": BOOL,
        "tolerance_solvers": List(STR),
        "tolerance_dims": List(NUM),
        "tolerance_vs_d_dims": List(NUM),
        "tolerance_fixed_steps": INT,
        "tolerance_max_steps": INT,
        "floor_kappas": List(NUM),
        "floor_sigma2s": List(NUM),
        "floor_dim": NUM,
        "heun_growth_dims": List(NUM),
        "trig_solvers": List(STR),
        "trig_dims": List(NUM),
        "split": BOOL,
        "cw_reduced_dims": List(NUM),
        "cw_reduced_quantiles": INT,
        "cw_reduced_nodes": INT,
        "cw_reduced_max_steps": INT,
        "cw_reduced_limit_steps": INT,
        "split_dims": List(NUM),
        "split_quantiles": INT,
        "learned_files": List(STR),
        "learned_per_d": List(STR),
        "learned_dir": STR,
        "learned_dims": List(NUM),
        "learned_gm_targets": List(List(NUM, length=2)),
        "learned_quantiles": INT,
        "learned_max_steps": INT,
        "learned_kmode_dim": INT,
        "learned_kmode_particles": INT,
    },
)
LEARNED = Record(
    {
        "dims": List(NUM, min_length=1),
        "files": Map(
            Record(
                {
                    "file": STR,
                    "noise": STR,
                    "solver": Opt(STR),
                    "steps": Opt(INT),
                    "nfe": Opt(NUM),
                    "kappa": NUM,
                    "dims": List(NUM),
                    "target": Opt(STR),
                }
            )
        ),
        "rows": List(
            Record(
                {
                    "schedule": STR,
                    "solver": STR,
                    "target": STR,
                    "d": NUM,
                    "N": INT,
                    "nfe": NUM,
                    "error": Opt(NUM),
                    "passed": BOOL,
                    "p_error": Opt(NUM),
                    "sigma2_error": Opt(NUM),
                }
            )
        ),
        "steps_to_tolerance": STEPS,
        "nfe_to_tolerance": Map(Map(Opt(NUM), DIM), RUN),
        "transfer": Map(Map(Opt(NUM), r".+@[0-9]+"), RUN),
        "shapes": Map(
            Record(
                {
                    "s": List(NUM, min_length=2),
                    "d": Map(Record({"phase1": List(NUM), "phase2": List(NUM)}), DIM),
                }
            )
        ),
        "convergence": Map(Opt(NUM), r"[0-9]+->[0-9]+"),
        "seconds": NUM,
    }
)
"""The ``learned`` entry (:class:`nsjax.experiments.learned.LearnedStudy`)."""
_CW_FEATURES = {"schedule": STR, "solver": STR, "d": NUM, "p_hat": NUM, "p_error": NUM,
                "m_abs_ratio": NUM, "spread_ratio": NUM}
CW_REDUCED = Record(
    {
        "dims": List(NUM),
        "max_steps": INT,
        "quantiles": INT,
        "nodes": INT,
        "steps": Map(Map(Opt(INT)), RUN),
        "rows": List(Record({**_CW_FEATURES, "N": INT, "ok": BOOL})),
        "limit": List(Record(_CW_FEATURES)),
        "limit_steps": INT,
        "seconds": NUM,
    }
)
RESULTS = Record(
    {
        "schema_version": INT,
        "config": CONFIG,
        "machine": STR,
        "tolerance": Record(
            {"p": NUM, "sigma2_relative": NUM, "m_abs_relative": NUM}, {"spread_relative": NUM}
        ),
        "steps_to_tolerance": STEPS,
        "slope": SLOPES,
        "slope_fit_range": SPANS,
        "max_steps_searched": Record({"paper": INT}, {"standard": INT, "kappa": INT}),
        "steps_to_tolerance_particles": Record({"gm": STEPS, "cw": STEPS}),
        "feature_tables": Record(
            {
                "gm_reduction": List(FEATURE_ROW, min_length=1),
                "gm_particles": List(FEATURE_ROW),
                "cw_particles": List(FEATURE_ROW),
            }
        ),
        "adaptive": Record(
            {
                "nfe": Map(Map(NUM, DIM), RUN),
                "rows": List(
                    Record(
                        {
                            "schedule": STR,
                            "solver": STR,
                            "d": NUM,
                            "nfe_mean": NUM,
                            "nfe_max": INT,
                            "p_error": Opt(NUM),
                            "sigma2_error": Opt(NUM),
                            "within_tolerance": BOOL,
                            "nonfinite": INT,
                        }
                    )
                ),
                "slope": SLOPES,
                "slope_fit_range": SPANS,
                "rtol": NUM,
                "atol": NUM,
            }
        ),
        "figure1": Record(
            {"d": INT, "fraction_of_t_in_speciation_window": Map(NUM)},
        ),
        "figure2": Map(
            Record(
                {
                    "d": INT,
                    "realizations": INT,
                    "fraction_positive": NUM,
                    "final_overlap_mean_abs": Opt(NUM),
                    "seconds": NUM,
                }
            ),
            r"GM|CW",
        ),
        "runtime": Record({"total_s": NUM}, extra=NUM),
        "sweep_runtime": Map(TIMING),
        "notes": Record({"steps": List(STR), "standard": List(STR), "adaptive": List(STR)}),
        "figures": List(STR, min_length=1),
        "dichotomy": Record(
            {
                "d": NUM,
                "N": INT,
                "solver": STR,
                "rows": Map(
                    Record(
                        {
                            "p_hat": Opt(NUM),
                            "p_error": Opt(NUM),
                            "sigma2_ratio": Opt(NUM),
                            "p_ok": BOOL,
                            "sigma2_ok": BOOL,
                        }
                    )
                ),
                "agrees": Map(BOOL),
                "verdict": STR,
            },
            {
                "cw": Record(
                    {
                        "d": NUM,
                        "N": INT,
                        "solver": STR,
                        "particles": INT,
                        "rows": Map(
                            Record(
                                {
                                    "p_hat": Opt(NUM),
                                    "p_error": Opt(NUM),
                                    "spread_ratio": Opt(NUM),
                                    "p_ok": BOOL,
                                    "spread_ok": BOOL,
                                }
                            )
                        ),
                        "agrees": Map(BOOL),
                    }
                )
            },
        ),
    },
    optional={
        "tolerance_study": TOLERANCE_STUDY,
        "standard_split": Record(
            {
                "dims": List(NUM, min_length=1),
                "max_steps": INT,
                "solvers": List(STR, min_length=1),
                "steps_to_tolerance": STEPS,
                "slope": SLOPES,
                "final_errors": Map(Map(List(Opt(NUM), length=2), DIM), RUN),
                "signal_to_noise": Map(Map(NUM, DIM)),
                "attribution": Map(STR, RUN),
                "timings": Map(TIMING),
            }
        ),
        "learned": LEARNED,
        "cw_reduced": CW_REDUCED,
        "solver_study": Record(
            {
                "dims": List(NUM, min_length=1),
                "nfe_to_tolerance": Map(Map(Opt(NUM), DIM), RUN),
                "steps_to_tolerance": STEPS,
                "flat": Map(BOOL, RUN),
                "dichotomy": Map(Map(List(BOOL, length=2))),
                "survives": Map(Opt(BOOL)),
                "timings": Map(TIMING),
            }
        ),
        "kappa_check": Record(
            {
                "kappas": List(NUM, min_length=1),
                "steps_to_tolerance": STEPS,
                "slope": SLOPES,
                "slope_fit_range": SPANS,
            }
        ),
        "sweep_vs_loop": Record(
            {
                "loop_runs_measured": INT,
                "loop_seconds_per_run": NUM,
                "loop_runs": List(
                    Record({"schedule": STR, "d": NUM, "N": INT, "solver": STR, "seconds": NUM})
                ),
                "sweep_runs": INT,
                "sweep_seconds": NUM,
                "loop_seconds_estimated": NUM,
                "speedup": Opt(NUM),
                "particles_per_run": INT,
            }
        ),
    },
)
"""The schema of results.json (version :data:`SCHEMA_VERSION`)."""


def validate(results: Mapping[str, Any]) -> None:
    """Check a loaded results.json against :data:`RESULTS`.

    Beyond the structure: ``schema_version == SCHEMA_VERSION``, and ``slope`` and
    ``slope_fit_range`` have one entry per ``steps_to_tolerance`` table.

    Raises:
        ValueError: naming the first path that does not fit, and what was expected there.
    """
    RESULTS.check(results, "")
    if results["schema_version"] != SCHEMA_VERSION:
        _fail("['schema_version']", f"{SCHEMA_VERSION}", results["schema_version"])
    tables = set(results["steps_to_tolerance"])
    for name in ("slope", "slope_fit_range"):
        if set(results[name]) != tables:
            _fail(f"[{name!r}]", "one entry per steps_to_tolerance table", sorted(results[name]))
