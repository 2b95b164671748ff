"""What every command shares: where the config tree is, the working root, and the one-line error exit.

- `CONF_DIR`: the Hydra config tree. In an installed wheel it is package data (`facezoo/conf`); in a checkout
  (editable install) it is the top-level `conf/` folder beside `src/`.
- `WORK_ROOT`: the folder relative paths are read from (data, logs, pretrained): the working directory the
  command started in, computed once. Never the package's location.
- `run_cli(task, cfg)`: run a plain function; a `FacezooError` (bad input) ends the program with one line on
  stderr and exit code 2, never a traceback.
"""

import sys
from pathlib import Path

from facezoo.utils.errors import FacezooError

_PACKAGE = Path(__file__).resolve().parent
CONF_DIR = str(_PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf")
WORK_ROOT = Path.cwd()


USAGE_ERROR = 2  # the exit code of bad input (argparse's too)


def error_line(err: BaseException | str) -> int:
    """Print the one-line message of bad input on stderr; → the exit code to end with."""
    print(f"facezoo: error: {err}", file=sys.stderr)
    return USAGE_ERROR


def run_cli(task, *args, **kwargs):
    """`task(*args, **kwargs)`; bad input ends the program with one clear line on stderr and exit code 2."""
    try:
        return task(*args, **kwargs)
    except FacezooError as err:
        sys.exit(error_line(err))
