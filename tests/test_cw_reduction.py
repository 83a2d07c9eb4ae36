"""The reduced Curie–Weiss flow (nsjax.cw_reduction) against full particles and exact references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
from nsjax.cli import main
from nsjax.cw_reduction import QuantileReducedCW, ReducedCW, cw_reference, noise_rule, weighted_posterior
from nsjax.registry import select
from nsjax.sweeps import normal_quantiles, sweep
from nsjax.targets import CurieWeiss

H = 0.5 * math.log(4)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def test_weighted_posterior_with_every_coordinate_as_a_node_is_the_exact_posterior():
    d = 1000
    target = CurieWeiss(d, 2.0, H)
    x = jax.random.normal(jax.random.PRNGKey(1), (d,), jnp.float64) + 0.5
    gs = jnp.asarray([0.0, 1 / math.sqrt(d), 0.3, 3.0])
    exact = jax.jit(jax.vmap(lambda g: target.posterior_mean(g, x)))(gs)
    mine = jax.jit(jax.vmap(lambda g: weighted_posterior(d, 2.0, H, g, x, jnp.full(d, 1.0 / d), nodes=4)))(gs)
    # two Gauss-Hermite rules around the same maxima: first missed term O(d^-2) = 1e-6
    assert float(jnp.max(jnp.abs(mine - exact))) < 5e-6


def test_windowed_reference_equals_the_full_law():
    full = cw_reference(2.0, H, 10**6)
    window = cw_reference(2.0, H, 10**6, full_max_dim=10)
    for key in full:
        assert abs(full[key] - window[key]) < 1e-12, key  # neglected mass < e^-1000; rounding


def test_rule_has_exact_first_two_moments():
    for rule in ("graded", "quantile", "hermite"):
        xi, w = noise_rule(16, rule)
        assert abs(w.sum() - 1) < 1e-14 and abs((w * xi).sum()) < 1e-14
        assert abs((w * xi**2).sum() - 1) < 1e-13


def test_reduction_matches_full_particles_from_the_same_noise_at_order_d_minus_half():
    """Passive points carry the full particle's own noise, driven by the reduced weight: they
    differ from the full run only through the fluctuation of the empirical law, O(d^-1/2)."""
    rms = {}
    for d in (300, 3000):
        target = CurieWeiss(d, 2.0, H)
        interpolant, schedule = nsjax.preset("vp-dilated", d)
        scale = float(interpolant.noise_scale)
        system = ReducedCW(target, nodes=256, passive=d)

        def one(key, target=target, interpolant=interpolant, schedule=schedule, system=system):
            z = jax.random.normal(key, (target.dim,), jnp.float64)
            full = nsjax.solve(target, interpolant, schedule, y0=scale * z, steps=8).state
            red = nsjax.solve(system, interpolant, schedule, y0=system.from_noise(z, scale), steps=8).state
            return full.mean(), red.x[system.size :].mean()

        full_m, passive_m = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), 8))
        assert np.all(np.sign(full_m) == np.sign(passive_m))  # the same mode: u decides it
        rms[d] = float(np.sqrt(np.mean((np.asarray(full_m) - np.asarray(passive_m)) ** 2)))
    ratio = rms[300] / rms[3000]
    assert math.sqrt(10) / 2 < ratio < 2 * math.sqrt(10), rms  # O(d^-1/2), within a factor 2


def _build(point):
    system = QuantileReducedCW(CurieWeiss(2, 2.0, H), nodes=64, dim=point["d"])
    return (system, *select(("vp-dilated",), 0, point["d"], kappa=3.0))


def test_reduced_features_match_the_exact_finite_d_reference():
    dims = (1e4, 1e6)
    n = 128
    result = sweep(_build, {"d": np.asarray(dims)}, normal_quantiles(n), steps=[128], solver=nsjax.make_solver("heun"))
    for g, d in enumerate(dims):
        ref = cw_reference(2.0, H, d)
        stats = result.point(0, g)
        p_hat = float(np.mean(stats["magnetization"] > 0))
        # stratified u: resolution 1/n; reduction O(1/d)
        assert abs(p_hat - ref["p"]) <= 1 / n + 1 / d, (d, p_hat, ref["p"])
        spread = float(np.mean(stats["spread"]))
        # graded rule: the step is placed to 1/(32 * 64) in probability, so M to 2/2048 and the
        # spread 1 - M^2 to 2 m (2/2048) / spread (0.023); plus O(1/d)
        bound = 2 * 0.958 * (2 / 2048) / ref["spread"] + 1 / d
        assert abs(spread / ref["spread"] - 1) <= bound, (d, spread, ref["spread"])


def test_cli_samples_the_reduced_cw_at_d_1e9(capsys):
    argv = [
        "sample", "--engine", "reduced", "--target", "cw", "--d", "1e9", "--schedule", "vp-dilated",
        "--steps", "16", "--solver", "euler", "--particles", "16", "--x64", "--h", str(H),
    ]
    assert main(argv) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "reduced" and report["d"] == 10**9
    assert abs(report["spread_ref"] - cw_reference(2.0, H, 1e9)["spread"]) < 1e-15
    assert 0 < report["spread_hat"] < 1 and report["particles_used"] == 16


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"nodes": 0}, "nodes"),
        ({"nodes": 2.5}, "nodes"),
        ({"passive": -1}, "passive"),
        ({"posterior_nodes": 0}, "posterior_nodes"),
        ({"newton_steps": 0}, "newton_steps"),
        ({"rule": "simpson"}, "rule"),
        ({"dim": 0.5}, "dim"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ReducedCW(CurieWeiss(10, 2.0, H), **kwargs)


def test_from_noise_needs_passive_equal_to_the_dimension():
    with pytest.raises(ValueError, match="passive"):
        ReducedCW(CurieWeiss(10, 2.0, H), nodes=4, passive=3).from_noise(jnp.zeros(10), 1.0)
