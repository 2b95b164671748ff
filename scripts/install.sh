#!/usr/bin/env bash
# Create .venv with pip and install facezoo (editable) with torch pinned to the CPU build.
# Idempotent: skips pip when pyproject.toml and constraints.txt are unchanged since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
export PIP_CONSTRAINT="$PWD/constraints.txt"   # also binds pip's isolated build environments
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp=.venv/.facezoo-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
echo "install.sh: installing the Python environment into .venv (first time: ~3 min; pip's log: .venv/pip.log)..."
start=$SECONDS
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# a line every 30 s, so a terminal or a CI log shows that pip is still at work
( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  while :; do sleep 30 & nap=$!; wait "$nap"; echo "install.sh: still installing ($((SECONDS - start)) s)"; done ) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
# pip warns once per package about the machine's empty extra index folders; show only real messages.
status=0
.venv/bin/python -m pip install --quiet -e ".[dev]" > .venv/pip.log 2>&1 || status=$?
kill "$ticker" 2>/dev/null || true
grep -v "is ignored: it is neither a file nor a directory" .venv/pip.log || true
[ "$status" -eq 0 ] || { echo "install.sh: pip install failed (exit $status), see .venv/pip.log" >&2; exit 1; }

# Fail loudly if the environment is not the CPU stack we pinned.
if .venv/bin/python -m pip list 2>/dev/null | grep -i '^nvidia-'; then
  echo "install.sh: nvidia-* packages were installed (a CUDA torch slipped in); remove .venv and check constraints.txt" >&2
  exit 1
fi
.venv/bin/python - <<'PY'
import sys, torch
if not torch.__version__.startswith("2.13.0"):
    sys.exit(f"install.sh: expected torch 2.13.0, found {torch.__version__}")
import facezoo.utils.torchvision_shim, pytorch_lightning, torchmetrics, lpips, kornia, hydra  # noqa: F401
print(f"facezoo environment ready: torch {torch.__version__}, lightning {pytorch_lightning.__version__}",
      end="")
PY
echo " (installed in $((SECONDS - start)) s)"
echo "$want" > "$stamp"
