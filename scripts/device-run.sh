#!/usr/bin/env bash
# Runs on the lent GPU machine (see scripts/device-kit.sh), in the repository root, with .device-kit
# carried: our WebGPU bench (default model, TinyLlama-1.1B shape in f16 and Q4_0, each with Dawn's
# copy bandwidth) and HF transformers on the same card (static and dynamic cache, torch's copy
# bandwidth). Everything printed is also written to $OUT/device-bench.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
kit=.device-kit
work=${TMPDIR:-/tmp}/llama-ts-device
out=${OUT:-$work/out}
mkdir -p "$work" "$out"
[ -f "$kit/node.xz" ] || { echo "device-run: $kit/node.xz missing: run scripts/device-kit.sh here and carry .device-kit" >&2; exit 2; }
xz -dc "$kit/node.xz" > "$work/node" && chmod +x "$work/node"
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  for deb in "$kit"/debs/*.deb; do dpkg-deb -x "$deb" "$work/vk"; done
  export LD_LIBRARY_PATH="$work/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "(no nvidia-smi)"
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null
  echo
  timeout 300 "$work/node" "$kit/gpu-bench.mjs" || echo "gpu-bench exited with $?"
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    for cache in static dynamic; do echo; timeout 150 python3 bench/gpu-hf-baseline.py --cache "$cache" || echo "hf baseline ($cache) exited with $?"; done
  else
    echo; echo "(no CUDA torch here: the HF baseline is skipped)"
  fi
} 2>&1 | tee "$out/device-bench.txt"
