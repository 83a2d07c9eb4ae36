"""Learned schedules (issue 11): the warp family, the exact GM objective against an independent
ensemble, its gradient against finite differences, optax lowering it, schedule files and the CLI.

Cheap by design: Euler with 4 steps (2 per phase) at d = 1e3, one compilation per fixture.
"""

import json
import math
import subprocess
import sys

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nsjax
from nsjax.interpolants import make_interpolant
from nsjax.objectives import gm_errors, path_distance, smooth_features
from nsjax.optimize import gm_objective, optimize
from nsjax.schedule_files import load_schedule, read_schedule, save_schedule
from nsjax.schedules import DilatedVE, DilatedVP, TwoPhase, Warp
from nsjax.solve import solve
from nsjax.solvers import make_solver
from nsjax.sweeps import QuantileReducedGM, normal_quantiles

ROOT = __import__('pathlib').Path(__file__).resolve().parents[1]
D = 1000.0
STEPS = 4


@pytest.fixture(scope="module")
def gm():
    return nsjax.GaussianMixture(dim=int(D), p=0.8, sigma2=0.25)


def _warped(noise="vp"):
    """A start point with non-trivial warps (so that the tests see the warp code)."""
    s = TwoPhase.init(noise, D, kappa=2.5, num_coefficients=3)
    return TwoPhase(
        s.log_kappa, D, Warp(jnp.array([0.4, -0.2, 0.1])), Warp(jnp.array([-0.3, 0.1, 0.05])), noise=noise
    )


# -- the family ------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise,paper", [("vp", DilatedVP), ("ve", DilatedVE)])
@pytest.mark.x64
def test_zero_warps_are_the_paper_dilations(noise, paper):
    t = jnp.linspace(0.0, 1.0, 41)
    mine, theirs = TwoPhase.init(noise, 1e6), paper(3.0, 1e6)
    for piece in (0, 1):
        for a, b in zip(mine.evaluate(t, piece), theirs.evaluate(t, piece)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@jax.jit
def _warp_checks(coefficients):
    warp = Warp(coefficients)
    s = jnp.linspace(0.0, 1.0, 201)
    w, w_c, rate = warp(s)
    autodiff = jax.vmap(jax.grad(lambda x: warp(x)[0]))(s)
    return w, w_c, rate, autodiff


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5), min_size=6, max_size=6))
@pytest.mark.x64
def test_warp_is_monotone_with_exact_ends_and_its_rate_is_its_derivative(coefficients):
    """Any coefficients (|a_k| <= 1.5: 40 Gauss nodes integrate e^f to < 1e-12 relative) give a
    strictly increasing map with exact ends and rate = autodiff of W. Autodiff differentiates the
    moving-node rule, i.e. integrates (u e^f(u))' by the same 40 nodes, a less smooth integrand:
    5e-10 relative was seen at t = 1 (a random draw in CI), so 1e-8; a wrong normaliser or node
    map is an O(1) error."""
    w, w_c, rate, autodiff = (np.asarray(a) for a in _warp_checks(jnp.asarray(coefficients)))
    assert w[0] == 0.0 and w_c[-1] == 0.0
    assert abs(w[-1] - 1.0) <= 1e-14 and abs(w_c[0] - 1.0) <= 1e-14
    assert np.all(np.diff(w) > 0) and np.all(rate > 0)
    np.testing.assert_allclose(w + w_c, 1.0, atol=1e-12)
    np.testing.assert_allclose(rate, autodiff, rtol=1e-8)


def test_float32_keeps_both_ends_at_d_1e12():
    """VE at d = 1e12: 1 - tau ~ kappa 1e-6 near t = 1 must keep its relative precision."""
    s = TwoPhase(
        jnp.log(jnp.float32(3.0)),
        1e12,
        Warp(jnp.zeros(2, jnp.float32)),
        Warp(jnp.array([0.3, -0.2], jnp.float32)),
        noise="ve",
    )
    t = jnp.float32(0.9)
    tau_c = s.evaluate(t, 1).tau_c
    w_c = Warp(jnp.array([0.3, -0.2], jnp.float64))(0.8)[1]
    assert tau_c.dtype == jnp.float32
    assert abs(float(tau_c) / (3e-6 * float(w_c)) - 1) < 1e-5


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(noise="vx"), "noise"),
        (dict(split=1.0), "split"),
        (dict(log_kappa=math.log(40.0)), "kappa"),
        (dict(log_kappa=float("nan")), "log_kappa"),
        (dict(dim=0.0), "dim"),
    ],
)
def test_bad_two_phase_arguments_name_the_parameter(bad, match):
    kwargs = dict(
        log_kappa=0.0, dim=D, first=Warp(jnp.zeros(2)), second=Warp(jnp.zeros(2)), noise="vp", split=0.5
    )
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        TwoPhase(**kwargs)


# -- the exact objective against an independent ensemble ---------------------------------------------
@pytest.fixture(scope="module")
def errors(gm):
    schedule = _warped()
    return schedule, gm_errors(gm, make_interpolant("linear", 1.0), schedule, steps=STEPS)


@pytest.mark.x64
def test_exact_errors_match_a_stratified_ensemble(gm, errors):
    """``p_hat = Phi(-z*)`` and the quadrature ``sigma2_hat`` against ``n`` stratified particles
    through the same solve, counted and averaged as ``nsjax.estimate`` does: their quadrature
    error is at most ``1/n`` for ``p`` (one stratum), ``O(1/n)`` relative for ``sigma2``."""
    schedule, exact = errors
    assert bool(exact.valid)
    n = 4096
    system = QuantileReducedGM(gm)
    z = jnp.asarray(normal_quantiles(n))
    states = jax.vmap(
        lambda z: (
            solve(
                system, make_interpolant("linear", 1.0), schedule, key=z, steps=STEPS, dtype=jnp.float64
            ).state
        )
    )(z)
    stats = jax.vmap(system.statistics)(states)
    p_hat = float(jnp.mean(stats["overlap"] > 0))
    sigma2_hat = float(jnp.mean(stats["sq_dev"]))
    assert abs(float(exact.p_hat) - p_hat) <= 1 / n
    assert abs(float(exact.sigma2_hat) / sigma2_hat - 1) <= 1 / n
    reference = gm.reference()
    assert float(exact.p_error) == pytest.approx(float(exact.p_hat) - reference["p"], abs=1e-15)
    assert float(exact.sigma2_error) == pytest.approx(
        float(exact.sigma2_hat) / reference["sigma2"] - 1, abs=1e-14
    )
    # The per-coordinate W2 is zero only for the exact law; here it is the warp's error.


@pytest.mark.x64
def test_exact_errors_at_large_d_where_the_flow_map_is_a_step():
    """At d = 1e9 the map z -> u_1 is a smoothed step: an unguarded Newton step on z* left the final
    bracket and put quadrature nodes in the wrong mode (sigma2 error +1.86 for a schedule that
    passes). Learned VP file, Heun 6 steps, against 4096 stratified particles of the same solve."""
    d, n = 1e9, 4096
    gm = nsjax.GaussianMixture(dim=int(D), p=0.8, sigma2=0.25)
    schedule = load_schedule(str(ROOT / "benchmarks/results/learned/vp_heun6.json"), d)
    interp, heun = make_interpolant("linear", 1.0), make_solver("heun")
    exact = gm_errors(gm, interp, schedule, steps=6, solver=heun, dim=d)
    system = QuantileReducedGM(gm, dim=d)
    states = jax.vmap(
        lambda z: solve(system, interp, schedule, key=z, steps=6, solver=heun, dtype=jnp.float64).state
    )(jnp.asarray(normal_quantiles(n)))
    stats = jax.vmap(system.statistics)(states)
    assert bool(exact.valid) and int(exact.crossings) == 1
    assert abs(float(exact.p_hat) - float(jnp.mean(stats["overlap"] > 0))) <= 1 / n
    assert abs(float(exact.sigma2_hat) / float(jnp.mean(stats["sq_dev"])) - 1) <= 1 / n
    assert 0 < float(exact.w2) < 1


@pytest.mark.x64
def test_gradient_matches_finite_differences(gm):
    """d loss / d (log kappa, first coefficient): forward mode through the separatrix (implicit
    function theorem) against central differences, float64, step h ~ eps^(1/3). Measured agreement:
    1e-9 relative for p, 2e-5 for sigma2 (its quadrature nodes move with z*; their motion is
    differentiated to first order), hence rtol 1e-4; a secant slope in the IFT fails it (1%)."""
    interpolant = make_interpolant("linear", 1.0)

    def loss(params):
        log_kappa, a = params
        s = _warped()
        s = TwoPhase(log_kappa, D, Warp(s.first.coefficients.at[0].set(a)), s.second, noise="vp")
        e = gm_errors(gm, interpolant, s, steps=STEPS, adjoint=diffrax.ForwardMode())
        return jnp.stack([e.p_error, e.sigma2_error])

    x = jnp.array([math.log(2.5), 0.4])
    jac = jax.jit(jax.jacfwd(loss))(x)
    f = jax.jit(loss)
    h = 1e-5
    for k in range(2):
        step = jnp.zeros(2).at[k].set(h)
        fd = (f(x + step) - f(x - step)) / (2 * h)
        np.testing.assert_allclose(jac[:, k], fd, rtol=1e-4, atol=1e-9)
        assert np.all(np.abs(fd) > 1e-4)  # the derivative is resolved, not noise


@pytest.mark.x64
def test_optax_lowers_the_objective_from_the_paper_dilation(gm, tmp_path):
    objective = gm_objective(gm, [D], solver=make_solver("euler"), steps=STEPS)
    start = TwoPhase.init("vp", D, num_coefficients=2)
    result = optimize(objective, start, num_steps=12, learning_rate=0.05)
    assert result.best_loss < 0.5 * result.history[0]
    assert result.best_loss == min(result.history)
    learned = result.schedule
    t = jnp.linspace(0.0, 1.0, 101)
    tau = learned(t)[0]
    assert float(tau[0]) == 0.0 and float(learned(jnp.ones(()))[1]) == 0.0
    assert np.all(np.diff(np.asarray(tau)) > 0)
    # Saved and loaded: the same schedule at any d, usable by name.
    path = tmp_path / "s.json"
    save_schedule(str(path), learned, solver="euler", steps=STEPS, history=result.history)
    again = load_schedule(f"file:{path}", D)
    np.testing.assert_array_equal(again(t)[0], tau)
    interpolant, schedule = nsjax.preset(f"file:{path}", 10**6)
    assert interpolant.noise_scale == 1.0 and schedule.dim == 10**6
    record = read_schedule(str(path))
    assert record["solver"] == "euler" and record["steps"] == STEPS and record["history"] == result.history
    assert "git_revision" in record and "created" in record


@pytest.mark.x64
def test_lbfgs_lowers_the_objective_with_a_value_only_line_search(gm):
    """optax.lbfgs's default (zoom) line search differentiates in reverse mode, which the
    forward-mode objective cannot: ``optimizer="lbfgs"`` failed before its line search was swapped."""
    objective = gm_objective(gm, [D], solver=make_solver("euler"), steps=STEPS)
    result = optimize(objective, TwoPhase.init("vp", D, num_coefficients=2), optimizer="lbfgs", num_steps=6)
    assert result.best_loss < 0.5 * result.history[0]


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda r: r.update(format="other/1"), "format"),
        (lambda r: r.update(first=[1.0, float("nan")]), "finite"),
        (lambda r: r.pop("noise"), "noise"),
    ],
)
def test_bad_schedule_files_name_the_problem(tmp_path, edit, match):
    path = tmp_path / "s.json"
    save_schedule(str(path), TwoPhase.init("ve", D))
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=match):
        load_schedule(str(path), D)
    with pytest.raises(ValueError, match="does not exist"):
        read_schedule(str(tmp_path / "missing.json"))


def test_cli_optimize_then_sample_with_the_file(tmp_path):
    out = tmp_path / "learned.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nsjax.cli",
            "optimize",
            "--noise",
            "vp",
            "--solver",
            "euler",
            "--steps",
            str(STEPS),
            "--dims",
            "1e3",
            "--iterations",
            "3",
            "--coefficients",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    record = json.loads(out.read_text())
    assert report["schedule_file"] == str(out) and record["solver"] == "euler" and record["nfe"] == STEPS
    assert len(record["history"]) == 3 and record["dims"] == [1000.0]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nsjax.cli",
            "sample",
            "--engine",
            "reduced",
            "--schedule",
            f"file:{out}",
            "--d",
            "1000000",
            "--particles",
            "64",
            "--steps",
            str(STEPS),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    sampled = json.loads(proc.stdout)
    assert sampled["schedule_file"] == str(out) and sampled["nfe"] == STEPS


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["optimize", "--split", "1.5"], "--split"),
        (["optimize", "--dims", "1e3,0"], "--dims"),
        (["sample", "--schedule", "file:/nonexistent.json"], "--schedule"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_them(argv, needle):
    proc = subprocess.run(
        [sys.executable, "-m", "nsjax.cli", *argv, "--no-progress"]
        if argv[0] == "optimize"
        else [sys.executable, "-m", "nsjax.cli", *argv],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr.strip().splitlines()[-1]


@pytest.mark.x64
def test_full_particle_surrogates():
    """The sigmoid surrogate tends to the indicator mean as the width shrinks; the path distance is
    the mean squared difference, zero for the same particles."""
    m = jnp.array([-0.3, -0.01, 0.02, 0.5, 0.7])
    assert abs(float(smooth_features(m, width=1e-4)) - 0.6) < 1e-12
    assert 0.5 < float(smooth_features(m, width=1.0)) < 0.6
    x = jnp.arange(6.0).reshape(2, 3)
    assert float(path_distance(x, x)) == 0.0
    assert float(path_distance(x, x + 2.0)) == 4.0
