"""Image samplers on diffusers-style networks: DDPM ancestral, score-SDE VE predictor-corrector,
and the probability-flow ODE of a stochastic interpolant driven by any nsjax schedule.

All are batched and jit-compiled (``lax.scan`` over steps; the network is a pytree argument, so
its parameters are traced rather than baked into the program). Randomness is either a key or an
explicit ``noise`` array (one draw per random operation, in diffusers' order), the latter so that
tests can replay diffusers' schedulers on the same noise. Long step loops run in chunks of
``chunk`` steps, with an optional tqdm progress bar between chunks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nsjax.solve import check_solve, solve, step_grid
from nsjax.solvers import SOLVERS, make_solver
from nsjax.systems import AbstractSystem

from .denoisers import LevelDenoiser
from .schedulers import DDPMSchedulerConfig, VESchedulerConfig

__all__ = [
    "ddpm_coefficients",
    "ddpm_step",
    "ddpm_ancestral",
    "ve_coefficients",
    "ve_correct",
    "ve_predict",
    "ve_predictor_corrector",
    "probability_flow",
    "ode_grid",
    "DenoiserSystem",
    "SOLVERS",
]

Array = jax.Array
Network = Callable[[Array, Array], Array]


def _noise_source(
    key: Array | None, noise: Array | None, num_steps: int, per_step: tuple[int, ...]
) -> Array:
    """Per-step scan input: the given ``noise`` (steps, *per_step) or one key per step."""
    if (key is None) == (noise is None):
        raise ValueError("give exactly one of key= and noise=")
    if noise is not None:
        noise = jnp.asarray(noise)
        if noise.shape != (num_steps, *per_step):
            raise ValueError(f"noise must have shape {(num_steps, *per_step)}, got {noise.shape}")
        return noise
    return jax.random.split(key, num_steps)


def _draw(source: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    """One step's noise: the array itself, or standard normals from the step's key."""
    if source.shape == shape:
        return source.astype(dtype)
    return jax.random.normal(source, shape, dtype)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _scan_chunk(step: Callable, static: Any, carry: Any, xs: Any) -> Any:
    """``lax.scan`` of ``step(static, carry, x)``; cached per (step, static, shapes)."""
    return jax.lax.scan(lambda c, x: (step(static, c, x), None), carry, xs)[0]


def _run_scan(
    step: Callable[[Any, Any, Any], Any],
    static: Any,
    carry: Any,
    xs: Any,
    num_steps: int,
    chunk: int | None,
    progress: bool,
    desc: str,
) -> Any:
    """Scan ``carry <- step(static, carry, xs[i])`` in jit-compiled chunks (tqdm between chunks).

    ``step`` is a module-level function and ``static`` hashable, so that compiled chunks are
    reused across calls with the same shapes.
    """
    chunk = num_steps if chunk is None else max(1, min(chunk, num_steps))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_steps, desc=desc, unit="step")
    for start in range(0, num_steps, chunk):
        stop = min(start + chunk, num_steps)
        piece = jax.tree.map(lambda a, lo=start, hi=stop: a[lo:hi], xs)
        carry = _scan_chunk(step, static, carry, piece)
        if bar is not None:
            jax.block_until_ready(carry)
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    return carry


def ddpm_coefficients(scheduler: DDPMSchedulerConfig, timesteps: np.ndarray) -> dict[str, Array]:
    """Per-step float32 constants of ``DDPMScheduler.step`` on a descending ``timesteps`` grid.

    For ``t > t'`` (``t' = -1`` after the last step): ``sqrt(1 - abar_t)``, ``sqrt(abar_t)``,
    ``c0 = sqrt(abar_t') beta_t / (1 - abar_t)``, ``ct = sqrt(alpha_t)(1 - abar_t')/(1 - abar_t)``
    with ``alpha_t = abar_t / abar_t'``, ``beta_t = 1 - alpha_t``, and the noise std
    (``variance_type``; 0 at ``t = 0``), in diffusers' operation order.
    """
    timesteps = np.asarray(timesteps, np.int64)
    abar = scheduler.alphas_cumprod()
    one = np.float32(1.0)
    prev = np.concatenate([timesteps[1:], [-1]])
    a_t = abar[timesteps]
    a_prev = np.where(prev >= 0, abar[np.maximum(prev, 0)], one).astype(np.float32)
    beta_prod = one - a_t
    current_alpha = a_t / a_prev
    current_beta = one - current_alpha
    if scheduler.variance_type == "fixed_small":
        variance = np.maximum((one - a_prev) / (one - a_t) * current_beta, np.float32(1e-20))
    else:
        variance = current_beta
    coefs = {
        "t": timesteps.astype(np.float32),
        "sqrt_beta_prod": np.sqrt(beta_prod),
        "sqrt_abar": np.sqrt(a_t),
        "c0": np.sqrt(a_prev) * current_beta / beta_prod,
        "ct": np.sqrt(current_alpha) * (one - a_prev) / beta_prod,
        "std": np.where(timesteps > 0, np.sqrt(variance), 0.0).astype(np.float32),
    }
    return {k: jnp.asarray(v) for k, v in coefs.items()}


def ddpm_step(
    network: Network, coefs: dict[str, Array], x: Array, z: Array, clip: float | None
) -> Array:
    """One ``DDPMScheduler.step`` (coefficients of one step, noise ``z``)::

    x0_hat = clip((x - sqrt(1 - abar_t) eps(x, t)) / sqrt(abar_t));  x <- c0 x0_hat + ct x + std z
    """
    eps = network(x, jnp.broadcast_to(coefs["t"], x.shape[:1]))
    x0 = (x - coefs["sqrt_beta_prod"] * eps) / coefs["sqrt_abar"]
    if clip is not None:
        x0 = jnp.clip(x0, -clip, clip)
    return coefs["c0"] * x0 + coefs["ct"] * x + coefs["std"] * z


def ddpm_ancestral(
    network: Network,
    scheduler: DDPMSchedulerConfig,
    num_inference_steps: int,
    x_init: Array,
    *,
    key: Array | None = None,
    noise: Array | None = None,
    chunk: int | None = None,
    progress: bool = False,
) -> Array:
    """DDPM ancestral sampling as diffusers' ``DDPMPipeline`` (Ho et al. 2020): :func:`ddpm_step`
    on ``scheduler.timesteps(num_inference_steps)``.

    Args:
        network: ``(x (B,C,H,W), t (B,)) -> eps``, a pytree callable.
        x_init: ``x_T ~ N(0, I)``, shape (B, C, H, W).
        key / noise: randomness; ``noise`` has shape (N, B, C, H, W), entry ``i`` used at step
            ``i`` (the last step, ``t = 0``, draws none in diffusers; its entry is ignored).
    Returns:
        ``x_0`` in the model's data space ([-1, 1] for the CelebA-HQ model).
    """
    coefs = ddpm_coefficients(scheduler, scheduler.timesteps(num_inference_steps))
    x_init = jnp.asarray(x_init)
    source = _noise_source(key, noise, num_inference_steps, x_init.shape)
    clip = scheduler.clip_sample_range if scheduler.clip_sample else None
    _, x = _run_scan(
        _ddpm_scan_step,
        clip,
        (network, x_init),
        (coefs, source),
        num_inference_steps,
        chunk,
        progress,
        "DDPM",
    )
    return x


def _ddpm_scan_step(clip: float | None, carry: tuple, xs: tuple) -> tuple:
    net, x = carry
    c, src = xs
    return net, ddpm_step(net, c, x, _draw(src, x.shape, x.dtype), clip)


def ve_coefficients(scheduler: VESchedulerConfig, num_inference_steps: int) -> dict[str, Array]:
    """Per-step constants of score-SDE PC sampling: the network's ``sigma_i`` (``scheduler.sigmas``)
    and the predictor's ``g_i = sqrt(sigma_k^2 - sigma_{k-1}^2)`` on ``discrete_sigmas``
    (``k = N-1-i``, ``sigma_{-1} = 0``)."""
    n = num_inference_steps
    disc = scheduler.discrete_sigmas(n)
    k = scheduler.predictor_indices(n)
    adjacent = np.where(k == 0, np.float32(0.0), disc[np.maximum(k - 1, 0)]).astype(np.float32)
    return {
        "sigma": jnp.asarray(scheduler.sigmas(n)),
        "g": jnp.asarray(np.sqrt(disc[k] ** 2 - adjacent**2)),
    }


def ve_correct(network: Network, sigma: Array, x: Array, z: Array, snr: float) -> Array:
    """One Langevin corrector step (``ScoreSdeVeScheduler.step_correct``)::

    e = 2 (snr mean_b|z_b| / mean_b|s_b|)^2,   x <- x + e s + sqrt(2 e) z,   s = network(x, sigma)
    """
    score = network(x, sigma)
    grad_norm = jnp.linalg.norm(score.reshape(x.shape[0], -1), axis=-1).mean()
    noise_norm = jnp.linalg.norm(z.reshape(x.shape[0], -1), axis=-1).mean()
    e = (snr * noise_norm / grad_norm) ** 2 * 2
    return x + e * score + jnp.sqrt(e * 2) * z


def ve_predict(network: Network, sigma: Array, g: Array, x: Array, z: Array) -> tuple[Array, Array]:
    """Reverse-diffusion predictor (``step_pred``): ``x_mean = x + g^2 s``, ``x_mean + g z``."""
    x_mean = x + g**2 * network(x, sigma)
    return x_mean + g * z, x_mean


def ve_predictor_corrector(
    network: Network,
    scheduler: VESchedulerConfig,
    num_inference_steps: int,
    x_init: Array,
    *,
    key: Array | None = None,
    noise: Array | None = None,
    correct_steps: int | None = None,
    chunk: int | None = None,
    progress: bool = False,
) -> Array:
    """Score-SDE VE predictor-corrector sampling as diffusers' ``ScoreSdeVePipeline``
    (Song et al. 2021): per step ``i``, ``correct_steps`` × :func:`ve_correct` then
    :func:`ve_predict`, the network evaluated at ``sigma_i`` (:func:`ve_coefficients`).

    Args:
        x_init: ``sigma_max z``, shape (B, C, H, W).
        noise: shape (N, correct_steps + 1, B, C, H, W): corrector draws, then the predictor's.
    Returns:
        the last ``x_mean`` (data space [0, 1] for the CelebA-HQ model; not clamped).
    """
    n = num_inference_steps
    m = scheduler.correct_steps if correct_steps is None else correct_steps
    x_init = jnp.asarray(x_init)
    source = _noise_source(key, noise, n, (m + 1, *x_init.shape))
    carry = (network, x_init, x_init)
    xs = (ve_coefficients(scheduler, n), source)
    static = (m, float(scheduler.snr))
    _, _, x_mean = _run_scan(_ve_scan_step, static, carry, xs, n, chunk, progress, "VE PC")
    return x_mean


def _ve_scan_step(static: tuple[int, float], carry: tuple, xs: tuple) -> tuple:
    m, snr = static
    net, x, _ = carry
    c, src = xs
    sigma = jnp.broadcast_to(c["sigma"], x.shape[:1])
    draws = _draw(src, (m + 1, *x.shape), x.dtype)
    for j in range(m):
        x = ve_correct(net, sigma, x, draws[j], snr)
    x, x_mean = ve_predict(net, sigma, c["g"], x, draws[m])
    return net, x, x_mean


class DenoiserSystem(AbstractSystem):
    """A batch of images as one nsjax system: the interpolant's velocity from the network.

    State: ``X`` of shape (B, C, H, W) in the interpolant's coordinates (docs/theory.md §1, §5).
    """

    denoiser: LevelDenoiser

    def init(self, key, scale, dtype):
        raise TypeError("DenoiserSystem starts from a given state: pass y0 = c alpha(tau(0)) z")

    def velocity(self, interpolant, tau, tau_c, state):
        return _interpolant_velocity(self.denoiser, interpolant, tau, tau_c, state)[0]

    def denoise(self, interpolant, tau, tau_c, state):
        return _interpolant_velocity(self.denoiser, interpolant, tau, tau_c, state)[1]


def ode_grid(schedule: Any, num_steps: int) -> tuple[np.ndarray, ...]:
    """Per-piece step grids of nsjax's engine (:func:`nsjax.solve.step_grid`): ``num_steps``
    steps in all, uniform within each piece, breakpoints on the grid."""
    return step_grid(schedule, num_steps)


def _interpolant_velocity(
    denoiser: LevelDenoiser, interpolant: Any, tau: Array, tau_c: Array, x: Array
) -> tuple[Array, Array]:
    """``(b, eta)`` at ``I_tau = x``: ``b = beta' eta + c alpha' eps`` (``x0 = c z``), docs/theory.md §1,
    §5.

    The network sees ``x / sqrt(beta^2 + c^2 alpha^2)`` at log-SNR ``2 log(beta / (c alpha))``.
    """
    c = interpolant.noise_scale
    alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
    log_snr = 2 * (jnp.log(beta) - jnp.log(c * alpha))
    scale = jnp.sqrt(beta**2 + (c * alpha) ** 2)
    eta, eps = denoiser(x / scale, jnp.broadcast_to(log_snr, x.shape[:1]))
    b = interpolant.dbeta(tau, tau_c) * eta + c * interpolant.dalpha(tau, tau_c) * eps
    return b, eta


@eqx.filter_jit
def _solve_ode(
    denoiser: LevelDenoiser, schedule: Any, interpolant: Any, z: Array, steps: int, solver: Any
) -> Array:
    start = schedule.evaluate(jnp.asarray(0.0, z.dtype), 0)
    y0 = interpolant.noise_scale * interpolant.alpha(start.tau, start.tau_c) * z
    return solve(DenoiserSystem(denoiser), interpolant, schedule, y0, steps=steps, solver=solver).state


def probability_flow(
    denoiser: LevelDenoiser,
    schedule: Any,
    interpolant: Any,
    num_steps: int,
    z: Array,
    solver: str = "euler",
) -> Array:
    """Integrate ``dX/dt = tau'(t) b(tau(t), X)`` for the interpolant with the network's denoiser.

    The network defines ``x_s = a_s x1 + s_s z``; at each ``tau`` it is evaluated at the matching
    signal-to-noise ratio ``beta^2/(c^2 alpha^2)`` (docs/theory.md §5; for the linear interpolant
    ``tau = c sqrt(SNR)/(1 + c sqrt(SNR))``), and ``b = beta' eta + c alpha' eps``.

    The solve is :func:`nsjax.solve` itself (:class:`DenoiserSystem`), validated as every nsjax
    driver is: start at ``X = c alpha(tau(0)) z`` (pure noise; the signal term is dropped,
    exact when ``tau(0) = 0``); when ``tau(1) < 1`` finish with the denoising step
    ``X <- eta(tau(1), X)``; nsjax's grid (:func:`ode_grid`), piece by piece. Levels beyond the
    network's trained range are clamped (:class:`~flax_celeba.denoisers.LevelDenoiser`).

    Args:
        denoiser: from :func:`~flax_celeba.denoisers.ddpm_denoiser` / ``ve_denoiser``.
        schedule: an nsjax schedule (``evaluate(t, piece)``, ``intervals()``).
        interpolant: an nsjax interpolant; VP: noise scale 1, VE: ``sqrt(d)``.
        num_steps: fixed steps ``N``.
        z: standard normal (B, C, H, W).
        solver: a name of :data:`nsjax.solvers.SOLVERS` (fixed-step ones).
    Returns:
        ``X(1)`` in the network's data space, shape (B, C, H, W).
    """
    solver_obj, steps = check_solve(interpolant, schedule, make_solver(solver), num_steps)
    return _solve_ode(denoiser, schedule, interpolant, jnp.asarray(z), steps, solver_obj)
