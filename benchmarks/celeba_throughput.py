"""Images per second of the NCSN++ CelebA-HQ 256 network: Flax (this repo) vs diffusers (PyTorch).

Both networks are randomly initialised from the ncsnpp-celebahq-256 preset (the real weights do
not change the cost), float32, batch ``--batch`` at 256x256, on the same device. Each side is
warmed up (compilation / cuDNN autotuning) and then timed over ``--iters`` network evaluations
(JAX: ``block_until_ready``; PyTorch: ``torch.no_grad`` and ``cuda.synchronize``).

``--precision highest`` (default) forbids TF32 on both sides (``jax_default_matmul_precision``,
``torch.backends.{cuda.matmul,cudnn}.allow_tf32``); ``--precision tf32`` allows it on both.

    python benchmarks/celeba_throughput.py --json out/celeba_throughput.json        # GPU
    python benchmarks/celeba_throughput.py --device cpu --small                      # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

# JAX would otherwise reserve 75% of GPU memory and starve PyTorch, which runs second.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _flax_rate(
    config, batch: int, size: int, iters: int, warmup: int, device: str
) -> tuple[float, str]:
    import jax
    import jax.numpy as jnp

    from flax_celeba.unet import UNet2DModel

    platform = "gpu" if device == "cuda" else "cpu"
    dev = jax.devices(platform)[0]
    model = UNet2DModel(config)
    with jax.default_device(dev):
        x = jax.random.normal(jax.random.PRNGKey(0), (batch, 3, size, size), jnp.float32)
        sigma = jnp.full((batch,), 10.0, jnp.float32)
        params = jax.jit(lambda k: model.init(k, x, sigma))(jax.random.PRNGKey(1))
        apply = jax.jit(model.apply)
        for _ in range(warmup):
            apply(params, x, sigma).block_until_ready()
        start = time.perf_counter()
        for _ in range(iters):
            out = apply(params, x, sigma)
        out.block_until_ready()
        seconds = time.perf_counter() - start
    if not bool(jnp.all(jnp.isfinite(out))):
        raise FloatingPointError("Flax output is not finite")
    return batch * iters / seconds, dev.device_kind


def _torch_rate(
    config, batch: int, size: int, iters: int, warmup: int, device: str
) -> tuple[float | None, str]:
    try:
        import torch
        from diffusers import UNet2DModel
    except ImportError as err:
        return None, f"skipped: {err}"
    kwargs = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    torch.manual_seed(0)
    model = UNet2DModel(**kwargs).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    sigma = torch.full((batch,), 10.0, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            model(x, sigma)
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            out = model(x, sigma).sample
        sync()
        seconds = time.perf_counter() - start
    if not bool(torch.isfinite(out).all()):
        raise FloatingPointError("PyTorch output is not finite")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return batch * iters / seconds, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", choices=("highest", "tf32"), default="highest")
    parser.add_argument(
        "--small",
        action="store_true",
        help="a small NCSN++ (channels 32/32/64, 32x32, batch 2): a smoke test",
    )
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)

    import jax

    from flax_celeba.config import NCSNPP_CELEBAHQ_256, UNetConfig
    from flax_celeba.testing import SMALL_VE

    jax.config.update(
        "jax_default_matmul_precision",
        "highest" if args.precision == "highest" else "tensorfloat32",
    )
    try:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    except ImportError:
        pass
    if args.small:
        config = UNetConfig.from_dict({**SMALL_VE, "sample_size": 32})
        args.batch, args.iters, args.warmup = min(args.batch, 2), min(args.iters, 3), 1
    else:
        config = NCSNPP_CELEBAHQ_256
    size = config.sample_size
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"command: {command}")
    flax_rate, device_name = _flax_rate(
        config, args.batch, size, args.iters, args.warmup, args.device
    )
    print(f"device: {device_name}")
    print(f"flax (jax {jax.__version__}): {flax_rate:.3f} images/s")
    torch_rate, torch_device = _torch_rate(
        config, args.batch, size, args.iters, args.warmup, args.device
    )
    if torch_rate is None:
        print(f"diffusers (torch): {torch_device}")
        ratio = None
    else:
        ratio = flax_rate / torch_rate
        print(f"diffusers (torch, {torch_device}): {torch_rate:.3f} images/s")
        print(f"ratio flax / torch: {ratio:.3f}")
    result = {
        "command": command,
        "device": device_name,
        "model": "small" if args.small else "ncsnpp-celebahq-256 preset",
        "image_size": size,
        "batch": args.batch,
        "iters": args.iters,
        "warmup": args.warmup,
        "precision": args.precision,
        "dtype": "float32",
        "flax_images_per_s": flax_rate,
        "torch_images_per_s": torch_rate,
        "torch_note": None if torch_rate is not None else torch_device,
        "ratio_flax_over_torch": ratio,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
