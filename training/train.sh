#!/usr/bin/env bash
# Train the embedded tiny VideoVLA from scratch and export it to models/tiny-sim.
#
#   training/train.sh              # starts in the background; follow with: tail -f runs/train.log
#   training/train.sh --foreground # same, in this terminal
#
# Stages (each resumable; a finished stage is skipped when its output exists):
#   1. record    videovla sim record: data/sim-train (3000 expert episodes), data/sim-val (100, seeds 900000+)
#   2. vae       training/train_vae.py   -> runs/vae        (VAE_MIN minutes): [8, 8, 16, 16] channels, object-weighted
#                loss (--focus 10), so the latent keeps the eight colours the instructions name
#   3. cache     training/cache_latents.py -> data/latents, data/latents-val
#   4. dit       training/train_dit.py   -> runs/dit        (DIT_MIN minutes)
#   4b. more     (DIT_MORE_STEPS > 0) the joint DiT continued on both cores, warm-started from runs/dit
#                with a fresh cosine schedule (lr 3e-4) -> runs/dit-more; the ablation stays at stage 4's budget
#   4c. recovery (RECOVERY_STEPS > 0) 3000 perturbed-expert episodes (sim record --perturb 0.3, seeds 3000+)
#                -> data/sim-train-perturb, their latents -> data/latents-perturb (RECOVERY_CACHE_MIN), then
#                the DiT so far continued on both caches -> runs/dit-recovery (the shipped fifth run)
#   4d. grounding (GROUND_STEPS > 0) 52,000 more scenes, first frames only (sim record --substeps 1 --max-actions 6,
#                cache_latents.py --first-frame-only -> data/latents-scenes); the DiT so far with a FRESH T5 trained on
#                scene samples alone, image frame only (--batch 0 --scene-frames 1 --fresh-text-encoder, lr 1e-3) ->
#                runs/dit-bind; then the released loss again on the windows + scene samples -> runs/dit-ground,
#                then mostly windows -> runs/dit-ground2 (the eighth run's recipe)
#   4e. policy   (POLICY_STEPS > 0) 24,000 full expert episodes at one frame per action (sim record --substeps 1),
#                the start frame + 6 actions of every window (cache_latents.py --first-frame-only --every-window ->
#                data/latents-mid, ~480,000 scene samples), the DiT so far continued on 8 windows + 128 one-frame
#                scene samples per step -> runs/dit-policy (the shipped ninth run's last stage)
#   5. export    training/export.py      -> models/tiny-sim (+ dataset_statistics.json), no guidance (the shipped setting)
#   6. fixture   training/tiny_sim_fixture.py -> tests/fixtures/tiny_sim_pipeline.*
#   7. ablation  (ABLATION=1) the same DiT budget with --video-loss-weight 0 -> runs/dit-action-only,
#                trained at the same time as stage 4 (one core each), exported to runs/ablation-action-only/model
# Environment: VAE_MIN (18), DIT_MIN (60), DIT_STEPS (LR schedule length, 4000), EPISODES (3000),
# DIT_MORE_STEPS (9000; 0 = ship stage 4's DiT), DIT_MORE_MIN (95), RECOVERY_STEPS (9000; 0 = skip 4c),
# RECOVERY_MIN (95), RECOVERY_CACHE_MIN (25), GROUND_STEPS (2000; 0 = skip 4d), GROUND_MIN (30),
# POLICY_STEPS (9000; 0 = skip 4e), POLICY_MIN (65), CACHE_MIN (15), LATENT_SCALE (0 = from the cache: 0.4 / content std), ABLATION (1; 0 = the joint model alone, on both cores), PY (venv python), BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs data
if [ "${1:-}" != "--foreground" ]; then
  nohup "$0" --foreground > runs/train.log 2>&1 &
  echo "training started in the background (pid $!); follow with: tail -f runs/train.log"
  exit 0
fi

PY="${PY:-$HOME/.cache/videovla/venv/bin/python}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videovla/target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/videovla}"
VAE_MIN="${VAE_MIN:-40}"; DIT_MIN="${DIT_MIN:-60}"; DIT_STEPS="${DIT_STEPS:-4000}"
LATENT_SCALE="${LATENT_SCALE:-0}"; EPISODES="${EPISODES:-3000}"; CACHE_MIN="${CACHE_MIN:-15}"
export OMP_WAIT_POLICY=PASSIVE   # shared 2-core machine: do not spin-wait
T0=$(date +%s)
stage() { echo "== $(date -u +%H:%M:%S) [$(( ($(date +%s) - T0) / 60 )) min] $*"; }

stage "0 build"
[ -x "$BIN" ] || cargo build --release
"$BIN" sim record --help > /dev/null

stage "1 record"
[ -f data/sim-train/meta.json ] || "$BIN" sim record --episodes "$EPISODES" --seed 0 --out data/sim-train --overwrite
[ -f data/sim-val/meta.json ] || "$BIN" sim record --episodes 100 --seed 900000 --out data/sim-val --overwrite

stage "2 vae"
[ -f runs/vae/done ] || { "$PY" training/train_vae.py --data data/sim-train --val data/sim-val --out runs/vae \
    --channels 8,8,16,16 --focus 10 --steps 2400 --minutes "$VAE_MIN" --batch 8 --frames 9 --lr 2e-3 \
    --eval-every 200 && touch runs/vae/done; }

stage "3 cache"
# every window of as many episodes as CACHE_MIN allows (one encode per episode, random episode order)
[ -f data/latents/meta.json ] || "$PY" training/cache_latents.py --data data/sim-train --vae runs/vae \
    --out data/latents --episodes-per-shard 100 --minutes "$CACHE_MIN"
[ -f data/latents-val/meta.json ] || "$PY" training/cache_latents.py --data data/sim-val --vae runs/vae \
    --out data/latents-val --per-episode 2 --shard-size 512 --batch 16 --seed 1

stage "4 dit"
DIT_ARGS=(--latents data/latents --val-latents data/latents-val --steps "$DIT_STEPS" --minutes "$DIT_MIN"
          --batch 32 --scale "$LATENT_SCALE")
ABLATION="${ABLATION:-1}"
if [ "$ABLATION" = "1" ]; then
  # The paper's ablation with the same budget: the action-only model (no video loss) trains at the
  # same time, one core each, same steps and wall-time cap.
  [ -f runs/dit-action-only/done ] || { "$PY" training/train_dit.py "${DIT_ARGS[@]}" --out runs/dit-action-only \
      --threads 1 --video-loss-weight 0 > runs/dit-action-only.log 2>&1 && touch runs/dit-action-only/done; } &
  ABL_PID=$!
  [ -f runs/dit/done ] || { "$PY" training/train_dit.py "${DIT_ARGS[@]}" --out runs/dit --threads 1 && touch runs/dit/done; }
  wait "$ABL_PID"
else
  [ -f runs/dit/done ] || { "$PY" training/train_dit.py "${DIT_ARGS[@]}" --out runs/dit && touch runs/dit/done; }
fi

DIT_MORE_STEPS="${DIT_MORE_STEPS:-9000}"; DIT_MORE_MIN="${DIT_MORE_MIN:-95}"
SHIP=runs/dit
if [ "$DIT_MORE_STEPS" -gt 0 ]; then
  stage "4b dit, continued ($DIT_MORE_STEPS steps on both cores)"
  [ -f runs/dit-more/done ] || { "$PY" training/train_dit.py --latents data/latents --val-latents data/latents-val \
      --init runs/dit/ckpt.pt --out runs/dit-more --steps "$DIT_MORE_STEPS" --minutes "$DIT_MORE_MIN" --batch 32 \
      --lr 3e-4 --threads 2 --seed 3 --scale "$LATENT_SCALE" && touch runs/dit-more/done; }
  SHIP=runs/dit-more
fi

RECOVERY_STEPS="${RECOVERY_STEPS:-9000}"; RECOVERY_MIN="${RECOVERY_MIN:-95}"; RECOVERY_CACHE_MIN="${RECOVERY_CACHE_MIN:-25}"
if [ "$RECOVERY_STEPS" -gt 0 ]; then
  stage "4c recovery data + DiT continued on both caches ($RECOVERY_STEPS steps on both cores)"
  [ -f data/sim-train-perturb/meta.json ] || "$BIN" sim record --episodes "$EPISODES" --seed 3000 --perturb 0.3 \
      --out data/sim-train-perturb --overwrite
  [ -f data/latents-perturb/meta.json ] || "$PY" training/cache_latents.py --data data/sim-train-perturb --vae runs/vae \
      --out data/latents-perturb --episodes-per-shard 100 --minutes "$RECOVERY_CACHE_MIN"
  [ -f runs/dit-recovery/done ] || { "$PY" training/train_dit.py --latents data/latents,data/latents-perturb \
      --val-latents data/latents-val --init "$SHIP/ckpt.pt" --out runs/dit-recovery --steps "$RECOVERY_STEPS" \
      --minutes "$RECOVERY_MIN" --batch 32 --lr 3e-4 --threads 2 --seed 5 --ckpt-every 200 \
      && touch runs/dit-recovery/done; }
  SHIP=runs/dit-recovery
fi

GROUND_STEPS="${GROUND_STEPS:-2000}"; GROUND_MIN="${GROUND_MIN:-30}"
if [ "$GROUND_STEPS" -gt 0 ]; then
  stage "4d grounding: 52,000 scenes, a fresh T5 bound on scene samples, then windows + scenes"
  [ -f data/sim-scenes/meta.json ] || "$BIN" sim record --episodes 52000 --seed 30000 --substeps 1 --max-actions 6 \
      --out data/sim-scenes --overwrite
  [ -f data/latents-scenes/meta.json ] || "$PY" training/cache_latents.py --data data/sim-scenes --vae runs/vae \
      --out data/latents-scenes --first-frame-only
  [ -f runs/dit-bind/done ] || { "$PY" training/train_dit.py --latents data/latents --val-latents data/latents-val \
      --scene-latents data/latents-scenes --batch 0 --scene-batch 128 --scene-frames 1 --fresh-text-encoder \
      --init "$SHIP/ckpt.pt" --out runs/dit-bind --steps "$GROUND_STEPS" --lr 1e-3 --ema 0.99 --threads 2 --seed 21 \
      --eval-every 100000 && touch runs/dit-bind/done; }
  [ -f runs/dit-ground/done ] || { "$PY" training/train_dit.py --latents data/latents --val-latents data/latents-val \
      --scene-latents data/latents-scenes --batch 16 --scene-batch 48 --scene-frames 0,1 \
      --init runs/dit-bind/ckpt.pt --out runs/dit-ground --steps 2400 --minutes "$GROUND_MIN" --lr 3e-4 --ema 0.995 \
      --threads 2 --seed 23 && touch runs/dit-ground/done; }
  [ -f runs/dit-ground2/done ] || { "$PY" training/train_dit.py --latents data/latents --val-latents data/latents-val \
      --scene-latents data/latents-scenes --batch 32 --scene-batch 16 --scene-frames 1 \
      --init runs/dit-ground/ckpt.pt --out runs/dit-ground2 --steps 1800 --minutes "$GROUND_MIN" --lr 2e-4 --ema 0.995 \
      --threads 2 --seed 29 && touch runs/dit-ground2/done; }
  SHIP=runs/dit-ground2
fi

POLICY_STEPS="${POLICY_STEPS:-9000}"; POLICY_MIN="${POLICY_MIN:-65}"
if [ "$POLICY_STEPS" -gt 0 ]; then
  stage "4e policy budget: every window start of 24,000 episodes as one-frame scene samples"
  [ -f data/sim-mid/meta.json ] || "$BIN" sim record --episodes 24000 --seed 200000 --substeps 1 \
      --out data/sim-mid --overwrite
  [ -f data/latents-mid/meta.json ] || "$PY" training/cache_latents.py --data data/sim-mid --vae runs/vae \
      --out data/latents-mid --first-frame-only --every-window
  [ -f runs/dit-policy/done ] || { "$PY" training/train_dit.py --latents data/latents --val-latents data/latents-val \
      --scene-latents data/latents-mid --batch 8 --scene-batch 128 --scene-frames 1 \
      --init "$SHIP/ckpt.pt" --out runs/dit-policy --steps "$POLICY_STEPS" --minutes "$POLICY_MIN" --lr 4e-4 \
      --ema 0.995 --threads 2 --seed 41 --eval-every 1500 && touch runs/dit-policy/done; }
  SHIP=runs/dit-policy
fi

stage "5 export"
# no guidance (scale 0), as shipped since the eighth run: guidance did not help the closed loop
"$PY" training/export.py --vae runs/vae --dit "$SHIP" --val-latents data/latents-val --out models/tiny-sim --guidance 0

stage "6 fixture"
"$PY" training/tiny_sim_fixture.py --model models/tiny-sim --out tests/fixtures --data data/sim-val

if [ "$ABLATION" = "1" ]; then
  stage "7 ablation export (action-only)"
  "$PY" training/export.py --vae runs/vae --dit runs/dit-action-only --val-latents data/latents-val \
      --out runs/ablation-action-only/model --name "tiny-sim action-only ablation (no video loss)"
fi
stage "done"
