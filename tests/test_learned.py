"""The learned-schedules section of ``nsjax reproduce`` (nsjax.experiments.learned)."""

import json
import math
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax.experiments import config_for
from nsjax.experiments.config import LEARNED_FILES, LEARNED_PER_D, P_TOL, S2_TOL, Config
from nsjax.experiments.learned import learned_dir, learned_study, report_lines, rescaled_shapes
from nsjax.experiments.schema import LEARNED
from nsjax.features import estimate
from nsjax.interpolants import make_interpolant
from nsjax.schedule_files import load_schedule, read_schedule
from nsjax.solve import PieceSteps, solve, step_grid
from nsjax.solvers import make_solver
from nsjax.sweeps import QuantileReducedGM, normal_quantiles
from nsjax.targets import GaussianMixture

QUANTILES = 128
CFG = Config(  # one compiled sweep (Heun), 128 quantiles, N <= 8
    "test",
    learned_files=("vp_heun6.json",),
    learned_dims=(1e3,),
    learned_gm_targets=((0.8, 0.25),),
    learned_quantiles=QUANTILES,
    learned_max_steps=8,
    learned_kmode_particles=0,
)


@pytest.fixture(scope="module")
def study():
    jax.config.update("jax_enable_x64", True)
    return learned_study(CFG)


def test_committed_learned_files_are_the_default_and_exist():
    cfg = config_for("default")
    assert cfg.learned_files == LEARNED_FILES and cfg.learned_per_d == LEARNED_PER_D
    for name in LEARNED_FILES + LEARNED_PER_D:
        read_schedule(os.path.join(learned_dir(cfg), name))  # raises when absent or malformed


@eqx.filter_jit
def _solve_all(system, schedule, z, counts):
    return jax.vmap(
        lambda zi: solve(
            system, make_interpolant("linear", 1.0), schedule, key=zi, steps=PieceSteps(counts),
            solver=make_solver("heun"), dtype=jnp.float64,
        ).state
    )(z)


def _independent(path, d, n):
    """Errors of ``n`` Heun steps of file ``path`` at ``d`` by nsjax.solve on stratified quantiles
    (no sweep, no build), float64."""
    target = GaussianMixture(dim=2, p=0.8, sigma2=0.25)
    system = QuantileReducedGM(target, dim=d)
    schedule = load_schedule(path, d, dtype=jnp.float64)
    z = jnp.asarray(normal_quantiles(QUANTILES))
    counts = jnp.asarray([len(g) - 1 for g in step_grid(schedule, n)], jnp.int32)
    state = _solve_all(system, schedule, z, counts)
    stats = {k: np.asarray(v) for k, v in system.statistics(state).items()}
    return estimate(GaussianMixture(dim=int(d), p=0.8, sigma2=0.25), stats)


def test_steps_to_tolerance_of_the_vp_file_equals_an_independent_solve(study):
    path = os.path.join(learned_dir(CFG), "vp_heun6.json")
    key = "learned:vp_heun6/heun"
    n = study.steps_to_tolerance[key]["1000"]
    assert n is not None
    rows = {r.N: r for r in study.rows if r.schedule == "learned:vp_heun6" and r.d == 1e3}
    ladder = sorted(rows)
    assert n in ladder and all(not rows[m].passed for m in ladder if m < n) and rows[n].passed
    f = _independent(path, 1e3, n)
    # same float64 arithmetic on the same quantiles: equal to rounding
    assert abs(f["p_error"] - rows[n].p_error) < 1e-9
    assert abs(f["sigma2_error"] - rows[n].sigma2_error) < 1e-9
    assert f["p_error"] <= P_TOL and f["sigma2_error"] <= S2_TOL
    below = [m for m in ladder if m < n]
    if below:  # the ladder step below fails (so n is the smallest)
        g = _independent(path, 1e3, below[-1])
        assert g["p_error"] > P_TOL or g["sigma2_error"] > S2_TOL
    assert study.nfe_to_tolerance[key]["1000"] == 2 * n  # Heun: 2 evaluations per step


def test_learned_section_json_fits_the_schema_and_reports(study):
    document = json.loads(json.dumps(study.to_json()))
    LEARNED.check(document, "")
    assert set(study.transfer) == {"learned:vp_heun6/heun", "vp-dilated/heun"}
    text = "\n".join(report_lines(study))
    assert "learned:vp_heun6/heun" in text and "vp-dilated/heun" in text


def _record(kappa, first, second, dims, noise="vp"):
    return {"noise": noise, "log_kappa": math.log(kappa), "first": first, "second": second, "split": 0.5,
            "dims": dims}


def test_rescaled_shapes_are_monotone_with_exact_ends_and_d_free_in_the_dilated_phase():
    vp = read_schedule(os.path.join(learned_dir(CFG), "vp_heun6.json"))
    ve = read_schedule(os.path.join(learned_dir(CFG), "ve_unipc12.json"))
    dims = (1e3, 1e6, 1e9, 1e12)
    shapes, _ = rescaled_shapes({"vp": vp, "ve": ve}, dims)
    for name, rec in (("vp", vp), ("ve", ve)):
        kappa = math.exp(rec["log_kappa"])
        for d in dims:
            one = np.asarray(shapes[name]["d"][str(int(d))]["phase1"])
            two = np.asarray(shapes[name]["d"][str(int(d))]["phase2"])
            assert np.all(np.diff(one) > 0) and np.all(np.diff(two) < 0)  # tau increases in t
            assert one[0] == 0.0 and two[-1] == pytest.approx(0.0, abs=1e-9)
            # phase 1 ends where phase 2 starts: tau sqrt(d) + sqrt(d)(1 - tau) = sqrt(d)
            assert one[-1] + two[0] == pytest.approx(math.sqrt(d), rel=1e-12)
            window = one if name == "vp" else two[::-1]
            assert window[-1] == pytest.approx(kappa, rel=1e-12)
        # the dilated phase is the same curve at every d (one parameter vector serves all d)
        key = "phase1" if name == "vp" else "phase2"
        curves = np.asarray([shapes[name]["d"][str(int(d))][key] for d in dims])
        np.testing.assert_allclose(curves, curves[:1].repeat(len(dims), 0), rtol=1e-12, atol=1e-12)


def test_shape_convergence_is_the_relative_gap_of_consecutive_single_d_files():
    warp = [0.3, -0.2, 0.1, 0.0]
    records = {
        "a": _record(2.0, warp, [0.0] * 4, [1e3]),
        "b": _record(2.0, warp, [0.5] * 4, [1e6]),  # same phase 1
        "c": _record(2.5, warp, [0.0] * 4, [1e9]),  # kappa 2 -> 2.5: gap 0.5 / 2.5
    }
    _, convergence = rescaled_shapes(records, (1e3, 1e6, 1e9))
    assert convergence["1000->1000000"] == pytest.approx(0.0, abs=1e-12)
    assert convergence["1000000->1000000000"] == pytest.approx(0.5 / 2.5, rel=1e-9)
