#!/usr/bin/env bash
# Install the *full* mmcv (compiled ops) into the current Python environment.
#
# PyPI ships mmcv 2.x only as a source tarball, and mmseg imports the compiled
# `mmcv.ops` at import time, so the ops must be built here. The wheel is cached
# outside the repository, keyed by python / torch / device, so a reinstall takes
# seconds; the first build takes ~12 min on 2 CPU cores.
#
# Usage: PYTHON=.venv/bin/python bash tools/install_mmcv.sh
# Env:   MMCV_VERSION (2.1.0), MMMOMA_CACHE (~/.cache/mmmoma), MAX_JOBS (nproc)
set -euo pipefail

PYTHON=${PYTHON:-python}
# Absolute path (without resolving the venv symlink): the build runs in another folder.
if [[ "$PYTHON" == */* ]]; then
  PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
fi
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
CACHE_ROOT=${MMMOMA_CACHE:-$HOME/.cache/mmmoma}

if "$PYTHON" - "$MMCV_VERSION" <<'PY' 2>/dev/null; then
import sys
import mmcv
from mmcv.ops import nms  # noqa: F401  (fails on mmcv-lite / a broken build)
sys.exit(0 if mmcv.__version__ == sys.argv[1] else 1)
PY
  echo "[install_mmcv] mmcv $MMCV_VERSION with compiled ops is already installed"
  exit 0
fi

# Build with CUDA only when a GPU *and* nvcc are present; CPU ops otherwise.
if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    && command -v nvcc >/dev/null 2>&1; then
  DEVICE_TAG=$("$PYTHON" -c "import torch; print('cu' + torch.version.cuda.replace('.', ''))")
  export FORCE_CUDA=1
else
  DEVICE_TAG=cpu
  export FORCE_CUDA=0
  export CUDA_VISIBLE_DEVICES=""
fi
KEY=$("$PYTHON" -c "import sys, torch; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split(\"+\")[0]}')")-$DEVICE_TAG
WHEEL_DIR="$CACHE_ROOT/wheels/mmcv-$MMCV_VERSION-$KEY"
mkdir -p "$WHEEL_DIR"

if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  echo "[install_mmcv] building mmcv $MMCV_VERSION ($KEY); this takes ~12 min on 2 cores"
  "$PYTHON" -m pip install -q 'setuptools<82' wheel ninja psutil
  SRC=$(mktemp -d)
  trap 'rm -rf "$SRC"' EXIT
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$SRC" "mmcv==$MMCV_VERSION"
  tar -xzf "$SRC"/mmcv-"$MMCV_VERSION".tar.gz -C "$SRC"
  # torch >= 2.13 headers need C++20.
  if "$PYTHON" -c "import torch, sys; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(0 if v >= (2, 13) else 1)"; then
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
  fi
  export MMCV_WITH_OPS=1
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  (cd "$SRC/mmcv-$MMCV_VERSION" && "$PYTHON" -m pip wheel --no-deps --no-build-isolation \
      -w "$WHEEL_DIR" .)
fi

"$PYTHON" -m pip install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
# mmcv's own runtime dependencies (the wheel was installed with --no-deps).
"$PYTHON" -m pip install -q addict packaging pyyaml yapf 'mmengine==0.10.7'
"$PYTHON" -c "import mmcv; from mmcv.ops import nms; print('[install_mmcv] mmcv', mmcv.__version__, 'with compiled ops OK')"
