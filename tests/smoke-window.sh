#!/usr/bin/env bash
# Smoke test of the real viewer window: start it under Xvfb with --auto-run (one prediction
# with the simulator scene's instruction as soon as the model is loaded), take a screenshot
# with ImageMagick's `import`, and check that it is not blank.
# Usage: tests/smoke-window.sh [videovla-binary] [screenshot.png]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/videovla/target}/release/videovla}"
SHOT="${2:-${VIDEOVLA_CACHE:-$HOME/.cache/videovla}/smoke-window.png}"
WAIT="${SMOKE_WAIT:-25}"
MODEL="${SMOKE_MODEL:-tests/fixtures/tiny_model}"
mkdir -p "$(dirname "$SHOT")"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
LOG="$(mktemp)"
rm -f "$SHOT"
xvfb-run -a -s "-screen 0 1600x1000x24" sh -c "
  '$BIN' viewer --model '$MODEL' --auto-run >'$LOG' 2>&1 & pid=\$!
  sleep $WAIT
  import -window root '$SHOT'
  kill \$pid 2>/dev/null || true
  wait \$pid 2>/dev/null || true
"
if [ ! -s "$SHOT" ]; then
  echo "smoke: no screenshot taken"; cat "$LOG"; exit 1
fi
# Not blank: many distinct colours and a real spread of pixel values.
python3 - "$SHOT" <<'PY' || { cat "$LOG"; exit 1; }
import subprocess, sys
shot = sys.argv[1]
colors = int(subprocess.check_output(["identify", "-format", "%k", shot]).decode())
std = float(subprocess.check_output(["convert", shot, "-colorspace", "Gray", "-format", "%[fx:standard_deviation]", "info:"]).decode())
print(f"smoke: {shot}: {colors} colours, grey std {std:.4f}")
if colors < 200 or std < 0.02:
    print("smoke: the screenshot looks blank"); sys.exit(1)
PY
grep -q "panicked" "$LOG" && { echo "smoke: the viewer panicked"; cat "$LOG"; exit 1; }
grep -q "prediction #1 done" "$LOG" || { echo "smoke: no prediction finished within ${WAIT}s"; cat "$LOG"; exit 1; }
echo "smoke: ok"
