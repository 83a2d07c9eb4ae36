"""DDPM ancestral and VE predictor-corrector samplers against diffusers' schedulers.

Oracle: diffusers' ``DDPMScheduler.step`` and ``ScoreSdeVeScheduler.step_correct/step_pred``
driven by the diffusers UNet, replayed on the same initial sample and the same noise draws (a
second ``torch.Generator`` with the same seed reproduces the scheduler's draws in order).

* One step from diffusers' own state: 1e-4 relative (network parity, float32 rounding).
* Whole 8-step trajectories: errors compound through the steps (and through DDPM's clip), so
  1e-3 relative is allowed; the measured values are ~1e-6.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from flax_celeba import api
from flax_celeba.samplers import (
    ddpm_ancestral,
    ddpm_coefficients,
    ddpm_step,
    ve_coefficients,
    ve_correct,
    ve_predict,
    ve_predictor_corrector,
)
from flax_celeba.schedulers import DDPMSchedulerConfig, VESchedulerConfig
from flax_celeba.testing import relative_error

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

SHAPE = (2, 3, 16, 16)
STEPS = 8


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddpm_matches_diffusers_scheduler(small_vp, spacing):
    model, folder = small_vp
    network = api.load_pretrained(folder)
    ours = DDPMSchedulerConfig(timestep_spacing=spacing)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    # Same table up to float32 rounding (torch's linspace/cumprod differ from numpy's by ulps).
    np.testing.assert_allclose(ours.alphas_cumprod(), theirs.alphas_cumprod.numpy(), rtol=2e-6)
    theirs.set_timesteps(STEPS)
    np.testing.assert_array_equal(ours.timesteps(STEPS), theirs.timesteps.numpy())

    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    gen, replay = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    sample, states, noise = torch.from_numpy(x), [x], []
    for t in theirs.timesteps:
        with torch.no_grad():
            eps = model(sample, t).sample
        noise.append(torch.randn(SHAPE, generator=replay).numpy() if t > 0 else np.zeros(SHAPE))
        sample = theirs.step(eps, t, sample, generator=gen).prev_sample
        states.append(sample.numpy())
    noise = np.stack(noise).astype(np.float32)

    coefs = ddpm_coefficients(ours, ours.timesteps(STEPS))
    for k in range(STEPS):  # step by step, from diffusers' own state
        step_k = {name: value[k] for name, value in coefs.items()}
        got = ddpm_step(network, step_k, jnp.asarray(states[k]), jnp.asarray(noise[k]), 1.0)
        assert relative_error(got, states[k + 1]) < 1e-4, (spacing, k)
    whole = ddpm_ancestral(network, ours, STEPS, jnp.asarray(x), noise=jnp.asarray(noise), chunk=4)
    assert relative_error(whole, states[-1]) < 1e-3


@pytest.mark.parametrize("num_steps", [2, 10, 333, 500, 667, 1000, 2000])
def test_ve_predictor_index_matches_diffusers(num_steps):
    """diffusers indexes discrete_sigmas by long(t_i (N-1)) in float32; we use N-1-i."""
    sched = diffusers.ScoreSdeVeScheduler(sigma_max=380.0, snr=0.075)
    sched.set_timesteps(num_steps)
    index = (sched.timesteps * (num_steps - 1)).long().numpy()
    ours = VESchedulerConfig(sigma_max=380.0, snr=0.075)
    np.testing.assert_array_equal(ours.predictor_indices(num_steps), index)


def test_ve_pc_matches_diffusers_scheduler(small_ve):
    model, folder = small_ve
    network = api.load_pretrained(folder)
    ours = VESchedulerConfig(sigma_max=380.0, snr=0.075, correct_steps=1)
    theirs = diffusers.ScoreSdeVeScheduler(sigma_max=380.0, snr=0.075, correct_steps=1)
    theirs.set_timesteps(STEPS)
    theirs.set_sigmas(STEPS)
    coefs = ve_coefficients(ours, STEPS)
    np.testing.assert_allclose(coefs["sigma"], theirs.sigmas.numpy(), rtol=1e-6)

    x = (380.0 * np.random.default_rng(1).standard_normal(SHAPE)).astype(np.float32)
    gen, replay = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    sample, noise, record = torch.from_numpy(x), [], []
    for i, t in enumerate(theirs.timesteps):
        sigma = theirs.sigmas[i] * torch.ones(SHAPE[0])
        draws = [torch.randn(SHAPE, generator=replay) for _ in range(2)]
        noise.append(np.stack([d.numpy() for d in draws]))
        before = sample.numpy()
        with torch.no_grad():
            sample = theirs.step_correct(
                model(sample, sigma).sample, sample, generator=gen
            ).prev_sample
            corrected = sample.numpy()
            out = theirs.step_pred(model(sample, sigma).sample, t, sample, generator=gen)
        sample = out.prev_sample
        record.append((before, corrected, sample.numpy(), out.prev_sample_mean.numpy()))
    noise = np.stack(noise).astype(np.float32)

    for i in range(STEPS):  # step by step, from diffusers' own state
        before, corrected, after, mean = record[i]
        sigma = jnp.full((SHAPE[0],), coefs["sigma"][i])
        got = ve_correct(network, sigma, jnp.asarray(before), jnp.asarray(noise[i, 0]), ours.snr)
        assert relative_error(got, corrected) < 1e-4, ("corrector", i)
        got, got_mean = ve_predict(
            network, sigma, coefs["g"][i], jnp.asarray(corrected), jnp.asarray(noise[i, 1])
        )
        assert relative_error(got, after) < 1e-4, ("predictor", i)
        assert relative_error(got_mean, mean) < 1e-4, ("predictor mean", i)
    whole = ve_predictor_corrector(network, ours, STEPS, jnp.asarray(x), noise=jnp.asarray(noise))
    assert relative_error(whole, record[-1][3]) < 1e-3


def test_samplers_run_from_a_key(small_vp):
    """Key-driven runs (what the CLI uses): finite, right shape, chunking does not change them."""
    import jax

    _, folder = small_vp
    network = api.load_pretrained(folder)
    x = jax.random.normal(jax.random.PRNGKey(0), SHAPE, jnp.float32)
    key = jax.random.PRNGKey(1)
    one = ddpm_ancestral(network, DDPMSchedulerConfig(), 4, x, key=key)
    two = ddpm_ancestral(network, DDPMSchedulerConfig(), 4, x, key=key, chunk=2, progress=True)
    assert one.shape == SHAPE and bool(jnp.all(jnp.isfinite(one)))
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)
