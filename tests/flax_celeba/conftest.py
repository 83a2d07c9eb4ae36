"""Fixtures: small random diffusers UNets with the block types of each CelebA-HQ checkpoint.

Built with diffusers (test-only extra), weights perturbed away from their initial values (so
norm scales/biases are not 1/0), saved with ``save_pretrained`` (safetensors) and converted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flax_celeba.testing import SMALL_VE, SMALL_VP, build_diffusers_unet


def _saved(tmp_path_factory, config: dict, name: str):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    model = build_diffusers_unet(config)
    folder = Path(tmp_path_factory.mktemp(name)) / "diffusers"
    model.save_pretrained(folder, safe_serialization=True)
    return model, folder


@pytest.fixture(scope="session")
def small_vp(tmp_path_factory):
    """``(torch model, diffusers folder)`` of the small DDPM-like UNet."""
    return _saved(tmp_path_factory, SMALL_VP, "vp")


@pytest.fixture(scope="session")
def small_ve(tmp_path_factory):
    """``(torch model, diffusers folder)`` of the small NCSN++-like UNet."""
    return _saved(tmp_path_factory, SMALL_VE, "ve")
