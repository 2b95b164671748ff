"""What every command shares: where the config tree is, the working root, and the one-line error exit.

- `CONF_DIR`: the Hydra config tree. In an installed wheel it is package data (`facezoo/conf`); in a checkout
  (editable install) it is the top-level `conf/` folder beside `src/`.
- `WORK_ROOT`: the folder relative paths are read from (data, logs, pretrained): the working directory the
  command started in, computed once. Never the package's location.
- `run_cli(task, cfg)`: run a plain function; a `FacezooError` (bad input) ends the program with one line on
  stderr and exit code 2, never a traceback.
- `null_groups_as_deletions(config)`: lets `group=null` on the command line turn off a config group that has a
  default (`logger=null`: no logger), which Hydra itself refuses; it means `~group`.
"""

import sys
from pathlib import Path

from omegaconf import OmegaConf

from facezoo.utils.console import quiet_lightning
from facezoo.utils.errors import ConfigError, FacezooError

_PACKAGE = Path(__file__).resolve().parent
CONF_DIR = str(_PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf")
WORK_ROOT = Path.cwd()


USAGE_ERROR = 2  # the exit code of bad input (argparse's too)


def error_line(err: BaseException | str) -> int:
    """Print the one-line message of bad input on stderr; → the exit code to end with."""
    print(f"facezoo: error: {err}", file=sys.stderr)
    return USAGE_ERROR


def run_cli(task, *args, **kwargs):
    """`task(*args, **kwargs)`, without Lightning's console noise (`facezoo.utils.console.quiet_lightning`);
    bad input ends the program with one clear line on stderr and exit code 2."""
    quiet_lightning()
    try:
        return task(*args, **kwargs)
    except FacezooError as err:
        sys.exit(error_line(err))


def device_option(name: str) -> str:
    """The `device=` option of the commands: auto (cuda when present) | cpu | cuda | cuda:N, checked."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA device here; use device=cpu or auto")
    return name


def check_seed(seed) -> int:
    """The run seed of train and eval, checked before anything uses it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed}: expected an integer in [0, 2**32)")
    return seed


def null_groups_as_deletions(config_name: str, argv: list[str] | None = None) -> None:
    """Rewrite `group=null` in `argv` (default `sys.argv`) to `~group` for the groups `config_name`'s defaults
    list sets (Hydra accepts `null` only for groups whose default is null)."""
    argv = sys.argv if argv is None else argv
    config = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / f"{config_name}.yaml"))
    defaults = config.get("defaults", [])
    groups = {k for entry in defaults if isinstance(entry, dict) for k, v in entry.items() if v is not None}
    for i, arg in enumerate(argv[1:], start=1):
        group, _, value = arg.partition("=")
        if value == "null" and group in groups:
            argv[i] = f"~{group}"
