#!/usr/bin/env bash
# Installs the system pieces the tests and `npm start` need, idempotently:
# Mesa lavapipe (Vulkan for Dawn) from bookworm-backports, sentencepiece (tokenizer
# oracle), the Jupyter stack and its kernel test suite, and chromium for browser tests.
# Skips apt entirely when everything is already present.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in python3-sentencepiece sentencepiece jupyter-server python3-jupyter-client python3-nbclient \
         jupyter-nbconvert python3-notebook python3-jupyter-kernel-test chromium python3-venv \
         python3-zmq fonts-dejavu-core xz-utils; do
  have_pkg "$p" || need+=("$p")
done

# Dawn needs Mesa >= 23-ish lavapipe; Debian 12's Mesa 22 is too old.
mesa_ok=0
if have_pkg mesa-vulkan-drivers; then
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)
  case "$v" in 2[3-9].*|[3-9][0-9].*) mesa_ok=1 ;; esac
fi

if [ ${#need[@]} -eq 0 ] && [ $mesa_ok -eq 1 ]; then
  exit 0
fi

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
  $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
echo "[setup] apt-get update" >&2
$SUDO apt-get update -qq >&2
if [ ${#need[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${need[*]}" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if [ $mesa_ok -eq 0 ]; then
  echo "[setup] installing Mesa lavapipe from bookworm-backports" >&2
  $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >&2
fi
