#!/usr/bin/env bash
# Installs everything sparvar needs to build and test, from Debian's archive and PyPI. Idempotent.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config python3 python3-pip
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libspng-dev libzip-dev
  libopenblas-dev libgtest-dev libsentencepiece-dev
  clang libclang-rt-14-dev
  python3-torch python3-numpy python3-pytest python3-pil
)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Header-only GPU building blocks and the small Python needs of our scripts and tests.
# (--no-deps: the headers need none of nvidia-cutlass's Python dependencies.)
pip_install() { python3 -m pip install -q --disable-pip-version-check "$@"; }
python3 -c "import cutlass_library" 2>/dev/null || pip_install --no-deps nvidia-cutlass==4.2.0.0
python3 -c "import cudnn" 2>/dev/null || pip_install --no-deps nvidia-cudnn-frontend==1.32.0
python3 -c "import numpy" 2>/dev/null || pip_install numpy
