"""The checkpoint-corruption matrix: every way a model folder can be broken gives a clear error.

Each row builds a tiny random checkpoint (converted, or in diffusers' layout), breaks it one way,
loads it as ``flax-celeba sample`` does (:func:`flax_celeba.pipeline.load_model`) and checks the
error: its type, its ``case`` tag, the file it names (``err.file`` and the message) and the
tensor or field with the expected and found values. The same folder through the CLI must exit
with status 2 and print that message, not a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from flax_celeba import cli, convert, pipeline
from flax_celeba.config import CheckpointError, MissingFileError
from flax_celeba.schedulers import DDPM_CELEBAHQ_SCHEDULER, VE_CELEBAHQ_SCHEDULER, DDPMSchedulerConfig

PARAMS = "flax_params.safetensors"
RAW = "diffusion_pytorch_model.safetensors"
BIN = "diffusion_pytorch_model.bin"


# ---- ways to break a folder ---------------------------------------------------------------------


def edit_json(name: str, change: Callable[[dict], object]) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        path = folder / name
        data = json.loads(path.read_text())
        result = change(data)
        path.write_text(json.dumps(data if result is None else result))

    return corrupt


def write_text(name: str, text: str) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        (folder / name).write_text(text)

    return corrupt


def write_bytes(name: str, data: bytes) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        (folder / name).write_bytes(data)

    return corrupt


def remove(name: str) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        (folder / name).unlink()

    return corrupt


def edit_tensors(name: str, change: Callable[[dict], None]) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        tensors = dict(load_file(str(folder / name)))
        change(tensors)
        save_file(tensors, str(folder / name))

    return corrupt


def truncate(name: str, keep: Callable[[int], int]) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: keep(len(data))])

    return corrupt


def append(name: str, extra: bytes) -> Callable:
    def corrupt(folder: Path, monkeypatch) -> None:
        with open(folder / name, "ab") as handle:
            handle.write(extra)

    return corrupt


def set_values(key: str, index: tuple, values) -> Callable[[dict], None]:
    def change(tensors: dict) -> None:
        array = tensors[key].copy()
        array[index] = values
        tensors[key] = array

    return change


def bin_without_torch(folder: Path, monkeypatch) -> None:
    (folder / RAW).unlink()
    (folder / BIN).write_bytes(b"PK\x03\x04 a pickle torch would read")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError


def corrupt_bin(folder: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    (folder / RAW).unlink()
    (folder / BIN).write_bytes(b"this is not a pickle" * 4)


def header_not_json(name: str) -> Callable:
    body = b"{not json at all"
    return write_bytes(name, len(body).to_bytes(8, "little") + body)


# ---- the matrix ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    layout: str  # "converted" or "raw" (diffusers)
    corrupt: Callable
    file: str  # the file the error must name
    error: type[Exception]
    tag: str | None  # CheckpointError.case
    needles: tuple[str, ...]  # tensor / field names, expected and found values


C, R = "converted", "raw"
CE, CV, MF = CheckpointError, convert.ConversionError, MissingFileError
CONV_OUT = "conv_out/kernel"
SCHED = "scheduler_config.json"
ZEROS3 = np.zeros(3, np.float32)


def setting(**changes) -> Callable[[dict], None]:
    return lambda data: data.update(changes)


CASES = [
    # the format file of a converted folder
    Case("format-version", C, edit_json("flax_celeba.json", setting(format="flax_celeba/2")),
         "flax_celeba.json", CE, "format-version", ("'flax_celeba/2'", "'flax_celeba/1'")),
    Case("format-key-absent", C, edit_json("flax_celeba.json", lambda d: d.pop("format")),
         "flax_celeba.json", CE, "format-version", ("None", "'flax_celeba/1'")),
    Case("format-not-object", C, write_text("flax_celeba.json", '"flax_celeba/1"'),
         "flax_celeba.json", CE, "format-version", ("None",)),
    Case("format-file-truncated", C, write_text("flax_celeba.json", '{"format": "flax_cel'),
         "flax_celeba.json", CE, "unreadable-json", ("not valid JSON", "line 1")),
    Case("format-file-missing", C, remove("flax_celeba.json"),
         "flax_celeba.json", MF, "missing-file", ("missing", PARAMS)),
    # missing files
    Case("params-missing", C, remove(PARAMS),
         PARAMS, MF, "missing-file", ("missing", "flax_celeba.json")),
    Case("config-missing", C, remove("config.json"),
         "config.json", MF, "missing-file", ("missing", PARAMS)),
    Case("config-missing", R, remove("config.json"),
         "config.json", MF, "missing-file", ("missing", RAW)),
    Case("weights-missing", R, remove(RAW),
         RAW, MF, "missing-file", ("missing", BIN, "config.json")),
    # tensors against the config
    Case("tensor-missing", C, edit_tensors(PARAMS, lambda t: t.pop("conv_in/bias")),
         PARAMS, CV, "tensor-mismatch",
         ("missing tensors (1)", "conv_in/bias (expected shape (8,))")),
    Case("tensor-extra", C, edit_tensors(PARAMS, setting(**{"mid_block/bogus": ZEROS3})),
         PARAMS, CV, "tensor-mismatch",
         ("unexpected tensors (1)", "mid_block/bogus (found shape (3,))")),
    Case("tensor-misshaped", C,
         edit_tensors(PARAMS, setting(**{CONV_OUT: np.zeros((5, 5, 8, 3), np.float32)})),
         PARAMS, CV, "tensor-mismatch",
         ("mis-shaped tensors (1)", f"{CONV_OUT}: found (5, 5, 8, 3), expected (3, 3, 8, 3)")),
    Case("tensor-missing", R, edit_tensors(RAW, lambda t: t.pop("conv_in.bias")),
         RAW, CV, "tensor-mismatch", ("conv_in.bias (expected shape (8,))",)),
    Case("tensor-extra", R, edit_tensors(RAW, setting(**{"mid_block.bogus.weight": ZEROS3})),
         RAW, CV, "tensor-mismatch", ("mid_block.bogus.weight (found shape (3,))",)),
    Case("tensor-misshaped", R,
         edit_tensors(RAW, setting(**{"conv_out.weight": np.zeros((3, 8, 5, 5), np.float32)})),
         RAW, CV, "tensor-mismatch",
         ("conv_out.weight: found (3, 8, 5, 5), expected (3, 8, 3, 3)",)),
    Case("config-not-weights", C, edit_json("config.json", setting(block_out_channels=[16, 16])),
         PARAMS, CV, "tensor-mismatch",
         ("conv_in/kernel: found (3, 3, 3, 8), expected (3, 3, 3, 16)", "more")),
    # damaged safetensors files
    Case("truncated-half", C, truncate(PARAMS, lambda n: n // 2),
         PARAMS, CE, "corrupt-file", ("truncated", "past the end")),
    Case("truncated-last-byte", C, truncate(PARAMS, lambda n: n - 1),
         PARAMS, CE, "corrupt-file", ("truncated", "1 of 144 tensors")),
    Case("truncated-in-header", C, truncate(PARAMS, lambda n: 100),
         PARAMS, CE, "corrupt-file", ("the header claims",)),
    Case("truncated-to-4-bytes", C, truncate(PARAMS, lambda n: 4),
         PARAMS, CE, "corrupt-file", ("4 bytes", "8-byte header length")),
    Case("empty", C, truncate(PARAMS, lambda n: 0),
         PARAMS, CE, "corrupt-file", ("0 bytes",)),
    Case("stray-bytes", C, append(PARAMS, b"\0" * 16),
         PARAMS, CE, "corrupt-file", ("16 stray bytes",)),
    Case("not-safetensors", C, write_bytes(PARAMS, b"<html>404 Not Found</html>" * 8),
         PARAMS, CE, "corrupt-file", ("the header claims",)),
    Case("header-not-json", C, header_not_json(PARAMS),
         PARAMS, CE, "corrupt-file", ("not a JSON object",)),
    Case("truncated-half", R, truncate(RAW, lambda n: n // 2),
         RAW, CE, "corrupt-file", ("truncated", "past the end")),
    # weight values
    Case("nan", C, edit_tensors(PARAMS, set_values("conv_in/bias", (2,), np.nan)),
         PARAMS, CE, "non-finite", ("conv_in/bias: 1 NaN and 0 inf of 8 values",)),
    Case("inf", C, edit_tensors(PARAMS, set_values(CONV_OUT, (0, 0, 0, slice(2)), [np.inf, -np.inf])),
         PARAMS, CE, "non-finite", (f"{CONV_OUT}: 0 NaN and 2 inf of 216 values",)),
    Case("nan", R, edit_tensors(RAW, set_values("conv_in.bias", (0,), np.nan)),
         RAW, CE, "non-finite", ("conv_in.bias: 1 NaN",)),
    Case("integer-weights", C,
         edit_tensors(PARAMS, setting(**{"conv_in/bias": np.zeros(8, np.int32)})),
         PARAMS, CE, "bad-dtype", ("conv_in/bias: dtype int32",)),
    # config.json values
    Case("negative-channels", C, edit_json("config.json", setting(block_out_channels=[-8, 16])),
         "config.json", CE, "invalid-config", ("block_out_channels[0]: -8", ">= 1")),
    Case("unknown-block-type", C,
         edit_json("config.json", lambda d: d["down_block_types"].__setitem__(0, "FancyBlock2D")),
         "config.json", CE, "unsupported-option", ("down_block_types", "'FancyBlock2D'")),
    Case("unknown-option", R, edit_json("config.json", setting(some_future_option=1)),
         "config.json", CE, "unsupported-option", ("some_future_option",)),
    Case("wrong-type", C, edit_json("config.json", setting(layers_per_block="two")),
         "config.json", CE, "invalid-config", ("layers_per_block: 'two'",)),
    Case("channels-not-a-list", C, edit_json("config.json", setting(block_out_channels=8)),
         "config.json", CE, "invalid-config", ("block_out_channels: 8",)),
    Case("groups-not-dividing", C, edit_json("config.json", setting(norm_num_groups=3)),
         "config.json", CE, "invalid-config",
         ("norm_num_groups: 3", "block_out_channels[0] = 8")),
    Case("heads-not-dividing", C, edit_json("config.json", setting(attention_head_dim=3)),
         "config.json", CE, "invalid-config", ("attention_head_dim: 3",)),
    Case("unbuildable", C, edit_json("config.json", setting(attn_norm_num_groups=3)),
         "config.json", CE, "invalid-config", ("buildable", "num_groups=3")),
    Case("config-not-object", C, write_text("config.json", "[1, 2]"),
         "config.json", CE, "invalid-config", ("JSON object", "list")),
    Case("config-truncated", R, write_text("config.json", '{"sample_size": 8, "block_out'),
         "config.json", CE, "unreadable-json", ("not valid JSON",)),
    # scheduler_config.json
    Case("scheduler-truncated", C, write_text(SCHED, '{"_class_name": "DDPMSch'),
         SCHED, CE, "unreadable-json", ("not valid JSON",)),
    Case("scheduler-class", C, edit_json(SCHED, setting(_class_name="EulerDiscreteScheduler")),
         SCHED, CE, "unsupported-option", ("_class_name", "'EulerDiscreteScheduler'")),
    Case("scheduler-option", R, edit_json(SCHED, setting(prediction_type="v_prediction")),
         SCHED, CE, "unsupported-option", ("prediction_type", "'v_prediction'")),
    Case("scheduler-negative-beta", C, edit_json(SCHED, setting(beta_start=-0.1)),
         SCHED, CE, "invalid-config", ("beta_start: -0.1",)),
    Case("scheduler-zero-steps", C, edit_json(SCHED, setting(num_train_timesteps=0)),
         SCHED, CE, "invalid-config", ("num_train_timesteps: 0",)),
    Case("scheduler-wrong-kind", C, write_text(SCHED, '{"_class_name": "ScoreSdeVeScheduler"}'),
         SCHED, ValueError, None, ("DDPMSchedulerConfig",)),
    # PyTorch pickles
    Case("bin-without-torch", R, bin_without_torch,
         BIN, ImportError, None, ("needs torch",)),
    Case("bin-corrupt", R, corrupt_bin,
         BIN, CE, "corrupt-file", ("torch.load cannot read it",)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[f"{c.layout}-{c.name}" for c in CASES])
def test_corruption_is_reported(case, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    folder = tiny_checkpoint(tmp_path / "model", converted=case.layout == "converted")
    pipeline.load_model(folder)  # intact, it loads
    case.corrupt(folder, monkeypatch)
    with pytest.raises(case.error) as info:
        pipeline.load_model(folder)
    message = str(info.value)
    assert str(folder / case.file) in message, message
    for needle in case.needles:
        assert needle in message, (needle, message)
    if case.tag is not None:
        assert isinstance(info.value, CheckpointError) and isinstance(info.value, ValueError)
        assert (info.value.case, info.value.file) == (case.tag, folder / case.file), message
    code = cli.main(["sample", "--model", str(folder), "--steps", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message.splitlines()[0] in err and "Traceback" not in err


def test_matrix_covers_the_asked_cases():
    """The rows the issue asks for are all there (names are the contract of this table)."""
    names = {(c.layout, c.name) for c in CASES}
    for row in [
        (C, "format-version"), (C, "format-file-missing"), (C, "config-missing"),
        (R, "config-missing"), (C, "tensor-missing"), (C, "tensor-extra"),
        (C, "tensor-misshaped"), (C, "truncated-half"), (R, "truncated-half"), (C, "nan"),
        (C, "inf"), (C, "negative-channels"), (C, "unknown-block-type"),
        (R, "bin-without-torch"),
    ]:  # fmt: skip
        assert row in names, row


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_missing_scheduler_config_falls_back_to_the_presets(kind, tiny_checkpoint, tmp_path):
    """``load_model``: no ``scheduler_config.json`` -> the CelebA-HQ preset of the model's kind
    (DDPM for epsilon models, VE-SDE for score models), as its docstring says; a file present
    wins over the preset."""
    folder = tiny_checkpoint(tmp_path / "bare", kind, scheduler=None)
    assert not (folder / "scheduler_config.json").exists()
    model = pipeline.load_model(folder)
    expected = DDPM_CELEBAHQ_SCHEDULER if kind == "vp" else VE_CELEBAHQ_SCHEDULER
    assert model.scheduler == expected
    assert model.parameterization == ("epsilon" if kind == "vp" else "score")
    if kind == "vp":
        own = {"_class_name": "DDPMScheduler", "beta_end": 0.03, "num_train_timesteps": 500}
        folder = tiny_checkpoint(tmp_path / "own", kind, scheduler=own)
        assert pipeline.load_model(folder).scheduler == DDPMSchedulerConfig(
            beta_end=0.03, num_train_timesteps=500
        )


def _write_bf16_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A safetensors file of BF16 tensors written by hand; returns the values it holds (float32)."""
    header, blobs, offset, held = {}, [], 0, {}
    for name, value in tensors.items():
        bits = (np.ascontiguousarray(value, np.float32).view(np.uint32) >> 16).astype("<u2")
        blob = bits.tobytes()
        span = [offset, offset + len(blob)]
        header[name] = {"dtype": "BF16", "shape": list(value.shape), "data_offsets": span}
        offset += len(blob)
        blobs.append(blob)
        held[name] = (bits.astype(np.uint32) << 16).view(np.float32).reshape(value.shape)
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"".join(blobs))
    return held


def test_bf16_diffusers_weights_load_without_torch(tiny_checkpoint, tmp_path):
    """numpy has no bfloat16: such files are read by hand, widened exactly to float32."""
    folder = tiny_checkpoint(tmp_path / "bf16", converted=False)
    state = load_file(str(folder / RAW))
    held = _write_bf16_safetensors(folder / RAW, state)
    assert any(not np.array_equal(held[k], state[k]) for k in state)  # bf16 really rounds
    got = convert.read_torch_state_dict(folder)
    assert set(got) == set(held)
    for key, value in held.items():
        np.testing.assert_array_equal(got[key], value)
    held["conv_in.bias"][0] = np.nan
    _write_bf16_safetensors(folder / RAW, held)
    with pytest.raises(CheckpointError, match="conv_in.bias: 1 NaN"):
        convert.read_torch_state_dict(folder)


def test_converting_a_damaged_folder_names_the_source(tiny_checkpoint, tmp_path):
    """``flax-celeba convert`` checks as loading does, and writes nothing on failure."""
    folder = tiny_checkpoint(tmp_path / "raw", converted=False)
    edit_tensors(RAW, set_values("conv_in.bias", (1,), np.inf))(folder, None)
    with pytest.raises(CheckpointError, match="conv_in.bias: 0 NaN and 1 inf") as info:
        convert.convert(folder, tmp_path / "out")
    assert info.value.file == folder / RAW
    assert not (tmp_path / "out").exists()
