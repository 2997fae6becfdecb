#!/usr/bin/env bash
# The whole test suite: Rust (unit, parity, simulator, ...) and the Python reference tests.
# Installs what the tests need (a Python venv from training/requirements.txt) on first run;
# dependencies are cached under ~/.cache/videovla so a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VIDEOVLA_CACHE:-$HOME/.cache/videovla}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$CACHE/pip}"
VENV="$CACHE/venv"
mkdir -p "$CACHE"

echo "== system packages"
# ffprobe checks that exported MP4s open in a standard tool.
if ! command -v ffprobe >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q ffmpeg >/dev/null
fi

# The viewer's headless tests (wgpu on lavapipe) and its Xvfb smoke test (../shared/docs/gui-testing.md).
GUI_PKGS="xvfb xauth mesa-vulkan-drivers libvulkan1 libgl1-mesa-dri libegl1 libegl-mesa0 libxkbcommon-x11-0 \
  libwayland-client0 imagemagick libxcursor1 libxrandr2 libxi6 libx11-xcb1 xdotool"
if ! command -v xvfb-run >/dev/null || ! command -v import >/dev/null || [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $GUI_PKGS >/dev/null
fi

echo "== python venv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r training/requirements.txt
export VIDEOVLA_PYTHON="$VENV/bin/python"

echo "== rust tests (release)"
set +e
cargo test --release --no-fail-fast -- --nocapture 2>&1 | tee "$CACHE/last-cargo-test.log" \
  | grep -E "^(test |parity |vae|sim |bench |test result|error|failures|---- )|panicked"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  tail -60 "$CACHE/last-cargo-test.log"; echo "rust tests FAILED (full log: $CACHE/last-cargo-test.log)"
  exit "$status"
fi

echo "== viewer window smoke test (Xvfb)"
tests/smoke-window.sh "$CARGO_TARGET_DIR/release/videovla" "$CACHE/smoke-window.png"

echo "== python tests"
"$VENV/bin/python" -m pytest training/tests -q -s

echo "== the unmodified openpi client against videovla serve ($CACHE/openpi-venv)"
# openpi-client 0.1.2 pins numpy < 2, so it gets a venv of its own.
if [ ! -x "$CACHE/openpi-venv/bin/python" ]; then
  python3 -m venv "$CACHE/openpi-venv"
fi
"$CACHE/openpi-venv/bin/pip" install -q --disable-pip-version-check -r tests/openpi/requirements.txt
VIDEOVLA_BIN="$CARGO_TARGET_DIR/release/videovla" "$CACHE/openpi-venv/bin/python" -m pytest tests/openpi -q -p no:warnings
echo "== all tests passed"
