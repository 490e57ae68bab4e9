#!/usr/bin/env bash
# Run ON the GPU machine, from the repo root, with .devdeps carried: unpacks our dependencies under
# /opt/sv (never over the system) and prints the environment to `eval`, e.g.
#   eval "$(bash scripts/device-setup.sh)" && cmake -S . -B build $SPARVAR_CMAKE_ARGS ...
set -euo pipefail
root=/opt/sv
if [ ! -d "$root/usr" ]; then
  mkdir -p "$root/include-gpu"
  for f in .devdeps/debs/*.deb; do dpkg -x "$f" "$root"; done
  tar -C "$root/include-gpu" -xzf .devdeps/cutlass-include.tar.gz
  mkdir -p "$root/cudnn-fe" && tar -C "$root/cudnn-fe" -xzf .devdeps/cudnn-frontend-include.tar.gz
fi
lib=$root/usr/lib/x86_64-linux-gnu
cat <<ENV
export PATH=$root/usr/bin:\$PATH
export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$lib/pkgconfig:$root/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
export SPARVAR_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=$root/usr -DBLAS_LIBRARIES=$lib/openblas-pthread/libopenblas.so -DCBLAS_INCLUDE_DIR=$root/usr/include/x86_64-linux-gnu/openblas-pthread -DCUTLASS_INCLUDE_DIR=$root/include-gpu/include -DCUDNN_FE_INCLUDE_DIR=$root/cudnn-fe/include -DPKG_CONFIG_EXECUTABLE=$root/usr/bin/pkgconf"
ENV
