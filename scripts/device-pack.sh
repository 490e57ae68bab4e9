#!/usr/bin/env bash
# Run HERE (not on the GPU machine): gathers what the bare GPU machine lacks into .devdeps/ (git-ignored),
# to be carried to it with the device tool (carry: [".devdeps"]). There, scripts/device-setup.sh unpacks it.
# Contents: Debian .debs of our C++ dependencies, the CUTLASS/CuTe and cuDNN-frontend headers (tar.gz).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.devdeps
rm -rf "$out" && mkdir -p "$out/debs"
debs=(libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 nlohmann-json3-dev libcli11-dev libgtest-dev googletest
      libspng-dev libspng0 libzip-dev libzip4 libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread
      libopenblas0 libgfortran5 pkgconf pkgconf-bin libpkgconf3 zlib1g-dev libsentencepiece-dev libsentencepiece0
      libprotobuf-lite32)
(cd "$out/debs" && apt-get download "${debs[@]}" >/dev/null)
site=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tar -C "$site/cutlass_library/source" -czf "$out/cutlass-include.tar.gz" include
tar -C "$site" -czf "$out/cudnn-frontend-include.tar.gz" include
du -sh "$out"
