#!/usr/bin/env bash
# Packs, into .device-kit/ (ignored by git), what the lent GPU machine needs to run the WebGPU
# bench: that machine has python3 with torch + transformers but no node, and no Vulkan loader.
#   node.xz                          this machine's node binary, xz-compressed (~24 MB)
#   node_modules/webgpu/             npm `webgpu` with only linux-x64's dawn.node
#   debs/                            Debian's Vulkan loader (libvulkan1)
#   gpu-bench.mjs                    bench/gpu-bench.ts and the library, one esbuild bundle (webgpu external)
# Then, in one call of the `device` tool:
#   run(command="bash scripts/device-run.sh", carry=[".device-kit"], timeout_s=480)
# (dist/ is not needed: the bundle holds the library.) Idempotent: rebuilt from scratch each time.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.device-kit
tmp=$kit.tmp
rm -rf "$tmp"
mkdir -p "$tmp/node_modules/webgpu/dist/linux-x64" "$tmp/debs"
xz -T0 -6 -c "$(command -v node)" > "$tmp/node.xz"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$tmp/node_modules/webgpu/"
cp node_modules/webgpu/dist/linux-x64/dawn.node "$tmp/node_modules/webgpu/dist/linux-x64/"
(cd "$tmp/debs" && apt-get download libvulkan1 >/dev/null 2>&1)
# The bundle sits one level below the repository root, as bench/ does, so the bench finds models/ the same way.
npx esbuild bench/gpu-bench.ts --bundle --platform=node --format=esm --target=node20 --log-level=warning \
  --external:webgpu --outfile="$tmp/gpu-bench.mjs" \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
rm -rf "$kit"
mv "$tmp" "$kit"
du -sh "$kit"
