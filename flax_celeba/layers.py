"""Flax (linen) layers equivalent to diffusers' UNet building blocks, in NHWC layout.

Each layer states the diffusers class it reproduces (diffusers 0.27 .. 0.42 semantics);
submodule and parameter names mirror the PyTorch attribute names so that
:mod:`flax_celeba.convert` maps weights by a fixed rule. Layout is NHWC throughout (the UNet
transposes once at its boundary); kernels are ``(kh, kw, in, out)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "activation",
    "GroupNorm",
    "conv3x3",
    "conv1x1",
    "upfirdn2d",
    "fir_upsample",
    "fir_downsample",
    "Downsample2D",
    "Upsample2D",
    "ResnetBlock2D",
    "Attention",
    "TimestepEmbedding",
    "positional_embedding",
    "GaussianFourierProjection",
]

Array = jax.Array
FIR_KERNEL = (1, 3, 3, 1)


def activation(name: str) -> Callable[[Array], Array]:
    """diffusers' ``get_activation``: silu/swish, mish, gelu (exact erf), relu."""
    table: dict[str, Callable[[Array], Array]] = {
        "silu": jax.nn.silu,
        "swish": jax.nn.silu,
        "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "relu": jax.nn.relu,
    }
    if name not in table:
        raise ValueError(f"act_fn: unknown activation {name!r}")
    return table[name]


class GroupNorm(nn.Module):
    """``torch.nn.GroupNorm`` on NHWC (or ``(..., C)``): biased variance, ``eps`` inside the root.

    Mean and variance are taken over each group's channels and all spatial positions, in two
    passes (``E[(x - mean)^2]``) as PyTorch does.
    """

    num_groups: int
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        channels = x.shape[-1]
        if channels % self.num_groups:
            raise ValueError(
                f"GroupNorm: {channels} channels are not divisible by num_groups={self.num_groups}"
            )
        scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        shape = x.shape
        grouped = x.reshape(shape[0], -1, self.num_groups, channels // self.num_groups)
        mean = grouped.mean(axis=(1, 3), keepdims=True)
        var = jnp.square(grouped - mean).mean(axis=(1, 3), keepdims=True)
        normed = ((grouped - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(shape)
        return normed * scale.astype(x.dtype) + bias.astype(x.dtype)


def conv3x3(features: int, name: str, stride: int = 1, padding: int = 1) -> nn.Conv:
    """``nn.Conv2d(.., kernel_size=3, stride, padding)`` with symmetric zero padding."""
    return nn.Conv(
        features, (3, 3), strides=(stride, stride), padding=((padding, padding),) * 2, name=name
    )


def conv1x1(features: int, name: str, use_bias: bool = True) -> nn.Conv:
    """``nn.Conv2d(.., kernel_size=1)``."""
    return nn.Conv(features, (1, 1), padding="VALID", use_bias=use_bias, name=name)


def _fir_kernel_2d(kernel: Sequence[float], gain: float) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float32)
    k = np.outer(k, k) if k.ndim == 1 else k
    return (k / k.sum() * gain).astype(np.float32)


def upfirdn2d(
    x: Array, kernel: np.ndarray, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> Array:
    """diffusers' ``upfirdn2d_native`` on NHWC: zero-insert by ``up``, pad, convolve, keep every
    ``down``.

    ``kernel`` is 2-D; it is convolved (flipped), as in diffusers. Pads must be non-negative.
    """
    if min(pad) < 0:
        raise ValueError(f"upfirdn2d: negative pad {pad} is not supported")
    channels = x.shape[-1]
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    rhs = jnp.asarray(np.tile(flipped[:, :, None, None], (1, 1, 1, channels)), dtype=x.dtype)
    # Zero insertion leaves (up - 1) trailing zeros after the last sample, as diffusers' pad does.
    padding = ((pad[0], pad[1] + up - 1),) * 2
    return jax.lax.conv_general_dilated(
        x,
        rhs,
        window_strides=(down, down),
        padding=padding,
        lhs_dilation=(up, up),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST,
    )


def fir_upsample(x: Array, kernel: Sequence[int] = FIR_KERNEL, factor: int = 2) -> Array:
    """diffusers' ``upsample_2d`` / ``FirUpsample2D(use_conv=False)``: FIR upsampling."""
    k = _fir_kernel_2d(kernel, gain=factor**2)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def fir_downsample(x: Array, kernel: Sequence[int] = FIR_KERNEL, factor: int = 2) -> Array:
    """diffusers' ``downsample_2d`` / ``FirDownsample2D(use_conv=False)``: FIR downsampling."""
    k = _fir_kernel_2d(kernel, gain=1.0)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, down=factor, pad=((p + 1) // 2, p // 2))


class Downsample2D(nn.Module):
    """diffusers' ``Downsample2D(use_conv=True, name="op")``: 3x3 conv with stride 2.

    ``padding = 0`` pads one zero row/column at the bottom/right first (diffusers' choice).
    """

    out_channels: int
    padding: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.padding == 0:
            x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
        return conv3x3(self.out_channels, "conv", stride=2, padding=self.padding)(x)


class Upsample2D(nn.Module):
    """diffusers' ``Upsample2D(use_conv=True)``: nearest-neighbour x2, then a 3x3 conv."""

    out_channels: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return conv3x3(self.out_channels, "conv")(x)


class ResnetBlock2D(nn.Module):
    """diffusers' ``ResnetBlock2D`` (pre-norm), optionally with FIR up/down sampling
    (``kernel="fir"``).

    ``out = (shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))) + proj(act(temb)))))) / s``
    with ``s = output_scale_factor``; ``scale_shift`` applies ``norm2(h) (1 + scale) + shift``.
    """

    out_channels: int
    groups: int
    groups_out: int | None = None
    eps: float = 1e-6
    act_fn: str = "silu"
    time_embedding_norm: str = "default"
    output_scale_factor: float = 1.0
    use_in_shortcut: bool | None = None
    up: bool = False
    down: bool = False

    @nn.compact
    def __call__(self, x: Array, temb: Array | None) -> Array:
        act = activation(self.act_fn)
        in_channels = x.shape[-1]
        groups_out = self.groups if self.groups_out is None else self.groups_out
        h = act(GroupNorm(self.groups, self.eps, name="norm1")(x))
        if self.up:
            x, h = fir_upsample(x), fir_upsample(h)
        elif self.down:
            x, h = fir_downsample(x), fir_downsample(h)
        h = conv3x3(self.out_channels, "conv1")(h)
        if temb is not None:
            width = self.out_channels * (2 if self.time_embedding_norm == "scale_shift" else 1)
            t = nn.Dense(width, name="time_emb_proj")(act(temb))[:, None, None, :]
        else:
            t = None
        if self.time_embedding_norm == "scale_shift":
            if t is None:
                raise ValueError("ResnetBlock2D: scale_shift needs a time embedding")
            scale, shift = jnp.split(t, 2, axis=-1)
            h = GroupNorm(groups_out, self.eps, name="norm2")(h) * (1 + scale) + shift
        else:
            h = h + t if t is not None else h
            h = GroupNorm(groups_out, self.eps, name="norm2")(h)
        h = conv3x3(self.out_channels, "conv2")(act(h))
        use_shortcut = (
            in_channels != self.out_channels
            if self.use_in_shortcut is None
            else self.use_in_shortcut
        )
        if use_shortcut:
            x = conv1x1(self.out_channels, "conv_shortcut")(x)
        return (x + h) / self.output_scale_factor


class Attention(nn.Module):
    """diffusers' spatial self-attention block (``Attention(_from_deprecated_attn_block=True)``).

    ``out = (x + to_out(softmax(q k^T / sqrt(head_dim)) v)) / rescale_output_factor`` with
    ``q, k, v`` linear maps of ``group_norm(x)`` (no norm when ``norm_num_groups`` is None).
    """

    heads: int
    eps: float = 1e-6
    norm_num_groups: int | None = 32
    rescale_output_factor: float = 1.0

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b, height, width, channels = x.shape
        if channels % self.heads:
            raise ValueError(f"Attention: {channels} channels not divisible by {self.heads} heads")
        head_dim = channels // self.heads
        residual = x
        h = x.reshape(b, height * width, channels)
        if self.norm_num_groups is not None:
            h = GroupNorm(self.norm_num_groups, self.eps, name="group_norm")(h)
        q = nn.Dense(channels, name="to_q")(h)
        k = nn.Dense(channels, name="to_k")(h)
        v = nn.Dense(channels, name="to_v")(h)
        split = lambda a: a.reshape(b, -1, self.heads, head_dim)  # noqa: E731
        logits = jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) / math.sqrt(head_dim)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(x.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, split(v)).reshape(b, -1, channels)
        out = nn.Dense(channels, name="to_out_0")(out)
        return (out.reshape(b, height, width, channels) + residual) / self.rescale_output_factor


class TimestepEmbedding(nn.Module):
    """diffusers' ``TimestepEmbedding``: ``linear_2(act(linear_1(x)))``."""

    time_embed_dim: int
    act_fn: str = "silu"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = activation(self.act_fn)(nn.Dense(self.time_embed_dim, name="linear_1")(x))
        return nn.Dense(self.time_embed_dim, name="linear_2")(x)


def positional_embedding(
    timesteps: Array,
    dim: int,
    flip_sin_to_cos: bool,
    downscale_freq_shift: float,
    max_period: float = 10000.0,
) -> Array:
    """diffusers' ``get_timestep_embedding`` (DDPM sinusoidal embedding) of ``(B,)`` timesteps.

    ``freq_k = exp(-log(max_period) k / (dim/2 - shift))``; output ``[sin, cos]`` (or
    ``[cos, sin]`` when flipped), zero-padded to odd ``dim``. Computed in float32 in diffusers'
    operation order.
    """
    half = dim // 2
    exponent = -math.log(max_period) * jnp.arange(half, dtype=jnp.float32)
    exponent = exponent / (half - downscale_freq_shift)
    emb = timesteps.astype(jnp.float32)[:, None] * jnp.exp(exponent)[None, :]
    emb = jnp.concatenate([jnp.sin(emb), jnp.cos(emb)], axis=-1)
    if flip_sin_to_cos:
        emb = jnp.concatenate([emb[:, half:], emb[:, :half]], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class GaussianFourierProjection(nn.Module):
    """diffusers' ``GaussianFourierProjection(log=True, flip_sin_to_cos=False)`` of noise levels.

    ``[sin(2 pi w log sigma), cos(2 pi w log sigma)]``; ``w`` (param ``weight``) is fixed at
    training time (``randn * scale``). UNet2DModel never passes its ``flip_sin_to_cos`` here.
    """

    embedding_size: int
    scale: float = 16.0

    @nn.compact
    def __call__(self, sigma: Array) -> Array:
        init = lambda key, shape: jax.random.normal(key, shape, jnp.float32) * self.scale  # noqa: E731
        weight = self.param("weight", init, (self.embedding_size,))
        x = jnp.log(sigma.astype(jnp.float32))
        x_proj = x[:, None] * weight[None, :] * 2 * np.float32(np.pi)
        return jnp.concatenate([jnp.sin(x_proj), jnp.cos(x_proj)], axis=-1)
