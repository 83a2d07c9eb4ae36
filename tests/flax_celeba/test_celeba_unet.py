"""Parity of the Flax UNet2DModel with diffusers' on small random models of both checkpoints.

Oracle: diffusers' ``UNet2DModel`` itself (float32, CPU). Tolerance 1e-4 relative to the output's
maximum: both sides compute in float32 with different convolution/summation orders, whose
rounding (~1e-7 per operation, measured ~2e-6 end to end) is far below it, while any semantic
slip (a wrong group count, scale factor or padding) moves outputs by >1e-2.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_celeba import api, convert
from flax_celeba import config as cfg
from flax_celeba.testing import SMALL_VP, build_diffusers_unet, relative_error

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

TOL = 1e-4
CASES = {"vp": [0.0, 10.0, 500.5, 999.0], "ve": [0.01, 0.7, 30.0, 380.0]}


def _torch_out(model, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x), torch.from_numpy(t)).sample.numpy()


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_converted_matches_diffusers(kind, small_vp, small_ve, tmp_path):
    model, folder = {"vp": small_vp, "ve": small_ve}[kind]
    out = convert.convert(folder, tmp_path / "flax")
    network = api.load_pretrained(out)
    rng = np.random.default_rng(1)
    for i, t in enumerate(CASES[kind]):
        x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
        if kind == "ve":
            x = (0.5 + t * x).astype(np.float32)  # VE inputs: data in [0, 1] plus sigma z
        ts = np.full((2,), t, np.float32) if i % 2 else np.array([t, 0.5 * t + 1], np.float32)
        err = relative_error(network(jnp.asarray(x), jnp.asarray(ts)), _torch_out(model, x, ts))
        assert err < TOL, (kind, t, err)


def test_raw_diffusers_folder_is_a_drop_in(small_vp):
    model, folder = small_vp
    network = jax.jit(api.load_pretrained(folder))  # no conversion step, no torch needed
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    t = np.array([3.0, 3.0], np.float32)
    got = network(jnp.asarray(x), jnp.float32(3.0))  # a scalar timestep broadcasts
    assert relative_error(got, _torch_out(model, x, t)) < TOL


def test_bin_checkpoint_and_legacy_attention_names(tmp_path):
    model = build_diffusers_unet(SMALL_VP, seed=3)
    folder = tmp_path / "legacy"
    model.save_pretrained(folder, safe_serialization=False)
    state = torch.load(folder / "diffusion_pytorch_model.bin", weights_only=True)
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for key, value in state.items():
        for new, old in legacy.items():
            if ".attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        renamed[key] = value
    assert any(".query." in k for k in renamed)
    torch.save(renamed, folder / "diffusion_pytorch_model.bin")
    network = api.load_pretrained(convert.convert(folder, tmp_path / "flax"))
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    t = np.array([42.0, 42.0], np.float32)
    assert relative_error(network(jnp.asarray(x), jnp.asarray(t)), _torch_out(model, x, t)) < TOL


def test_conversion_reports_tensors_by_name(small_ve):
    _, folder = small_ve
    config = cfg.load_config(folder)
    state = convert.read_torch_state_dict(folder)
    state.pop("conv_in.bias")
    state["mid_block.bogus.weight"] = np.zeros(3, np.float32)
    state["conv_out.weight"] = np.zeros((3, 32, 5, 5), np.float32)
    with pytest.raises(convert.ConversionError) as info:
        convert.torch_to_flax(state, config)
    message = str(info.value)
    for name in ("conv_in.bias", "mid_block.bogus.weight", "conv_out.weight"):
        assert name in message


def test_converted_folder_format_roundtrip(small_ve, tmp_path):
    _, folder = small_ve
    out = convert.convert(folder, tmp_path / "flax")
    assert json.loads((out / "flax_celeba.json").read_text())["format"] == convert.FORMAT
    config, params = convert.load_params(out)
    back = convert.flax_to_torch(params)
    state = convert.read_torch_state_dict(folder)
    assert set(back) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value)


@pytest.mark.parametrize(
    "change, option",
    [
        ({"time_embedding_type": "learned", "num_train_timesteps": 10}, "time_embedding_type"),
        ({"down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"]}, "down_block_types"),
        ({"class_embed_type": "timestep"}, "class_embed_type"),
        ({"resnet_time_scale_shift": "spatial"}, "resnet_time_scale_shift"),
        ({"some_future_option": 1}, "some_future_option"),
    ],
)
def test_unsupported_options_are_named(change, option):
    base = {
        "block_out_channels": [32, 64],
        "down_block_types": ["DownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D"],
    }
    with pytest.raises(cfg.UnsupportedOption, match=option):
        cfg.UNetConfig.from_dict({**base, **change})


@pytest.mark.parametrize("name", sorted(cfg.PRESETS))
def test_presets_match_full_size_diffusers_architecture(name):
    """Every tensor of the full-size architecture maps by name and shape (meta device)."""
    import diffusers

    preset = cfg.PRESETS[name]
    with torch.device("meta"):
        model = diffusers.UNet2DModel(**{k: v for k, v in preset.to_dict().items() if k[0] != "_"})
    torch_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    flax_shapes = convert.expected_shapes(preset)
    mapped = {convert.flax_path_to_torch_key(k): s for k, s in flax_shapes.items()}
    assert set(mapped) == set(torch_shapes)
    for key, shape in mapped.items():
        t = torch_shapes[key]
        expect = (t[2], t[3], t[1], t[0]) if len(t) == 4 else t[::-1]
        assert shape == expect, key


def test_scale_shift_and_gelu_options(tmp_path):
    config = dict(
        SMALL_VP,
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        attention_head_dim=8,
        time_embedding_dim=96,
        flip_sin_to_cos=True,
    )
    model = build_diffusers_unet(config, seed=4)
    model.save_pretrained(tmp_path / "m")
    network = api.load_pretrained(tmp_path / "m")
    x = np.random.default_rng(4).standard_normal((2, 3, 16, 16)).astype(np.float32)
    t = np.array([5.0, 700.0], np.float32)
    assert relative_error(network(jnp.asarray(x), jnp.asarray(t)), _torch_out(model, x, t)) < TOL
