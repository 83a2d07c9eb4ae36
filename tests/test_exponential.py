"""Exponential and multistep integrators (nsjax.exponential) through nsjax.solve.

- exactness: a point-mass target (constant denoiser) is integrated exactly on any grid, both ends
  (tau = 0, alpha = 0) included;
- convergence order on the exact GM reduction against a fine-step reference;
- DPM-Solver++ 2M against an independent NumPy implementation and the issue's numbers;
- step-by-step equality with diffusers' schedulers on the same denoiser and grid;
- NFE, float32 end points, gradients, the CLI and errors.
"""

from __future__ import annotations

import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
from nsjax.exponential import DDIM, DEIS, IPNDM, DPMSolver2, DPMSolverPP2M, DPMSolverPP3M, UniPC
from nsjax.registry import select
from nsjax.schedules import AbstractSchedule, ScheduleValue
from nsjax.solve import PieceSteps, Save
from nsjax.solvers import SOLVERS, make_solver
from nsjax.sweeps import QuantileReducedGM, normal_quantiles, sweep
from nsjax.systems import AbstractSystem

NAMES = ["ddim", "dpm-solver-2", "dpmpp-2m", "dpmpp-3m", "unipc", "deis", "ipndm"]
F64 = jnp.float64


def _solver(name):
    if name == "dpmpp-3m-diffusers":
        return DPMSolverPP3M(coefficients="diffusers")
    if name == "deis-2":
        return DEIS(solver_order=2)
    return make_solver(name)


# -- a target with a linear posterior mean ------------------------------------------------------
class Gaussian(AbstractSystem):
    """``x1 ~ N(mu, s2 I)``: ``eta = mu + s2 beta (x - beta mu) / D``, ``D = c^2 alpha^2 + s2 beta^2``
    (``s2 = 0``: a point mass, ``eta = mu``). Its flow map is
    ``x_t = a_t mu + sqrt(D_t/D_0)(x_0 - a_0 mu)``."""

    mu: jax.Array
    s2: float

    def init(self, key, scale, dtype):
        return scale * jax.random.normal(key, self.mu.shape, dtype)

    def denoise(self, interpolant, tau, tau_c, x):
        a, alpha = interpolant.beta(tau, tau_c), interpolant.alpha(tau, tau_c)
        D = interpolant.noise_scale**2 * alpha**2 + self.s2 * a**2
        return self.mu + jnp.where(D > 0, self.s2 * a * (x - a * self.mu) / jnp.where(D > 0, D, 1.0), 0.0)

    def velocity(self, interpolant, tau, tau_c, x):
        eta = self.denoise(interpolant, tau, tau_c, x)
        return interpolant.velocity_from_denoiser(tau, tau_c, x, eta)


def _frame(interpolant, value):
    c = interpolant.noise_scale
    return interpolant.beta(value.tau, value.tau_c), c * interpolant.alpha(value.tau, value.tau_c)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.x64
def test_point_mass_is_integrated_exactly_on_any_grid(name):
    """Constant denoiser ``eta = mu``: every step is exact (``x_t = a_t mu + (s_t/s_0)(x_0 - a_0 mu)``),
    at every grid point of the paper's dilated VP and VE grids (d = 1e6, 4 steps; tau(0) = 0 and
    tau(1) = 1, so both ends' limits are exercised). Tolerance: float64 rounding of states of size
    ``c = 1e3`` (VE), 1e-13 relative."""
    d, steps = 1e6, 4
    mu = jnp.array([1.0, -0.5, 2.0])
    z = jnp.array([0.3, -1.2, 0.7])
    system = Gaussian(mu, 0.0)
    grid_ts = (0.25, 0.5, 0.75, 1.0)

    @jax.jit
    def run(index):
        interp, sched = select(("vp-dilated", "ve-dilated"), index, d)
        a0, s0 = _frame(interp, sched.evaluate(jnp.zeros((), F64), 0))
        y0 = s0 * z
        sol = nsjax.solve(
            system, interp, sched, y0, steps=steps, solver=_solver(name), save=Save(grid_ts, fn=lambda y: y)
        )
        exact = []
        for t in grid_ts:
            a, s = _frame(interp, sched.value(jnp.asarray(t, F64)))
            exact.append(a * mu + (s / s0) * (y0 - a0 * mu))
        return sol.path, jnp.stack(exact), sol.state

    for index in (0, 1):
        path, exact, state = run(index)
        scale = jnp.maximum(1.0, jnp.abs(exact))
        assert float(jnp.max(jnp.abs(path - exact) / scale)) < 1e-13, (name, index)
        np.testing.assert_allclose(state, mu, rtol=0, atol=1e-13)


# -- convergence order on the exact GM reduction ---------------------------------------------------
class LambdaUniform(AbstractSchedule):
    """``lambda = log(tau / (c (1 - tau)))`` linear in ``t`` from ``lo`` to ``hi`` (linear interpolant):
    only the lambda grid enters the exponential methods, and a uniform one puts them in their
    asymptotic regime; ``lo = -6`` makes the first-order warm-up step's ``O(e^{2 lo} h^2)`` error
    negligible against the method's own."""

    lo: float
    hi: float
    c: float = 1.0
    ends_at_data = False

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        rho = jnp.exp(-(self.lo + (self.hi - self.lo) * t))
        denom = rho + self.c
        return ScheduleValue(self.c / denom, rho / denom, self.c * rho * (self.hi - self.lo) / denom**2)


_CONV = dict(lo=-6.0, hi=2.0, d=10.0, particles=32)
_CONV_STEPS = (256, 512, 1024)


def _conv_run(solver, counts):
    interp, sched = nsjax.Linear(1.0), LambdaUniform(_CONV["lo"], _CONV["hi"])
    system = QuantileReducedGM(nsjax.GaussianMixture(dim=3, p=0.8, sigma2=0.25), dim=_CONV["d"])
    z = jnp.asarray(normal_quantiles(_CONV["particles"]))

    @eqx.filter_jit
    def run(counts):
        def one(n, zz):
            return nsjax.solve(
                system, interp, sched, key=zz, steps=PieceSteps(n[None]), solver=solver, dtype=F64
            ).state

        return jax.vmap(lambda n: jax.vmap(lambda zz: one(n, zz))(z))(counts)

    return run(jnp.asarray(counts))


@pytest.fixture(scope="module")
def gm_reference():
    """RK4 at 20000 steps (differs from 10000 steps by 4e-13)."""
    return _conv_run(make_solver("rk4"), [20000])


@pytest.mark.parametrize(
    "name, order",
    [
        ("ddim", 1),
        ("dpm-solver-2", 2),
        ("dpmpp-2m", 2),
        ("dpmpp-3m", 3),
        ("dpmpp-3m-diffusers", 2),
        ("unipc", 3),
        ("deis", 3),
        ("ipndm", 2),
    ],
)
@pytest.mark.x64
def test_convergence_order_on_gm_reduction(name, order, gm_reference):
    """Least-squares slope of log2(error) over N = 256, 512, 1024 within 0.2 of the order
    (GM d = 10, p = 0.8, sigma2 = 1/4, float64, 32 quantile particles, RMS error of (u, g) after
    the final denoising step). Orders: UniPC-2 is third order (its corrector); DPM-Solver++ 3M
    with diffusers' coefficient of D2 (half the Taylor value) is second order; iPNDM's fixed
    equal-step Adams–Bashforth weights make it second order on a grid not uniform in rho."""
    out = _conv_run(_solver(name), _CONV_STEPS)
    ref = gm_reference
    err = np.sqrt(
        np.mean((np.asarray(out.u) - np.asarray(ref.u)) ** 2, axis=1)
        + np.mean((np.asarray(out.g) - np.asarray(ref.g)) ** 2, axis=1)
    )
    slope = -np.polyfit(np.log2(_CONV_STEPS), np.log2(err), 1)[0]
    assert abs(slope - order) < 0.2, (name, slope, err)


# -- DPM-Solver++ 2M: an independent implementation, and the issue's numbers ----------------------
def _reference_2m(kind, d, steps, z, restart):
    """DPM-Solver++(2M), midpoint form, on the GM reduction, written from docs/theory.md §7 alone
    (NumPy): ``x_t = (s_t/s_u) x_u + a_t (1 - e^-h) D``, ``D = eta_u + (eta_u - eta_prev)/(2r)``,
    first order on the first step and on the last (to alpha = 0). ``restart``: the history starts
    again at the breakpoint t = 1/2 (nsjax's jump semantics); otherwise it runs across it."""
    p, s2, kappa = 0.8, 0.25, 3.0
    h0 = 0.5 * np.log(p / (1 - p))
    t = np.linspace(0, 1, steps + 1)
    w = kappa / np.sqrt(d)
    if kind == "vp":
        tau, c = np.where(t <= 0.5, 2 * w * t, w + (1 - w) * (2 * t - 1)), 1.0
        tau_c = np.where(t <= 0.5, 1 - 2 * w * t, (1 - w) * (2 - 2 * t))
    else:
        tau, c = np.where(t <= 0.5, 2 * (1 - w) * t, 1 - w * (2 - 2 * t)), np.sqrt(d)
        tau_c = np.where(t <= 0.5, 1 - 2 * (1 - w) * t, w * (2 - 2 * t))
    R = np.sqrt(d)
    a, s = tau, c * tau_c
    with np.errstate(divide="ignore"):
        lam = np.log(a) - np.log(s)
    u, g, q = c * z, np.ones_like(z), c**2 * (d - 1)
    prev = None
    for k in range(steps):
        if restart and k == steps // 2:
            prev = None
        D = s2 * tau[k] ** 2 + c**2 * tau_c[k] ** 2
        eu = s2 * tau[k] / D * u + (1 - s2 * tau[k] ** 2 / D) * R * np.tanh(h0 + tau[k] * R * u / D)
        eg = s2 * tau[k] / D * g
        h = lam[k + 1] - lam[k]
        if prev is not None and np.isfinite(h) and np.isfinite(prev[2]):
            r = (lam[k] - prev[2]) / h
            Du, Dg = eu + (eu - prev[0]) / (2 * r), eg + (eg - prev[1]) / (2 * r)
        else:
            Du, Dg = eu, eg
        prev = (eu, eg, lam[k])
        E = a[k] * s[k + 1] / (s[k] * a[k + 1])
        u = s[k + 1] / s[k] * u + a[k + 1] * (1 - E) * Du
        g = s[k + 1] / s[k] * g + a[k + 1] * (1 - E) * Dg
    sq_dev = ((u - np.sign(u) * R) ** 2 + g**2 * q) / d
    return np.mean(u > 0), np.mean(sq_dev) / s2


# the issue's numbers (docs/theory.md §7), "at d = 1e3, 1e6, 1e9 alike":
# (schedule, steps) -> (p_hat, sigma2_hat/sigma2 range, its tolerance). A range quoted to two
# digits: half its last digit; one value quoted to three digits for all d: 0.003 (the spread over
# d that "alike" allows: 0.0021 for VP 32, 0.0016 for VP 64 in the reference).
_ISSUE = {
    ("vp", 16): (0.816, (0.94, 0.97), 0.005),
    ("vp", 32): (0.804, (1.025, 1.025), 0.003),
    ("vp", 64): (0.801, (1.012, 1.012), 0.003),
    ("ve", 32): (0.801, (0.88, 0.90), 0.005),
    ("ve", 64): (0.799, (0.98, 1.00), 0.005),
}


@pytest.mark.x64
def test_dpmpp_2m_matches_independent_reference_and_issue_numbers():
    """nsjax's 2M (a sweep of QuantileReducedGM, 20000 stratified particles: quadrature error
    ~1e-4) equals the independent NumPy 2M with the breakpoint restart to 1e-10, at d = 1e3, 1e6,
    1e9 on the paper's dilated grids. The issue's numbers are reproduced by the same NumPy 2M
    with the history running across the breakpoint: p_hat within 0.003 (the issue's 1e5 random
    particles: standard error 0.0013, plus rounding) and sigma2_hat/sigma2 within its range
    widened as stated at ``_ISSUE``. The restart is the one difference: nsjax's sigma2_hat/sigma2
    is 0.934 against 0.957 at VP, 16 steps, d = 1e9 (below the issue's 0.94), within 0.002
    elsewhere; p_hat within 3e-4."""
    P = 20000
    z = normal_quantiles(P)
    dims = (1e3, 1e6, 1e9)

    def build(pt):
        interp, sched = select(("vp-dilated", "ve-dilated"), pt["which"], pt["d"], kappa=3.0)
        system = QuantileReducedGM(nsjax.GaussianMixture(dim=3, p=0.8, sigma2=0.25), dim=pt["d"])
        return system, interp, sched

    params = nsjax.sweeps.grid(which=[0, 1], d=list(dims))
    res = sweep(build, params, jnp.asarray(z), steps=[16, 32, 64], solver=DPMSolverPP2M())
    assert res.nonfinite.sum() == 0
    for i, steps in enumerate(res.steps):
        for gi, (which, d) in enumerate(zip(params["which"], params["d"])):
            kind = ("vp", "ve")[int(which)]
            stats = res.point(i, gi)
            p_hat, ratio = np.mean(stats["overlap"] > 0), np.mean(stats["sq_dev"]) / 0.25
            p_ref, ratio_ref = _reference_2m(kind, d, steps, z, restart=True)
            assert abs(p_hat - p_ref) <= 1 / P and abs(ratio - ratio_ref) < 1e-10, (kind, steps, d)
            if (kind, steps) in _ISSUE:
                p_issue, (lo, hi), tol = _ISSUE[(kind, steps)]
                p_cont, ratio_cont = _reference_2m(kind, d, steps, z, restart=False)
                assert abs(p_cont - p_issue) < 0.003, (kind, steps, d, p_cont)
                assert lo - tol <= ratio_cont <= hi + tol, (kind, steps, d, ratio_cont)


# -- step-by-step equality with diffusers -----------------------------------------------------------
class Table(AbstractSchedule):
    """``tau`` interpolated linearly between knots (the grid is the knots: only their values enter)."""

    knots: jax.Array
    tau: jax.Array
    tau_c: jax.Array
    ends_at_data: bool = eqx.field(static=True, default=True)

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        slope = jnp.diff(self.tau) / jnp.diff(self.knots)
        i = jnp.clip(jnp.searchsorted(self.knots, t, side="right") - 1, 0, slope.shape[0] - 1)
        return ScheduleValue(
            jnp.interp(t, self.knots, self.tau), jnp.interp(t, self.knots, self.tau_c), slope[i]
        )


_DIM, _BATCH, _N = 6, 5, 20  # N >= 15: diffusers lowers the order only on a step to sigma = 0


def _diffusers_case(name, p):
    """``(scheduler, frames, prediction, solver, stride, ends_at_data, tolerance)``; ``frames[i]``
    is ``(a, s)`` of diffusers' grid point ``i`` (``x = a x0 + s eps``), float64."""
    diffusers = pytest.importorskip("diffusers")
    torch = pytest.importorskip("torch")

    def from_sigmas(sched):
        sched.sigmas = sched.sigmas.double()  # the schedule in float64 (diffusers stores float32)
        sig = sched.sigmas.numpy()
        return [(1 / np.sqrt(1 + v**2), v / np.sqrt(1 + v**2)) for v in sig]

    f64 = 1e-11  # float64 throughout: rounding over 20 steps
    if name == "ddim":
        sched = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading")
        sched.alphas_cumprod = sched.alphas_cumprod.double()
        sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
        sched.set_timesteps(_N)
        abar = [float(sched.alphas_cumprod[t]) for t in sched.timesteps] + [1.0]
        return sched, [(np.sqrt(v), np.sqrt(1 - v)) for v in abar], "eps", DDIM(), 1, True, f64
    if name in ("dpmpp-2m", "dpmpp-3m"):
        order = 2 if name == "dpmpp-2m" else 3
        sched = diffusers.DPMSolverMultistepScheduler(
            solver_order=order, algorithm_type="dpmsolver++", final_sigmas_type="zero"
        )
        sched.set_timesteps(_N)
        solver = DPMSolverPP2M() if order == 2 else DPMSolverPP3M(coefficients="diffusers")
        # its step() casts the state to float32: 20 steps of float32 rounding on states of size ~3
        return sched, from_sigmas(sched), "eps", solver, 1, True, 1e-5
    if name == "dpm-solver-2":
        sched = diffusers.DPMSolverSinglestepScheduler(
            solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero", lower_order_final=True
        )
        sched.set_timesteps(_N)  # orders 1, 2, 1, 2, ..., 1, 1: the odd points are the midpoints
        return sched, from_sigmas(sched), "eps", DPMSolver2(intermediate="time"), 2, True, f64
    if name == "unipc":
        sched = diffusers.UniPCMultistepScheduler(solver_order=2, solver_type="bh2", final_sigmas_type="zero")
        sched.set_timesteps(_N)
        return sched, from_sigmas(sched), "eps", UniPC(), 1, True, f64
    if name in ("deis-2", "deis-3"):
        order = int(name[-1])
        sched = diffusers.DEISMultistepScheduler(solver_order=order)
        sched.set_timesteps(_N)  # ends at sigma_min (abar[0]), not 0
        return sched, from_sigmas(sched), "eps", DEIS(solver_order=order), 1, False, f64
    if name == "ipndm":
        sched = diffusers.IPNDMScheduler()
        sched.set_timesteps(_N)  # v-prediction on a cos/sin-like grid from alpha = 0 to sigma = 0
        sched.betas = sched.betas.double()
        sched.alphas = (1.0 - sched.betas**2) ** 0.5  # a^2 + s^2 = 1 in float64
        frames = [(float(a), float(s)) for a, s in zip(sched.alphas, sched.betas)]
        return sched, frames, "v", IPNDM(), 1, True, f64
    raise AssertionError(name)


def _diffusers_errors(name):
    """Per-step max |x_nsjax - x_diffusers/(a + s)| and the tolerance."""
    torch = pytest.importorskip("torch")
    p = 0.5 if name == "ipndm" else 0.8
    sched, frames, prediction, solver, stride, ends, tol = _diffusers_case(name, p)
    target = nsjax.GaussianMixture(dim=_DIM, p=p, sigma2=0.25)
    interp = nsjax.Linear(1.0)
    denoise = jax.jit(
        jax.vmap(lambda tau, tau_c, x: target.denoise(interp, tau, tau_c, x)[0], in_axes=(None, None, 0))
    )
    z = np.random.default_rng(0).standard_normal((_BATCH, _DIM))

    # diffusers
    x = torch.tensor(z, dtype=torch.float64)
    ref = [z / sum(frames[0])]
    for i, t in enumerate(sched.timesteps):
        a, s = frames[i]
        eta = np.asarray(denoise(a / (a + s), s / (a + s), x.numpy() / (a + s)))
        eps = (x.numpy() - a * eta) / s
        model = eps if prediction == "eps" else a * eps - s * eta
        x = sched.step(torch.tensor(model), t, x).prev_sample
        ref.append(x.numpy() / sum(frames[i + 1]))
    ref = np.stack(ref)[::stride]

    # nsjax
    a = np.array([f[0] for f in frames])
    s = np.array([f[1] for f in frames])
    knots = np.linspace(0.0, 1.0, len(frames))
    schedule = Table(jnp.asarray(knots), jnp.asarray(a / (a + s)), jnp.asarray(s / (a + s)), ends)
    ts = knots[::stride]
    steps = diffrax.StepTo(ts)

    def one(y0):
        sol = nsjax.solve(
            target,
            interp,
            schedule,
            y0,
            steps=steps,
            solver=solver,
            save=Save(tuple(float(v) for v in ts[1:]), fn=lambda y: y),
        )
        return sol.path

    y0 = jnp.asarray(z / (a[0] + s[0]))
    path = np.swapaxes(np.asarray(jax.jit(jax.vmap(one))(y0)), 0, 1)
    got = np.concatenate([np.asarray(y0)[None], path])
    assert got.shape == ref.shape
    return np.abs(got - ref).max(axis=(1, 2)), tol


@pytest.mark.parametrize(
    "name", ["ddim", "dpmpp-2m", "dpmpp-3m", "dpm-solver-2", "unipc", "deis-2", "deis-3", "ipndm"]
)
@pytest.mark.x64
def test_matches_diffusers_step_by_step(name):
    """The same GM denoiser (d = 6, p = 0.8, or p = 0.5 for iPNDM, see below) as an epsilon (or v)
    network, the same grid (nsjax's ``tau = a/(a + s)`` at ``t_i = i/N`` on a table schedule) and
    the same noise: every step's state agrees (``x_nsjax = x_diffusers/(a + s)``).

    iPNDM: diffusers' first step from alpha = 0 forms ``x0 = (x - s eps)/max(alpha, 1e-8) = 0``
    where the exact limit is the prior mean ``E[x1]``; with p = 0.5 the prior mean is 0 and both
    agree (with p = 0.8 they differ by ``a_1 E[x1]`` from the first step on).
    """
    err, tol = _diffusers_errors(name)
    assert err.max() < tol, (name, err)


# -- NFE, float32 ends, gradients, CLI, errors ------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_float32_end_points_finite(name):
    """float32 with 64-bit mode off, GM reduction at d = 1e8 on the dilated VP and VE grids
    (tau(0) = 0, tau(1) = 1, VE's breakpoint slopes differing by ~1e4): finite states and
    features near their references."""
    d = 1e8
    z = jnp.asarray(normal_quantiles(512), jnp.float32)

    @jax.jit
    def run(index):
        interp, sched = select(("vp-dilated", "ve-dilated"), index, d)
        system = QuantileReducedGM(nsjax.GaussianMixture(dim=3, p=0.8, sigma2=0.25), dim=d)
        system = system.with_dtype(jnp.float32)

        def one(zz):
            sol = nsjax.solve(
                system, interp, sched, key=zz, steps=64, solver=_solver(name), dtype=jnp.float32
            )
            return system.statistics(sol.state), sol.finite

        return jax.vmap(one)(z)

    for index in (0, 1):
        with jax.enable_x64(False):  # the default configuration: no 64-bit constants anywhere
            stats, finite = run(index)
        assert bool(jnp.all(finite)), (name, index)
        p_hat = float(jnp.mean(stats["overlap"] > 0))
        ratio = float(jnp.mean(stats["sq_dev"])) / 0.25
        assert abs(p_hat - 0.8) < 0.05 and abs(ratio - 1) < 0.2, (name, index, p_hat, ratio)


@pytest.mark.parametrize("name", ["dpm-solver-2"])
@pytest.mark.x64
def test_gradient_matches_finite_difference(name):
    """d u(1) / d kappa through solve (dilated VE, d = 1e6, tau(0) = 0 and tau(1) = 1): reverse mode
    equals a central difference (step 1e-6: rounding 1e3 * 2e-16 / 1e-6 ~ 2e-7). DPM-Solver-2's
    lambda-midpoint (bisection) carries its implicit-function derivative."""

    def f(kappa):
        interp, sched = select(("ve-dilated",), 0, 1e6, kappa=kappa)
        system = QuantileReducedGM(nsjax.GaussianMixture(dim=3), dim=1e6)
        return nsjax.solve(
            system, interp, sched, key=jnp.asarray(0.3), steps=8, solver=_solver(name), dtype=F64
        ).state.u

    value_and_grad = jax.jit(jax.value_and_grad(f))  # one compilation serves both
    grad = float(value_and_grad(3.0)[1])
    eps = 1e-6
    fd = float((value_and_grad(3.0 + eps)[0] - value_and_grad(3.0 - eps)[0]) / (2 * eps))
    assert np.isfinite(grad) and abs(grad - fd) < 1e-6 + 1e-4 * abs(fd), (grad, fd)


def test_cli_samples_with_dpmpp_2m(tmp_path, capsys):
    from nsjax.cli import main

    out = tmp_path / "run.json"
    args = [
        "sample",
        "--solver",
        "dpmpp-2m",
        "--engine",
        "reduced",
        "--schedule",
        "vp-dilated",
        "--d",
        "1000000",
        "--particles",
        "2000",
        "--steps",
        "32",
        "--x64",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["solver"] == "dpmpp-2m" and report["nfe"] == 32 and report["nonfinite"] == 0
    assert abs(report["p_hat"] - 0.8) < 4 * report["p_stderr"] + 0.01
    assert abs(report["sigma2_hat"] / 0.25 - 1.0) < 0.05  # 1.023 at 32 steps (see above)
    capsys.readouterr()


def test_errors():
    interp, sched = nsjax.preset("vp-dilated", 100)
    target = nsjax.GaussianMixture(dim=3)
    with pytest.raises(ValueError, match="adaptive steps need an adaptive solver"):
        nsjax.solve(
            target,
            interp,
            sched,
            key=jax.random.PRNGKey(0),
            steps=diffrax.PIDController(rtol=1e-3, atol=1e-6),
            solver=DPMSolverPP2M(),
        )
    with pytest.raises(ValueError, match="solver_order"):
        UniPC(solver_order=3)
    with pytest.raises(ValueError, match="solver_order"):
        DEIS(solver_order=4)
    with pytest.raises(ValueError, match="solver_order"):
        IPNDM(solver_order=5)
    with pytest.raises(ValueError, match="intermediate"):
        DPMSolver2(intermediate="t")
    with pytest.raises(ValueError, match="coefficients"):
        DPMSolverPP3M(coefficients="heun")
    with pytest.raises(ValueError, match="interpolant must be Linear"):
        nsjax.solve(
            nsjax.ReducedGM(target),
            nsjax.Trig(1.0),
            nsjax.Constant(),
            key=jax.random.PRNGKey(0),
            steps=4,
            solver=DDIM(),
        )
    term = diffrax.ODETerm(lambda t, y, args: -y)
    with pytest.raises(TypeError, match="FlowTerm"):
        diffrax.diffeqsolve(term, DDIM(), 0.0, 1.0, 0.5, jnp.ones(2))
    assert {n: SOLVERS[n]().evaluations_per_step() for n in NAMES} == {
        n: (2, 0) if n == "dpm-solver-2" else (1, 0) for n in NAMES
    }
    assert all(not nsjax.solvers.is_adaptive(SOLVERS[n]()) for n in NAMES)
