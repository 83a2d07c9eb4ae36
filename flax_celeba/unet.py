"""Flax (linen) ``UNet2DModel``: diffusers' UNet with the blocks of the two CelebA-HQ checkpoints.

:class:`UNet2DModel` is built from a :class:`~flax_celeba.config.UNetConfig` and takes
``(sample, timestep)`` in diffusers' NCHW layout, returning diffusers' ``UNet2DModel(...).sample``.
Blocks reproduce ``diffusers/models/unets/unet_2d_blocks.py`` (DownBlock2D, AttnDownBlock2D,
SkipDownBlock2D, AttnSkipDownBlock2D, UpBlock2D, AttnUpBlock2D, SkipUpBlock2D, AttnSkipUpBlock2D,
UNetMidBlock2D), including their hard-coded group counts and the ``sqrt(2)`` output scale of the
NCSN++ skip blocks.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from .config import UNetConfig
from .layers import (
    Array,
    Attention,
    Downsample2D,
    GaussianFourierProjection,
    GroupNorm,
    ResnetBlock2D,
    TimestepEmbedding,
    Upsample2D,
    activation,
    conv1x1,
    conv3x3,
    fir_downsample,
    fir_upsample,
    positional_embedding,
)

__all__ = ["UNet2DModel"]

SKIP_SCALE = math.sqrt(2.0)  # output_scale_factor default of the Skip*Block2D classes


def _skip_groups(channels: int) -> int:
    return min(channels // 4, 32)


def _heads(config: UNetConfig, channels: int) -> int:
    head_dim = config.attention_head_dim if config.attention_head_dim is not None else channels
    return channels // head_dim


def _resnet(c: UNetConfig, out_channels, groups, groups_out, scale, **kwargs) -> ResnetBlock2D:
    """A ``ResnetBlock2D`` with the config's norm eps, activation and time-embedding mode."""
    return ResnetBlock2D(
        out_channels, groups, groups_out, c.norm_eps, c.act_fn, c.resnet_time_scale_shift, scale, **kwargs
    )


class DownBlock(nn.Module):
    """DownBlock2D / AttnDownBlock2D / SkipDownBlock2D / AttnSkipDownBlock2D of diffusers."""

    config: UNetConfig
    kind: str
    out_channels: int
    add_downsample: bool

    @nn.compact
    def __call__(
        self, h: Array, temb: Array, skip_sample: Array | None
    ) -> tuple[Array, tuple[Array, ...], Array | None]:
        c, skip, attn = self.config, "Skip" in self.kind, self.kind.startswith("Attn")
        scale = SKIP_SCALE if skip else 1.0
        outputs = []
        for i in range(c.layers_per_block):
            if skip:  # groups=min(in//4, 32), groups_out=min(out//4, 32), hard-coded in diffusers
                groups, groups_out = _skip_groups(h.shape[-1]), _skip_groups(self.out_channels)
            else:
                groups, groups_out = c.norm_num_groups, None
            h = _resnet(
                c,
                self.out_channels,
                groups,
                groups_out,
                scale,
                name=f"resnets_{i}",
            )(h, temb)
            if attn:
                h = Attention(
                    _heads(c, self.out_channels),
                    c.norm_eps,
                    32 if skip else c.norm_num_groups,
                    scale,
                    name=f"attentions_{i}",
                )(h)
            outputs.append(h)
        if self.add_downsample:
            if skip:
                h = _resnet(
                    c,
                    self.out_channels,
                    _skip_groups(self.out_channels),
                    None,
                    scale,
                    use_in_shortcut=True,
                    down=True,
                    name="resnet_down",
                )(h, temb)
                skip_sample = fir_downsample(skip_sample)
                h = conv1x1(self.out_channels, "skip_conv")(skip_sample) + h
            else:
                h = Downsample2D(self.out_channels, c.downsample_padding, name="downsamplers_0")(h)
            outputs.append(h)
        return h, tuple(outputs), skip_sample


class UpBlock(nn.Module):
    """UpBlock2D / AttnUpBlock2D / SkipUpBlock2D / AttnSkipUpBlock2D of diffusers."""

    config: UNetConfig
    kind: str
    in_channels: int
    prev_output_channel: int
    out_channels: int
    add_upsample: bool

    @nn.compact
    def __call__(
        self, h: Array, res_states: tuple[Array, ...], temb: Array, skip_sample: Array | None
    ) -> tuple[Array, Array | None]:
        c, skip = self.config, "Skip" in self.kind
        scale = SKIP_SCALE if skip else 1.0
        heads = _heads(c, self.out_channels)
        n = c.layers_per_block + 1
        res_states = list(res_states)
        for i in range(n):
            res_skip = self.in_channels if i == n - 1 else self.out_channels
            res_in = self.prev_output_channel if i == 0 else self.out_channels
            if self.kind == "AttnSkipUpBlock2D":
                # diffusers writes min(res_in + res_skip // 4, 32): kept, precedence included.
                groups, groups_out = (
                    min(res_in + res_skip // 4, 32),
                    _skip_groups(self.out_channels),
                )
            elif skip:
                groups, groups_out = (
                    _skip_groups(res_in + res_skip),
                    _skip_groups(self.out_channels),
                )
            else:
                groups, groups_out = c.norm_num_groups, None
            h = jnp.concatenate([h, res_states.pop()], axis=-1)
            h = _resnet(
                c,
                self.out_channels,
                groups,
                groups_out,
                scale,
                name=f"resnets_{i}",
            )(h, temb)
            if self.kind == "AttnUpBlock2D":
                h = Attention(heads, c.norm_eps, c.norm_num_groups, scale, name=f"attentions_{i}")(h)
        if self.kind == "AttnSkipUpBlock2D":
            h = Attention(heads, c.norm_eps, 32, scale, name="attentions_0")(h)
        if not skip:
            if self.add_upsample:
                h = Upsample2D(self.out_channels, name="upsamplers_0")(h)
            return h, skip_sample
        skip_sample = fir_upsample(skip_sample) if skip_sample is not None else None
        if self.add_upsample:
            g = _skip_groups(self.out_channels)
            norm = GroupNorm(g, c.norm_eps, name="skip_norm")(h)
            states = conv3x3(3, "skip_conv")(activation("silu")(norm))  # nn.SiLU() in diffusers
            skip_sample = states if skip_sample is None else skip_sample + states
            h = _resnet(
                c,
                self.out_channels,
                g,
                g,
                scale,
                use_in_shortcut=True,
                up=True,
                name="resnet_up",
            )(h, temb)
        return h, skip_sample


class MidBlock(nn.Module):
    """diffusers' ``UNetMidBlock2D`` (one attention layer): resnet, attention, resnet."""

    config: UNetConfig
    channels: int

    @nn.compact
    def __call__(self, h: Array, temb: Array) -> Array:
        c = self.config
        groups = c.norm_num_groups if c.norm_num_groups is not None else _skip_groups(self.channels)
        attn_groups = c.attn_norm_num_groups
        if attn_groups is None:
            attn_groups = groups if c.resnet_time_scale_shift == "default" else None
        scale = c.mid_block_scale_factor

        def resnet(i: int) -> ResnetBlock2D:
            return _resnet(
                c,
                self.channels,
                groups,
                None,
                scale,
                name=f"resnets_{i}",
            )

        h = resnet(0)(h, temb)
        if c.add_attention:
            h = Attention(_heads(c, self.channels), c.norm_eps, attn_groups, scale, name="attentions_0")(h)
        return resnet(1)(h, temb)


class UNet2DModel(nn.Module):
    """diffusers' ``UNet2DModel`` forward pass: ``(sample NCHW, timestep) -> output NCHW``.

    ``timestep`` is a scalar or ``(B,)`` array (a DDPM step index for ``positional`` embeddings, the
    noise level sigma for ``fourier`` ones, whose output is divided by sigma as in diffusers).
    Unlike diffusers, a Python float timestep is not truncated to an integer.
    """

    config: UNetConfig

    @nn.compact
    def __call__(self, sample: Array, timestep: Array | float) -> Array:
        c = self.config
        channels = c.block_out_channels
        n = len(channels)
        sample = jnp.asarray(sample, jnp.float32)  # parameters are float32
        batch = sample.shape[0]
        timesteps = jnp.broadcast_to(jnp.asarray(timestep, dtype=jnp.float32).reshape(-1), (batch,))
        x = jnp.transpose(sample, (0, 2, 3, 1))
        if c.center_input_sample:
            x = 2 * x - 1.0

        if c.time_embedding_type == "fourier":
            t_emb = GaussianFourierProjection(channels[0], name="time_proj")(timesteps)
        else:
            t_emb = positional_embedding(timesteps, channels[0], c.flip_sin_to_cos, c.freq_shift)
        # UNet2DModel builds TimestepEmbedding with its default act_fn ("silu"), not c.act_fn.
        temb = TimestepEmbedding(c.time_embed_dim, "silu", name="time_embedding")(t_emb.astype(x.dtype))

        skip_sample: Array | None = x
        h = conv3x3(channels[0], "conv_in")(x)
        res_states: tuple[Array, ...] = (h,)
        for i, kind in enumerate(c.down_block_types):
            block = DownBlock(c, kind, channels[i], i < n - 1, name=f"down_blocks_{i}")
            h, outs, new_skip = block(h, temb, skip_sample)
            if "Skip" in kind:
                skip_sample = new_skip
            res_states += outs

        if c.mid_block_type is not None:
            h = MidBlock(c, channels[-1], name="mid_block")(h, temb)

        skip_sample = None
        reversed_channels = channels[::-1]
        out_channel = reversed_channels[0]
        for i, kind in enumerate(c.up_block_types):
            prev = out_channel
            out_channel = reversed_channels[i]
            in_channel = reversed_channels[min(i + 1, n - 1)]
            num = c.layers_per_block + 1
            taken, res_states = res_states[-num:], res_states[:-num]
            block = UpBlock(c, kind, in_channel, prev, out_channel, i < n - 1, name=f"up_blocks_{i}")
            h, new_skip = block(h, taken, temb, skip_sample)
            if "Skip" in kind:
                skip_sample = new_skip

        groups_out = c.norm_num_groups if c.norm_num_groups is not None else _skip_groups(channels[0])
        h = activation("silu")(GroupNorm(groups_out, c.norm_eps, name="conv_norm_out")(h))
        h = conv3x3(c.out_channels, "conv_out")(h)
        if skip_sample is not None:
            h = h + skip_sample
        if c.time_embedding_type == "fourier":
            h = h / timesteps.astype(h.dtype)[:, None, None, None]
        return jnp.transpose(h, (0, 3, 1, 2))

    def init_params(self, key: Array, batch: int = 1) -> dict:
        """Random parameters for a ``(batch, C, H, W)`` input (``sample_size`` or 32 when unset)."""
        size = self.config.sample_size or 32
        h, w = (size, size) if isinstance(size, int) else size
        x = jnp.zeros((batch, self.config.in_channels, h, w), jnp.float32)
        return self.init(key, x, jnp.ones((batch,), jnp.float32))["params"]


def param_shapes(config: UNetConfig) -> dict:
    """The parameter tree of ``config``'s model as ``jax.ShapeDtypeStruct`` leaves (no compute)."""
    model = UNet2DModel(config)
    return jax.eval_shape(lambda k: model.init_params(k), jax.random.PRNGKey(0))
