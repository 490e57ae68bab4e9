#!/usr/bin/env bash
# Run HERE: packs the committed tree (HEAD, without models/) into the git-ignored .snap/src.tar.gz, so a device
# call builds exactly what was committed even while the working tree is being edited. On the GPU machine
# (carry .snap and .devdeps; models/ moved aside, see docs/device.md):
#   mkdir -p /tmp/src && tar -xzf .snap/src.tar.gz -C /tmp/src && cp -r .devdeps /tmp/src/ && cd /tmp/src && ...
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .snap
git archive --format=tar HEAD ':!models' | gzip -1 >.snap/src.tar.gz
echo "$(git rev-parse --short HEAD): $(du -h .snap/src.tar.gz | cut -f1) in .snap/src.tar.gz"
