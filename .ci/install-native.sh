#!/usr/bin/env bash
# Installs the optional native GEMM libraries (oneDNN, OpenBLAS) when they are missing.
# SharpTune loads them at run time and falls back to its managed kernel without them. Without apt-get (not Debian)
# this reports and succeeds: their tests are skipped with the reason. On Debian a failed install (no root, no
# network, package not found) exits 1, so that CI, which runs the kernel tests against them, stops.
set -u

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }

missing=()
# Debian bookworm ships oneDNN 2.x as libdnnl2; newer releases ship libdnnl3. Either provides dnnl_sgemm.
if ! have_lib 'libdnnl\.so\.[23]'; then missing+=(dnnl); fi
if ! have_lib 'libopenblas\.so\.0'; then missing+=(openblas); fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-native: oneDNN and OpenBLAS already present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-native: apt-get not found; skipping (${missing[*]} missing, managed GEMM will be used)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install-native: not root and no sudo; cannot install ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || echo "install-native: apt-get update failed; trying the cached index"

packages=()
for lib in "${missing[@]}"; do
  case "$lib" in
    dnnl)
      for candidate in libdnnl3 libdnnl2; do
        if apt-cache show "$candidate" >/dev/null 2>&1; then packages+=("$candidate"); break; fi
      done ;;
    openblas) packages+=(libopenblas0-pthread) ;;
  esac
done

if [ ${#packages[@]} -ne ${#missing[@]} ]; then
  echo "install-native: no Debian package found for all of ${missing[*]} (found: ${packages[*]:-none})" >&2
  exit 1
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
  echo "install-native: could not install ${packages[*]}" >&2
  exit 1
fi
echo "install-native: installed ${packages[*]}"
