"""Fused fixed-step Runge–Kutta solvers (nsjax.solvers) against diffrax's generic ones."""

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
from nsjax import sample
from nsjax.diagnostics import step_bytes_per_coordinate
from nsjax.reduction import ReducedGM
from nsjax.registry import preset
from nsjax.solvers import (
    RK4,
    AbstractFusedRK,
    FusedHeun,
    FusedMidpoint,
    FusedRalston,
    FusedRK4,
    adaptive_form,
    evaluations_per_step,
    make_solver,
)

KEY = jax.random.key(0)
PAIRS = [
    (FusedHeun, diffrax.Heun),
    (FusedMidpoint, diffrax.Midpoint),
    (FusedRalston, diffrax.Ralston),
    (FusedRK4, RK4),
]


def _solve(solver, field, y0, steps, t1=1.0):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(field), solver, 0.0, t1, t1 / steps, y0,
        saveat=diffrax.SaveAt(t1=True), stepsize_controller=diffrax.ConstantStepSize(),
    ).ys


@pytest.mark.parametrize("fused,generic", PAIRS)
def test_same_tableau_as_diffrax(fused, generic):
    """Stage times, coefficients and weights equal diffrax's Butcher tableau."""
    tableau = generic.tableau
    np.testing.assert_allclose(fused.c[1:], tableau.c, rtol=1e-15)
    np.testing.assert_allclose(fused.b, tableau.b_sol, rtol=1e-15)
    for row, a_lower in zip(fused.a, tableau.a_lower):
        np.testing.assert_allclose(row, a_lower, rtol=1e-15)


@pytest.mark.parametrize("fused,generic", PAIRS)
@pytest.mark.x64
def test_fused_equals_diffrax_to_rounding(fused, generic):
    """A nonlinear pytree field through ``diffeqsolve``: same numbers as diffrax's ERK."""

    def field(t, y, args):
        x, s = y
        return -x + jnp.tanh(jnp.sum(x)) * jnp.cos(3 * t), jnp.sin(s) * jnp.mean(x**2)

    y0 = (jnp.linspace(-1.0, 2.0, 5), jnp.float64(0.3))
    a, b = _solve(fused(), field, y0, 13), _solve(generic(), field, y0, 13)
    for leaf_a, leaf_b in zip(a, b):
        np.testing.assert_allclose(leaf_a, leaf_b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("fused,generic", [PAIRS[0], PAIRS[3]])
@pytest.mark.x64
def test_fused_equals_diffrax_on_gm_sampler(fused, generic):
    """Full GM particles through ``sample`` (two schedule pieces, one-sided slopes), float64."""
    d = 64
    target = nsjax.GaussianMixture(dim=d)
    interp, sched = preset("ve-dilated", d, kappa=1.0)
    kw = dict(steps=9, dtype=jnp.float64, keep_states=True)
    a = sample(target, interp, sched, KEY, 5, solver=fused(), **kw)
    b = sample(target, interp, sched, KEY, 5, solver=generic(), **kw)
    np.testing.assert_allclose(a.states, b.states, rtol=1e-12, atol=1e-12 * math.sqrt(d))
    np.testing.assert_array_equal(a.nfe, b.nfe)


@pytest.mark.x64
def test_fused_equals_diffrax_on_reduced_gm():
    """The exact GM reduction (a NamedTuple state, d = 1e9) through ``sample``."""
    system = ReducedGM(nsjax.GaussianMixture(dim=10**9))
    interp, sched = preset("vp-dilated", 10**9)
    kw = dict(steps=12, dtype=jnp.float64)
    a = sample(system, interp, sched, KEY, 7, solver=FusedHeun(), **kw)
    b = sample(system, interp, sched, KEY, 7, solver=diffrax.Heun(), **kw)
    for name in a.statistics:
        np.testing.assert_allclose(a.statistics[name], b.statistics[name], rtol=1e-12)


@pytest.mark.parametrize("fused", [FusedHeun, FusedMidpoint, FusedRalston, FusedRK4])
@pytest.mark.x64
def test_convergence_order(fused):
    """``y' = cos(t) y`` (exact ``exp(sin t)``): the error slope matches the method's order."""
    field = lambda t, y, args: jnp.cos(t) * y  # noqa: E731
    steps = np.array([32, 64, 128, 256])
    errors = [abs(float(_solve(fused(), field, jnp.float64(1.0), n, 2.0)[0]) - math.exp(math.sin(2.0)))
              for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - fused.method_order) < 0.2, slope


@pytest.mark.parametrize("fused", [FusedHeun, FusedMidpoint, FusedRalston, FusedRK4])
def test_evaluations_per_step_counts_vector_field_calls(fused):
    """``evaluations_per_step`` equals the vector-field calls traced in one step."""
    calls = []

    def field(t, y, args):
        calls.append(1)
        return -y

    solver = fused()
    term = diffrax.ODETerm(field)
    jax.make_jaxpr(lambda y: solver.step(term, 0.0, 0.1, y, None, None, False))(jnp.ones(3))
    assert evaluations_per_step(solver) == (len(calls), 0)


# XLA's byte count depends on its fusion decisions, which change between releases; the bound below
# (0.1 byte of slack) was measured with jax 0.10.2 / jaxlib 0.10.2 on XLA:CPU. Other versions skip
# rather than fail or pass by accident; re-measure and update MEASURED_WITH when upgrading.
MEASURED_WITH = ("0.10.2", "0.10.2")


def _jax_versions():
    import jaxlib

    return jax.__version__, jaxlib.__version__


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's fusion decisions")
@pytest.mark.skipif(
    _jax_versions() != MEASURED_WITH,
    reason=f"byte counts measured with jax/jaxlib {MEASURED_WITH}, running {_jax_versions()}",
)
@pytest.mark.parametrize("name", ["euler", "heun", "rk4"])
def test_gm_step_stores_no_stage_state(name):
    """XLA's own count of bytes accessed by one GM step (8 particles, float32, the engine's
    compile options). A step reads ``x`` once per stage (the reduction ``r.x``, with the stage
    state recomputed inside it) and once more to write ``x``: ``4 (s + 2)`` bytes per coordinate,
    plus ``8 s / 32`` to write and read the partial sums of ``coordinate_sum``. A stored stage
    state adds 8 per stage (with ``jnp.sum`` for ``r.x``: 28.5 bytes for Heun, 69 for RK4)."""
    d = 2**16
    interpolant, schedule = preset("ve-dilated", d)
    solver = make_solver(name)
    stages = evaluations_per_step(solver)[0]
    per_coord = step_bytes_per_coordinate(nsjax.GaussianMixture(dim=d), interpolant, schedule, solver)
    assert per_coord <= 4 * (stages + 2) + 8 * stages / 32 + 0.1, per_coord


def test_registry_names():
    assert isinstance(make_solver("heun"), FusedHeun)
    assert isinstance(make_solver("rk4"), FusedRK4)
    assert type(make_solver("diffrax-heun")) is diffrax.Heun
    assert type(make_solver("diffrax-rk4")) is RK4
    assert type(make_solver("euler")) is diffrax.Euler


@functools.cache
def _reduced_reference():
    """ReducedGM (d = 100, vp-dilated), 4 particles: fixed-step RK4, 2000 steps, float64. Its
    distance to 4000 steps is 3e-13, far below every tolerance checked against it."""
    system = ReducedGM(nsjax.GaussianMixture(dim=100))
    interp, sched = preset("vp-dilated", 100)
    keys = jax.random.split(KEY, 4)
    ref = jax.jit(jax.vmap(lambda k: nsjax.solve(
        system, interp, sched, key=k, steps=2000, solver=FusedRK4(), dtype=jnp.float64).state))(keys)
    return system, interp, sched, keys, ref


RTOLS = (1e-3, 1e-4, 1e-6)


@pytest.mark.parametrize("name", ["heun", "tsit5"])
def test_adaptive_solve_converges_to_a_fine_reference(name):
    """``steps=PIDController(rtol, atol=rtol)`` with a solver name (``heun``: the fused name, run
    through its embedded-error twin) against the fine fixed-step reference, one compile over all
    tolerances. The error shrinks as rtol does, and stays within ``C (atol + rtol max|y|)`` with
    C = 10 (the global error of a flow over t in [0, 1] is a few local tolerances: measured 0.3-0.4
    for heun, 0.6-6.4 for tsit5). The number of accepted+rejected steps grows like
    ``rtol^(-1/(q+1))`` for an embedded error estimate of order ``q``: Heun's (Euler, q = 1) gives a
    factor ``1000^(1/2) ~ 32`` from rtol 1e-3 to 1e-6 (measured 24); > 15 rules out a higher-order
    pair run in its place (Bosh3: ~10, Tsit5: ~4)."""
    system, interp, sched, keys, ref = _reduced_reference()
    solver = make_solver(name)

    def one(rtol, key):
        sol = nsjax.solve(system, interp, sched, key=key, solver=solver, dtype=jnp.float64,
                          steps=diffrax.PIDController(rtol=rtol, atol=rtol))
        return sol.state, sol.num_steps

    states, num_steps = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(jnp.array(RTOLS), keys)
    scale = 1 + max(float(jnp.max(jnp.abs(ref.u))), float(jnp.max(jnp.abs(ref.g))))
    errors = [max(float(jnp.max(jnp.abs(states.u[i] - ref.u))), float(jnp.max(jnp.abs(states.g[i] - ref.g))))
              for i in range(len(RTOLS))]
    assert errors[0] > errors[1] > errors[2], errors
    for rtol, err in zip(RTOLS, errors):
        assert err <= 10 * rtol * scale, (rtol, err, scale)
    growth = float(jnp.mean(num_steps[2]) / jnp.mean(num_steps[0]))
    if name == "heun":
        assert growth > 15, growth
    else:
        assert growth < 6, growth  # Tsit5: 1000^(1/5) ~ 4 (measured 2.5)


def test_adaptive_solve_uses_the_embedded_tableau():
    """``steps=None`` with a fused name runs diffrax's adaptive solver of the same tableau (its
    accuracy and step growth: :func:`test_adaptive_solve_converges_to_a_fine_reference`)."""
    assert type(adaptive_form(make_solver("heun"))) is diffrax.Heun
    system = ReducedGM(nsjax.GaussianMixture(dim=100))
    interp, sched = preset("vp-dilated", 100)
    with pytest.raises(ValueError, match="adaptive"):
        sample(system, interp, sched, KEY, 3, steps=None, solver=FusedRK4())
    assert issubclass(FusedRK4, AbstractFusedRK) and FusedRK4.adaptive is None
