"""`nsjax reproduce --quick`: files, structure of results.json, and the paper's dichotomy."""

import json
import math

import numpy as np
import pytest

from nsjax.cli import main
from nsjax.experiments.schema import validate
from nsjax.reproduce import PAPER, fit_slope, steps_to_tolerance


def test_fit_slope_and_steps_to_tolerance():
    table = {str(10**k): int(2 ** (k / 2 * math.log2(10))) for k in range(3, 8)}
    slope, span = fit_slope(table)
    assert slope == pytest.approx(0.5, abs=0.02) and span == [1e3, 1e7]
    assert fit_slope({"1000": 4, "10000": None}) == (None, None)
    passed = np.array([[False, False], [True, False], [True, False]])
    assert steps_to_tolerance([2, 4, 8], passed) == [4, None]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--quick", "--out", str(folder)]) == 0
    with open(folder / "results.json") as handle:
        return folder, json.load(handle)


def test_quick_writes_report_results_and_figures(quick):
    folder, results = quick
    report = (folder / "report.md").read_text()
    assert "dichotomy" in report.lower() and "slope" in report
    assert results["figures"], "no figures listed"
    for name in results["figures"]:
        assert (folder / name).stat().st_size > 10_000, name
    # wall time is a measurement (benchmarks/), not a pass criterion: only that it was recorded
    assert all(math.isfinite(v) and v >= 0 for v in results["runtime"].values()), results["runtime"]
    assert results["runtime"]["total_s"] > 0


def test_quick_results_structure(quick):
    _, results = quick
    for name in PAPER:
        for solver in ("euler", "heun"):
            key = f"{name}/{solver}"
            assert set(results["steps_to_tolerance"][key]) == {str(10**k) for k in range(3, 10)}
            assert key in results["slope"] and key in results["slope_fit_range"]
    for table in ("gm_reduction", "gm_particles", "cw_particles"):
        rows = results["feature_tables"][table]
        assert rows and {"schedule", "solver", "d", "N", "p_hat", "p_error"} <= set(rows[0])
    assert {r["N"] for r in results["feature_tables"]["gm_reduction"]} == {5, 10, 20, 50, 100, 200}
    assert results["adaptive"]["nfe"]
    speedup = results["sweep_vs_loop"]["speedup"]  # a measurement: recorded and finite, not > 1
    assert speedup is not None and math.isfinite(speedup) and speedup > 0


def test_quick_reproduces_the_dichotomy(quick):
    _, results = quick
    rows = results["dichotomy"]["rows"]
    assert (rows["vp"]["p_ok"], rows["vp"]["sigma2_ok"]) == (False, True)
    assert (rows["ve"]["p_ok"], rows["ve"]["sigma2_ok"]) == (True, False)
    assert rows["vp-dilated"]["p_ok"] and rows["vp-dilated"]["sigma2_ok"]
    assert rows["ve-dilated"]["p_ok"]


def test_quick_steps_grow_like_sqrt_d_for_constant_vp_and_stay_flat_dilated(quick):
    _, results = quick
    steps, slope = results["steps_to_tolerance"], results["slope"]
    assert 0.35 < slope["vp/heun"] < 0.65 and 0.35 < slope["vp/euler"] < 0.65
    for solver in ("euler", "heun"):
        found = [v for v in steps[f"vp-dilated/{solver}"].values()]
        assert None not in found and max(found) == min(found)  # flat up to d = 1e9
    assert slope["vp-dilated/heun"] == pytest.approx(0.0, abs=0.05)


def test_quick_results_json_validates_against_the_schema(quick):
    _, results = quick
    validate(results)
    assert {"sweep_vs_loop", "figure1", "dichotomy"} <= set(results)
