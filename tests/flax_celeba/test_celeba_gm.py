"""End-to-end check of the image ODE pipeline on a network known exactly: the nsjax GM.

The Gaussian mixture of nsjax (d = 3x8x8 = 192, p = 0.8, sigma^2 = 1/4) is wrapped as a
diffusers-style network (VE score model at sigma; epsilon model at DDPM timesteps) and run
through ``probability_flow`` (network -> SNR matching -> velocity -> diffrax), from the same
noise as the engine. Oracle: the nsjax engine itself, ``nsjax.solve.sample`` on the target with
the same interpolant, schedule, step count and solver (float64, ``keep_states=True``).

Tolerance: final states within 1e-5 (measured ~1e-6: the only difference is the score
wrapper's level range, clamped to sigma in [1e-9, 1e9], i.e. tau within ~1e-9 of its ends), so
the features p_hat, sigma2_hat agree to rounding.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_celeba.denoisers import ddpm_denoiser, ve_denoiser
from flax_celeba.gm import gm_features, gm_network
from flax_celeba.samplers import probability_flow
from flax_celeba.schedulers import DDPMSchedulerConfig
from nsjax import sample as engine_sample
from nsjax.interpolants import Linear
from nsjax.schedules import DDPM, Constant, DilatedVE, DilatedVP
from nsjax.targets.gaussian_mixture import GaussianMixture

NUM, IMAGE = 256, (3, 8, 8)
DIM = 192
SOLVERS = {"euler": diffrax.Euler, "heun": diffrax.Heun}


def _engine(target, interpolant, schedule, steps, solver, seed):
    """nsjax's engine: final states (images) and the noise z it started from."""
    key = jax.random.PRNGKey(seed)
    result = engine_sample(
        target,
        interpolant,
        schedule,
        key,
        NUM,
        steps=steps,
        solver=SOLVERS[solver](),
        keep_states=True,
        dtype=jnp.float64,
    )
    keys = jax.random.split(key, NUM)
    z = jax.vmap(lambda k: jax.random.normal(k, (DIM,), jnp.float64))(keys)
    return jnp.asarray(result.states).reshape(NUM, *IMAGE), z.reshape(NUM, *IMAGE)


def _check(got, ref, target, tol, sigma2_tol=1e-7):
    assert float(jnp.abs(got - ref).max()) < tol
    f_got, f_ref = gm_features(got, target), gm_features(ref, target)
    assert float(f_got["p_hat"]) == float(f_ref["p_hat"])
    assert abs(float(f_got["sigma2_hat"]) - float(f_ref["sigma2_hat"])) < sigma2_tol


@pytest.mark.parametrize(
    "name, solver", [("dilated_vp", "heun"), ("dilated_ve", "euler"), ("constant_vp", "euler")]
)
def test_gm_score_network_reproduces_engine(name, solver):
    with jax.enable_x64(True):
        target = GaussianMixture(dim=DIM, p=0.8, sigma2=0.25)
        vp, ve = Linear(1.0), Linear(float(np.sqrt(DIM)))
        schedule, interpolant = {
            "dilated_vp": (DilatedVP(3.0, DIM), vp),
            "dilated_ve": (DilatedVE(3.0, DIM), ve),
            "constant_vp": (Constant(), vp),
        }[name]
        ref, z = _engine(target, interpolant, schedule, 16, solver, seed=0)
        denoiser = ve_denoiser(gm_network(target, "score"), 1e-9, 1e9)
        got = probability_flow(denoiser, schedule, interpolant, 16, z, solver=solver)
        _check(got, ref, target, 1e-5)


def test_gm_epsilon_network_on_ddpm_schedule():
    """The epsilon wrapper at DDPM timesteps, nsjax's DDPM schedule (inside the trained range;
    both end with the denoising step at tau_max < 1).

    The wrapper's DDPM table is diffusers' float32 ``alphas_cumprod``; nsjax continues ``abar``
    analytically (1e-7 relative apart), so the last level can sit just past the table's end and
    be clamped: sigma2_hat agrees to 1e-6 rather than rounding.
    """
    with jax.enable_x64(True):
        target = GaussianMixture(dim=DIM, p=0.8, sigma2=0.25)
        interpolant, schedule = Linear(1.0), DDPM()
        ref, z = _engine(target, interpolant, schedule, 20, "heun", seed=1)
        denoiser = ddpm_denoiser(gm_network(target, "epsilon"), DDPMSchedulerConfig())
        got = probability_flow(denoiser, schedule, interpolant, 20, z, solver="heun")
        _check(got, ref, target, 1e-5, sigma2_tol=1e-6)
