"""The schedule x solver study of ``nsjax reproduce`` (issue 13), at a tiny size."""

import dataclasses
import types

import pytest

from nsjax.experiments import schema
from nsjax.experiments.config import config_for
from nsjax.experiments.report import _solver_study
from nsjax.experiments.studies import solver_study


@pytest.fixture(scope="module")
def study():
    cfg = dataclasses.replace(
        config_for("quick"),
        solver_study_solvers=("unipc",),
        solver_study_dims=(1e3, 1e6),
        solver_study_quantiles=256,
        solver_study_max_steps=64,
    )
    return solver_study(cfg)


@pytest.mark.x64
def test_solver_study_table(study):
    keys = set(study.nfe_to_tolerance)
    assert keys == {f"{s}/unipc" for s in ("vp", "ve", "vp-dilated", "ve-dilated")}
    # dilated VP meets the tolerance at both d; one evaluation per step for UniPC
    for d in ("1000", "1000000"):
        assert study.steps_to_tolerance["vp-dilated/unipc"][d] is not None
        assert study.nfe_to_tolerance["vp-dilated/unipc"][d] == study.steps_to_tolerance["vp-dilated/unipc"][d]
    # the constant schedules' dichotomy at d = 1e6, N = 64: VP misses p, VE misses sigma^2
    assert dict(study.dichotomy["unipc"]) == {"vp": (False, True), "ve": (True, False)}
    assert study.survives["unipc"] is True
    for key, table in study.nfe_to_tolerance.items():
        values = list(table.values())
        expected = all(v is not None for v in values) and max(values) <= 1.5 * min(values)
        assert study.flat[key] == expected


@pytest.mark.x64
def test_solver_study_json_and_report(study):
    schema.RESULTS.optional["solver_study"].check(study.to_json(), "solver_study")
    text = "\n".join(_solver_study(types.SimpleNamespace(solvers=study)))
    assert "| vp-dilated/unipc |" in text and "dichotomy survives" in text
