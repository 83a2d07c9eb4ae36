"""The Curie–Weiss part of the transfer benchmark (benchmarks/transfer.py) and its objective
(nsjax.cw_objectives)."""

import importlib.util
import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax.cw_objectives import cw_objective
from nsjax.cw_reduction import cw_reference
from nsjax.schedules import TwoPhase
from nsjax.solvers import make_solver
from nsjax.targets import CurieWeiss

ROOT = pathlib.Path(__file__).resolve().parents[1]
H = 0.5 * math.log(4)


def _transfer():
    spec = importlib.util.spec_from_file_location("transfer_bench", ROOT / "benchmarks" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.x64
def test_cw_target_matches_the_exact_reference_at_fine_steps():
    transfer = _transfer()
    d, n, steps = 1e3, 128, 64
    target = transfer.make_target("cw", d)
    assert (float(target.target.theta), float(target.target.h)) == (2.0, H)
    schedule = TwoPhase.init("vp", d, kappa=3.0, num_coefficients=4, dtype=jnp.float64)
    stats = transfer.cw_statistics(target, schedule, [d], steps=steps, quantiles=n)
    f = transfer.features_of(target, {k: v[0] for k, v in stats.items()})
    ref = cw_reference(2.0, H, d)
    assert f["monotone"]
    # p_hat: the mean of 1[M(u_k) > 0] over n stratified quantiles of an increasing map: off the
    # reduced flow's exact P(M > 0) by at most 1/(2n); the reduction's own bias is O(1/d).
    assert abs(f["p_hat"] - ref["p"]) <= 0.5 / n + 1 / d
    # E|M| and the spread: stratified means of functions of u with total variation V (|M| and the
    # spread go from their plateau to the separatrix and back: V <= 2 max), so off by <= V/n,
    # plus the graded rule's spread error (docs/theory.md §3: O(1/nodes); 0.005 at 128 nodes).
    mag, spread = np.abs(stats["magnetization"][0]), stats["spread"][0]
    assert abs(f["m_abs_ratio"] - 1) <= 2 * mag.max() / n / ref["m_abs"] + 1 / d
    assert (
        abs(f["spread_ratio"] - 1)
        <= (2 * (spread.max() - spread.min()) / n + 1 / transfer.CW_NODES) / ref["spread"] + 1 / d
    )


@pytest.mark.x64
def test_cw_objective_gradient_matches_finite_differences():
    target = CurieWeiss(2, 2.0, H)
    # the separatrix cell refined 6 times (by 16^6): the bracketed root's secant placement error
    # (~cell^2) is far below what eps moves it. Euler: one velocity trace per piece (compile time)
    loss = cw_objective(
        target, [1e3], solver=make_solver("euler"), steps=4, quantiles=16, nodes=8, num_refine=6
    )
    start = TwoPhase.init("vp", 1e3, kappa=3.0, num_coefficients=2, dtype=jnp.float64)
    params, static = eqx.partition(start, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(0), len(leaves))
    direction = jax.tree.unflatten(
        tree, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)]
    )
    along = lambda s: loss(eqx.combine(jax.tree.map(lambda p, v: p + s * v, params, direction), static))  # noqa: E731
    run = jax.jit(lambda s: jax.jvp(along, (s,), (jnp.ones_like(s),)))  # one compile: values and slope
    value, slope = (float(v) for v in run(jnp.zeros((), jnp.float64)))
    at = lambda s: float(run(jnp.asarray(s, jnp.float64))[0])  # noqa: E731
    eps = 1e-5
    coarse, fine = ((at(e) - at(-e)) / (2 * e) for e in (2 * eps, eps))
    # central differences: error O(eps^2), bounded by the Richardson difference |coarse - fine|;
    # rounding of the loss (float64, ~1e-13 relative with the root's placement) over eps
    bound = abs(coarse - fine) + 1e-12 * abs(value) / eps
    assert abs(slope) > 10 * bound  # a real test: the loss moves along the direction
    assert abs(slope - fine) <= bound


def test_schedules_pick_up_extra_learned_files_when_present(tmp_path):
    transfer = _transfer()
    missing = {"gm-family-learned": str(tmp_path / "gmfam_vp_heun6.json")}
    assert "gm-family-learned" not in transfer.schedules(1e3, None, missing)
    (tmp_path / "gmfam_vp_heun6.json").write_text(pathlib.Path(transfer.GM_FILE).read_text())
    found = transfer.schedules(1e3, None, missing)
    assert list(found) == ["gm-learned", "vp-dilated", "gm-family-learned"]
    assert transfer.EXTRA_FILES["gm-family-learned"].endswith(
        "benchmarks/results/learned/gmfam_vp_heun6.json"
    )


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.x64)])
def test_observation_field_has_a_finite_tangent_at_alpha_zero(dtype):
    """Heun's last stage evaluates the CW velocity at ``alpha = 0`` (``tau = 1``): the field is
    capped at ``1/(4 tiny)`` there (the value the uncapped formula takes at ``beta = 1``), and its
    forward-mode tangent must be finite, or every derivative through the flow is NaN (it was:
    ``beta / max(c^2 alpha^2, ...)`` divides its tangent by ``tiny^2 = 0``). Away from 0 the field
    is ``beta / (c^2 alpha^2)`` with its own derivative."""
    from nsjax.interpolants import make_interpolant

    target, interpolant = CurieWeiss(dim=100, theta=2.0, h=0.5), make_interpolant("linear", 10.0)

    def field(tau):
        return target.observation_field(interpolant, tau, 1 - tau)

    one = jnp.asarray(1.0, dtype)
    g, dg = jax.jvp(field, (one,), (one,))
    assert float(g) == pytest.approx(0.25 / float(jnp.finfo(dtype).tiny), rel=1e-6)
    assert np.isfinite(float(dg))
    tau = jnp.asarray(0.5, dtype)
    g, dg = jax.jvp(field, (tau,), (one,))
    # g = tau / (c^2 (1 - tau)^2): dg/dtau = (1 + tau) / (c^2 (1 - tau)^3)
    np.testing.assert_allclose(float(g), 0.5 / (100 * 0.25), rtol=1e-6)
    np.testing.assert_allclose(float(dg), 1.5 / (100 * 0.125), rtol=1e-6)
