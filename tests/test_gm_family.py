"""Schedules learned on a family of GM targets (issue 11): the family objective is the sum of the
members' objectives, its gradient matches finite differences, and bad ``--family`` values exit 2.

Cheap by design: Euler with 4 steps (2 per phase) at d = 1e3, two members, one compilation each.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
from nsjax.cli import main
from nsjax.interpolants import make_interpolant
from nsjax.objectives import gm_errors, tolerance_loss
from nsjax.optimize import at_dim, gm_objective
from nsjax.schedules import TwoPhase, Warp
from nsjax.solvers import make_solver

D = 1000.0
STEPS = 4
MEMBERS = ((0.8, 0.25), (0.3, 2.0))


def _schedule(params):
    """A VP two-phase schedule with non-trivial warps; ``params = (log kappa, a_0 of phase 1)``."""
    log_kappa, a = params
    first = Warp(jnp.stack([a, jnp.asarray(-0.2, a.dtype), jnp.asarray(0.1, a.dtype)]))
    return TwoPhase(log_kappa, D, first, Warp(jnp.array([-0.3, 0.1, 0.05])), noise="vp")


DIMS = (D, 3 * D)  # at d = 1e6 Euler's 4 steps make the objective rough at h <~ 1e-4 (FD noise)
X = (math.log(2.5), 0.4)


@jax.jit
def _loss(target, params):
    """The objective of ``target`` (one GM or a list: a family) at ``DIMS``; the target is an
    argument, so both members share one compilation."""
    objective = gm_objective(target, DIMS, solver=make_solver("euler"), steps=STEPS)
    return objective(_schedule(params))


@pytest.fixture(scope="module")
def family():
    return [nsjax.GaussianMixture(dim=int(D), p=jnp.asarray(p), sigma2=jnp.asarray(s2)) for p, s2 in MEMBERS]


@pytest.mark.x64
def test_family_objective_is_the_sum_of_the_members_objectives(family):
    """Sum over members x d (one vmapped program) against each member's own objective; float64,
    the same arithmetic in another batching: agreement to rounding (1e-12 relative). Both members
    contribute (a family that dropped one would be off by ~half the total)."""
    x = jnp.asarray(X)
    together = float(_loss(family, x))
    alone = [float(_loss(member, x)) for member in family]
    assert min(alone) > 0.1 * max(alone)
    np.testing.assert_allclose(together, sum(alone), rtol=1e-12)


@pytest.mark.x64
def test_family_gradient_matches_finite_differences(family):
    """d loss / d (log kappa, a_0) of the two-member family: forward mode against central
    differences (h ~ eps^(1/3)); rtol 1e-4 as for one target (tests/test_optimize.py: the sigma2
    quadrature nodes move with z*, differentiated to first order, 2e-5 measured)."""
    x = jnp.asarray(X)
    grad = jax.jit(jax.jacfwd(_loss, argnums=1))(family, x)
    h = 1e-5
    for k in range(2):
        step = jnp.zeros(2).at[k].set(h)
        fd = (_loss(family, x + step) - _loss(family, x - step)) / (2 * h)
        np.testing.assert_allclose(grad[k], fd, rtol=1e-4)
        assert abs(float(fd)) > 1.0  # the derivative is resolved, not noise


@pytest.mark.x64
def test_dim_ratios_add_the_members_at_a_times_d_with_the_schedule_tuned_for_d(family):
    """``dim_ratios=(1/2, 1)``: the matched objective (``_loss``) plus, for each member and d, the
    loss of the schedule at d on the GM at d / 2, written out with ``gm_errors`` (float64, same
    arithmetic: 1e-12). Dropping the ratio or applying it to the schedule too changes the sum."""
    x = jnp.asarray(X)
    ratios = jax.jit(
        lambda params: gm_objective(
            family, DIMS, solver=make_solver("euler"), steps=STEPS, dim_ratios=(0.5, 1.0)
        )(_schedule(params))
    )(x)

    @jax.jit
    def half(target, params):
        s = _schedule(params)
        return sum(
            tolerance_loss(
                gm_errors(target, make_interpolant("linear", 1.0), at_dim(s, d), steps=STEPS,
                          solver=make_solver("euler"), dim=0.5 * d)
            )
            for d in DIMS
        )

    extra = sum(float(half(member, x)) for member in family)
    matched = float(_loss(family, x))
    assert abs(extra - matched) > 0.01 * matched  # the mismatched members are different terms
    np.testing.assert_allclose(float(ratios), matched + extra, rtol=1e-12)
    with pytest.raises(ValueError, match="dim_ratios"):
        gm_objective(family, DIMS, solver=make_solver("euler"), steps=STEPS, dim_ratios=(0.0,))


def test_a_family_must_be_gm_targets_sharing_dim():
    with pytest.raises(ValueError, match="target"):
        gm_objective([], [D], solver=make_solver("euler"), steps=STEPS)
    with pytest.raises(ValueError, match="dim"):
        gm_objective(
            [nsjax.GaussianMixture(dim=10), nsjax.GaussianMixture(dim=20)], [D], solver=make_solver("euler"), steps=2
        )


@pytest.mark.parametrize(
    "extra",
    [
        ["--family", "0.8:0.25,1.2:1"],  # p outside (0, 1)
        ["--family", "0.8:0.25,0.5:0"],  # sigma2 not > 0
        ["--family", "0.5"],  # not a p:sigma2 pair
        ["--family", "0.5:1", "--p", "0.3"],  # both a family and one target
        ["--dim-ratios", "0.5,-1"],  # a ratio not > 0
    ],
)
def test_bad_family_exits_2_naming_it(extra, capsys):
    """Exit status 2 and --family (--dim-ratios) named in the error line itself (argparse's usage line names every
    option); the range is stated for bad values. Rejected before any computation."""
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "--no-progress", *extra])
    assert exit_info.value.code == 2
    error_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in error_line and extra[0] in error_line, error_line
    if extra[-2] == "--family":
        assert "(0, 1)" in error_line and "(0, inf)" in error_line, error_line
