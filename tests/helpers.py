"""Helpers shared by the tests (imported as `from helpers import ...`; conftest holds only fixtures)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]  # the checkout


def run_module(module: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    """Run `python -m <module> args...` the way a user does; returns the CompletedProcess."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_RUN_IN_TURN = """
import contextlib, io, json, os, runpy, sys
from hydra.core.global_hydra import GlobalHydra
results = []
for module, args, cwd in json.loads(sys.argv[1]):
    os.chdir(cwd)
    sys.argv, stderr, code = [module, *args], io.StringIO(), 0
    with contextlib.redirect_stderr(stderr):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    GlobalHydra.instance().clear()
    results.append({"returncode": code, "stderr": stderr.getvalue()})
print(json.dumps(results))
"""


def run_modules(commands: dict[str, tuple], timeout: int = 600) -> dict:
    """Run several `python -m <module> args...` commands (name -> (module, args, cwd)) one after another in
    ONE Python process, so Python, torch and Lightning start once: each sees its own `sys.argv`, working
    folder and stderr, and runs the module's `__main__` path as a user's command does. → name -> a result
    with `.returncode` and `.stderr`."""
    plan = [[module, list(map(str, args)), str(cwd)] for module, args, cwd in commands.values()]
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_IN_TURN, json.dumps(plan)],
        env={**os.environ, "HYDRA_FULL_ERROR": "0"}, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: SimpleNamespace(**r) for name, r in zip(commands, results, strict=True)}


def materialised_parameters(model) -> int:
    """Elements of a module's parameters that hold memory (not on the meta device), the skeletons that
    `load_model` holds out included."""
    skeletons = [v for v in vars(model).values() if isinstance(v, nn.Module)]
    params = [*model.parameters(), *(p for s in skeletons for p in s.parameters())]
    return sum(p.numel() for p in params if not p.is_meta)


QUIET = ["~callbacks.progress_bar", "callbacks.lr_monitor=null"]
TINY = ["debug=tiny", *QUIET, "datamodule.synthetic.size=64"]  # synthetic data sets only


def first_batch(datamodule) -> dict:
    """The first training batch of `datamodule`, transferred (degraded / normalised) as in training."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)


def fit_repeated(model, batch: dict, n: int):
    """Train `model` for `n` steps on the same ready batch (no validation, no checkpoints); the Trainer."""
    import pytorch_lightning as pl

    from facezoo.datamodules.repeated_batch import RepeatedBatchDataModule

    trainer = pl.Trainer(
        max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, num_sanity_val_steps=0, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=RepeatedBatchDataModule(batch, n))
    return trainer


class LossRecorder:
    """A Lightning callback (built lazily: conftest must not import Lightning early) recording, after every
    training batch, the logged `train/<key>` values (plus `extra(pl_module)` values) and the batch counter,
    and in `logs` every loss the module's `train_step` returned for that batch, and in `final_state` the
    module's state_dict when training ends; with `save_at`, saves a checkpoint to `path` after that many
    batches."""

    def __new__(cls, keys=("l1",), save_at: int | None = None, path=None, extra=None):
        import pytorch_lightning as pl

        class _Recorder(pl.Callback):
            def __init__(self) -> None:
                self.losses, self.counters, self.logs, self.final_state = [], [], [], {}

            def on_train_start(self, trainer, pl_module):
                train_step = pl_module.train_step

                def recorded(batch):
                    logs = train_step(batch)
                    self.logs.append({k: float(v) for k, v in sorted(logs.items())})
                    return logs

                pl_module.train_step = recorded

            def on_train_end(self, trainer, pl_module):
                self.final_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                values = [float(trainer.callback_metrics[f"train/{k}"]) for k in keys]
                self.losses.append([*values, *(extra(pl_module) if extra else [])])
                self.counters.append(int(pl_module.batch_counter))
                if save_at is not None and len(self.counters) == save_at:
                    trainer.save_checkpoint(path, weights_only=False)

        return _Recorder()


def hostile_target(marker: Path) -> dict:
    """A config node that, if instantiated, writes `marker` (`Path(marker).write_text('pwned')`): what a
    crafted checkpoint may carry in its config (tests/test_checkpoints.py)."""
    path = {"_target_": "pathlib.Path", "_args_": [str(marker)]}
    return {"_target_": "pathlib.Path.write_text", "_args_": [path, "pwned"]}


class WritesOnUnpickle:
    """Unpickling an instance writes `marker` (a checkpoint that runs code when loaded without
    `weights_only=True`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return Path.write_text, (self.marker, "pwned")


def build_tiny(tmp_path, data_dir, *overrides) -> tuple:
    """(model, datamodule, cfg) of the tiny config with `overrides`, built as train.py builds them."""
    from facezoo.utils.compose import compose_config
    from facezoo.utils.instantiate import instantiate

    cfg = compose_config(overrides=[*TINY, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model, "model"), instantiate(cfg.datamodule, "datamodule"), cfg


def fit_batches(model, datamodule, batches: int, epochs: int = 1):
    """Train `model` on `batches` batches per epoch of `datamodule` (no validation, no checkpoints); the
    Trainer."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer


def save_weights(path, state=None):
    """A small weights file at `path` (`state`, or one tensor), its folders made; the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state if state is not None else {"w": torch.ones(2)}, path)
    return path


def state_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of `module` with its shape."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def noisy(module: nn.Module) -> nn.Module:
    """Noise strengths (the only (1,)-shaped parameters, initialised to 0) switched on, so noise shows."""
    with torch.no_grad():
        for p in module.parameters():
            if p.shape == (1,):
                p.fill_(0.5)
    return module


def restored(model: nn.Module, x: torch.Tensor):
    """`model(x)` with the stored noise maps: deterministic."""
    return model(x, randomize_noise=False)


# --- official release layouts, written out from reference/official-implementations.md independently of the
# importers' tables: GFP-GAN's BasicSR names (§1) and GPEN's keys and shapes (§2) ----------------------------


CORE_TO_BASICSR = [  # (our core Generator name, BasicSR name), first match wins
    (r"style\.(\d+)\.(weight|bias)", r"style_mlp.\1.\2"),
    (r"input\.input", "constant_input.weight"),
    (r"conv1\.conv\.(.+)", r"style_conv1.modulated_conv.\1"),
    (r"conv1\.noise\.weight", "style_conv1.weight"),
    (r"conv1\.activate\.bias", "style_conv1.activate.bias"),
    (r"convs\.(\d+)\.conv\.(.+)", r"style_convs.\1.modulated_conv.\2"),
    (r"convs\.(\d+)\.noise\.weight", r"style_convs.\1.weight"),
    (r"convs\.(\d+)\.activate\.bias", r"style_convs.\1.activate.bias"),
    (r"to_rgb1\.conv\.(.+)", r"to_rgb1.modulated_conv.\1"),
    (r"to_rgbs\.(\d+)\.conv\.(.+)", r"to_rgbs.\1.modulated_conv.\2"),
    (r"noises\.noise_(\d+)", r"noises.noise\1"),
    (r"(to_rgb1|to_rgbs\.\d+)\.bias", r"\1.bias"),
]


def basicsr_name(key: str) -> str:
    """The BasicSR name of a key of our core StyleGAN2 `Generator`."""
    for pattern, replacement in CORE_TO_BASICSR:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(f"no BasicSR name for {key}")


def official_gfpganv1_state(model: nn.Module) -> dict:
    """GFPGANv1.pth's layout: BasicSR decoder names, and no FIR kernels (plain attributes in BasicSR)."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".kernel"):
            continue
        if key.startswith("stylegan_decoder."):
            key = "stylegan_decoder." + basicsr_name(key[len("stylegan_decoder.") :])
        state[key] = value
    return state


def official_stylegan2_prior_state(decoder: nn.Module) -> dict:
    """StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth's `params_ema` layout."""
    return {basicsr_name(k): v for k, v in decoder.state_dict().items() if not k.endswith(".kernel")}


def _gpen_widths(cm: int, narrow: float) -> dict[int, int]:
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm}
    return {r: int(c * narrow) for r, c in base.items()}


def official_gpen_generator_shapes(size, style_dim=512, n_mlp=8, channel_multiplier=2, narrow=1.0) -> dict:
    """FullGenerator's state_dict keys → shapes (rosinality StyleGAN2 with concat noise + the ecd encoder)."""
    C, sd, log = _gpen_widths(channel_multiplier, narrow), style_dim, int(math.log2(size))
    s = {}
    for i in range(1, n_mlp + 1):
        s |= {f"generator.style.{i}.weight": (sd, sd), f"generator.style.{i}.bias": (sd,)}

    def styled(name, out, inp, blur=False):
        s.update({f"{name}.conv.weight": (1, out, inp, 3, 3), f"{name}.conv.modulation.weight": (inp, sd),
                  f"{name}.conv.modulation.bias": (inp,), f"{name}.noise.weight": (1,),
                  f"{name}.activate.bias": (2 * out,)})
        if blur:
            s[f"{name}.conv.blur.kernel"] = (4, 4)

    def to_rgb(name, inp, up=True):
        s.update({f"{name}.conv.weight": (1, 3, inp, 1, 1), f"{name}.conv.modulation.weight": (inp, sd),
                  f"{name}.conv.modulation.bias": (inp,), f"{name}.bias": (1, 3, 1, 1)})
        if up:
            s[f"{name}.upsample.kernel"] = (4, 4)

    s["generator.input.input"] = (1, C[4], 4, 4)
    styled("generator.conv1", C[4], C[4])
    to_rgb("generator.to_rgb1", 2 * C[4], up=False)
    for j, r in enumerate(2**k for k in range(3, log + 1)):
        styled(f"generator.convs.{2 * j}", C[r], 2 * C[r // 2], blur=True)
        styled(f"generator.convs.{2 * j + 1}", C[r], 2 * C[r])
        to_rgb(f"generator.to_rgbs.{j}", 2 * C[r])
    s |= {"ecd0.0.0.weight": (C[size], 3, 1, 1), "ecd0.0.1.bias": (C[size],)}
    for k in range(1, log - 1):
        cin, cout = C[size >> (k - 1)], C[size >> k]
        s |= {f"ecd{k}.0.0.kernel": (4, 4), f"ecd{k}.0.1.weight": (cout, cin, 3, 3),
              f"ecd{k}.0.2.bias": (cout,)}
    return s | {"final_linear.0.weight": (sd, C[4] * 16), "final_linear.0.bias": (sd,)}


def official_gpen_discriminator_shapes(size, channel_multiplier=2, narrow=1.0) -> dict:
    """GPEN-BFR-*-D's state_dict keys → shapes (rosinality's StyleGAN2 discriminator)."""
    C, log = _gpen_widths(channel_multiplier, narrow), int(math.log2(size))
    s = {"convs.0.0.weight": (C[size], 3, 1, 1), "convs.0.1.bias": (C[size],)}
    for n, i in enumerate(range(log, 2, -1), start=1):
        cin, cout = C[2**i], C[2 ** (i - 1)]
        s |= {f"convs.{n}.conv1.0.weight": (cin, cin, 3, 3), f"convs.{n}.conv1.1.bias": (cin,),
              f"convs.{n}.conv2.0.kernel": (4, 4), f"convs.{n}.conv2.1.weight": (cout, cin, 3, 3),
              f"convs.{n}.conv2.2.bias": (cout,), f"convs.{n}.skip.0.kernel": (4, 4),
              f"convs.{n}.skip.1.weight": (cout, cin, 1, 1)}
    return s | {"final_conv.0.weight": (C[4], C[4] + 1, 3, 3), "final_conv.1.bias": (C[4],),
                "final_linear.0.weight": (C[4], C[4] * 16), "final_linear.0.bias": (C[4],),
                "final_linear.1.weight": (1, C[4]), "final_linear.1.bias": (1,)}


def random_official_state(shapes: dict) -> dict:
    """An 'official' state_dict: random tensors, the real blur kernels (they are buffers in the files)."""
    kernel = torch.tensor([1.0, 3, 3, 1])
    kernel = torch.outer(kernel, kernel) / 64
    return {k: kernel * (4 if "upsample" in k or "conv.blur" in k else 1) if k.endswith("kernel")
            else torch.randn(v) for k, v in shapes.items()}


class SeenDegradation(torch.nn.Module):
    """Stands in for the degradation: lq is the hq it was given, so a test sees what it saw."""

    def forward(self, hq: torch.Tensor, seed: int) -> dict:
        return {"lq": hq.clone(), "hq": hq}


def tiny_checkpoint(folder: Path, data_dir, *overrides: str, name: str = "tiny.ckpt", edit=None) -> Path:
    """A tiny model of `overrides` (after TINY and the synthetic restoration data) with random weights from
    seed 0 (tests only), saved as a facezoo checkpoint `folder/name`; `edit(model)` may change it first."""
    from omegaconf import open_dict

    from facezoo.checkpoints import config_entries
    from facezoo.utils.compose import compose_config
    from facezoo.utils.instantiate import instantiate

    cfg = compose_config(overrides=[*TINY, "datamodule=synthetic_restore", *overrides], output_dir=folder,
                         data_dir=data_dir)
    with open_dict(cfg):
        del cfg["hydra"]
    torch.manual_seed(0)
    model = instantiate(cfg.model, "model")
    if edit is not None:
        edit(model)
    path = Path(folder) / name
    torch.save({"state_dict": model.state_dict(), **config_entries(cfg)}, path)
    return path


def random_irse50(encoder_state: dict) -> dict:
    """An IR-SE50 file's tensors at a StyleGANEX encoder's widths, random (tests only): its input layer and
    body, without BatchNorm step counters (as files saved before PyTorch 0.4.1)."""
    return {k: torch.randn_like(v.float()) for k, v in encoder_state.items()
            if k.startswith(("input_layer.", "body.")) and not k.endswith("num_batches_tracked")}


def save_encoder_checkpoint(encoder, path: Path) -> Path:
    """A StyleGANEX checkpoint holding only `encoder` (`encoder.*` keys), e.g. an inversion run's."""
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}}, path)
    return path
