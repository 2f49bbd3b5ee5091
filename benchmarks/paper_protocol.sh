#!/usr/bin/env bash
# The AEDR paper's protocol, end to end, on the real models (needs a CUDA GPU and the weights; see
# docs/models.md for how to provide them). Every step resumes: rerun the same command after an
# interruption and finished work is skipped.
#
#   benchmarks/paper_protocol.sh REAL_DIR [OUT_DIR]
#
# REAL_DIR  real photographs (the paper: 500 LAION images, 001.jpg ... 500.jpg). Their first half is
#           the real estimation split (choosing alpha), the second half the real evaluation split.
# OUT_DIR   where everything goes (default: aedr-runs/paper-protocol).
#
# Steps:
#   1. prompts   CLIP Interrogator (ViT-H-14/laion2b_s32b_b79k, classic) on REAL_DIR -> Prompt.txt
#                (skipped when PROMPTS=FILE is given; needs `pip install 'aedr[interrogate]'`)
#   2. generate  N images per model with its own pipeline and the original's settings (50 steps,
#                35 for SD3.5 and FLUX, guidance 7.5, default size); image NNN.png from prompt NNN,
#                the i-th prompt of the file (0-based) with seed SEED + i, in OUT_DIR/images/<model>/
#   3. calibrate one AEDR calibration card per model on the first half of its images, at the alpha
#                the paper reports for it (Table 7), for later `aedr attribute` use
#   4. bench     every (target, source) pair and the real images: first half of each folder is the
#                calibration/estimation split, second half the evaluation split; alpha chosen per
#                target on the estimation split (--alpha auto), as the paper's Table 7
#   5. leaderboard
#
# Environment (all optional):
#   MODELS   models to run              (default: "SD1.5 SD2base SD2.1 SDXL SD3.5 FLUX KD2.1 VQDM")
#   METHODS  methods for the bench      (default: "aedr"; the baselines are far slower, see below)
#   N        images per model           (default: 500, as the paper)
#   PROMPTS  an existing prompt file    (default: made in step 1)
#   DEVICE   torch device               (default: cuda)
#   SEED     generation seed            (default: 0)
#   AEDR_MODEL_<KEY>  where each model's weights are (hub id or folder), e.g. AEDR_MODEL_SD1_5
#
# Expected runtime on one H100 80 GB (estimates from typical per-image pipeline times at the
# original's settings and the paper's Table 3, not measured by this project):
#   generation, 500 images per model: SD1.5 / SD2base ~15 min each, SD2.1 ~30 min, SDXL ~50 min,
#   SD3.5 Large ~2.5 h, FLUX.1-dev ~2 h, Kandinsky 2.1 ~20 min, VQ-Diffusion ~15 min: ~7 h in all
#   (plus the one-off downloads, ~110 GB, and CLIP Interrogator on 500 images, ~15 min).
#   AEDR calibration + bench: 8 targets x (8 x 250 + 250 + 250) images = 20,000 scorings at
#   0.06-1.25 s each: ~2-3 h. LatentTracer (12-163 s per image) on the same plan: ~20 days; RONAN at its
#   published 1,500 iterations: longer still. Run the baselines on a subset (N=50, or
#   `-o latenttracer.iterations=...` through BENCH_ARGS) and say so when reporting.
#   BENCH_ARGS  extra arguments for `aedr bench` (default: none)
set -euo pipefail

REAL_DIR=${1:?usage: benchmarks/paper_protocol.sh REAL_DIR [OUT_DIR]}
OUT=${2:-aedr-runs/paper-protocol}
MODELS=${MODELS:-"SD1.5 SD2base SD2.1 SDXL SD3.5 FLUX KD2.1 VQDM"}
METHODS=${METHODS:-aedr}
N=${N:-500}
DEVICE=${DEVICE:-cuda}
SEED=${SEED:-0}
BENCH_ARGS=${BENCH_ARGS:-}
HALF=$((N / 2))

# alpha per model, as chosen in the paper (Table 7)
declare -A PAPER_ALPHA=([SD1.5]=0.015 [SD2.1]=0.003 [SD2base]=0.005 [SD3.5]=0.035 [SDXL]=0.003 [FLUX]=0.02 [VQDM]=0.085 [KD2.1]=0.05)

log() { printf '\n== %s ==\n' "$*"; }
env_key() { echo "$1" | tr -c 'A-Za-z0-9\n' '_' | tr 'a-z' 'A-Z'; }   # SD1.5 -> SD1_5

# link_split SRC DST FROM COUNT: DST holds links to files FROM+1 .. FROM+COUNT of SRC (sorted by name)
link_split() {
  local src=$1 dst=$2 from=$3 count=$4
  mkdir -p "$dst"
  find "$dst" -maxdepth 1 -type l -delete
  find "$src" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.webp' \) -printf '%f\n' \
    | sort | tail -n +"$((from + 1))" | head -n "$count" \
    | while read -r f; do ln -s "$(cd "$src" && pwd)/$f" "$dst/$f"; done
}

mkdir -p "$OUT"
SECONDS=0

log "1. prompts"
if [[ -n "${PROMPTS:-}" ]]; then
  cp "$PROMPTS" "$OUT/Prompt.txt"
elif [[ ! -s "$OUT/Prompt.txt" ]]; then
  aedr prompts "$REAL_DIR" --out "$OUT/Prompt.txt" --clip ViT-H-14/laion2b_s32b_b79k --mode classic --device "$DEVICE"
fi
have=$(grep -c . "$OUT/Prompt.txt")
(( have >= N )) || { echo "need $N prompts, $OUT/Prompt.txt has $have" >&2; exit 2; }

log "2. generate ($N images per model)"
for m in $MODELS; do
  aedr generate "$m" --prompts "$OUT/Prompt.txt" --out "$OUT/images/$m" --limit "$N" --seed "$SEED" --device "$DEVICE"
done

log "3. calibrate (AEDR, first $HALF images of each model, the paper's alpha)"
for m in $MODELS; do
  link_split "$OUT/images/$m" "$OUT/split/$m/cal" 0 "$HALF"
  [[ -s "$OUT/cards/$m.json" ]] || \
    aedr calibrate --model "$m" --method aedr --images "$OUT/split/$m/cal" --alpha "${PAPER_ALPHA[$m]:-0.05}" \
      --device "$DEVICE" --out "$OUT/cards/$m.json"
done

log "4. bench (methods: $METHODS)"
link_split "$REAL_DIR" "$OUT/split/real/cal" 0 "$HALF"
link_split "$REAL_DIR" "$OUT/split/real/eval" "$HALF" "$HALF"
# With AEDR_IMAGES_<KEY> set, a model's images come from that folder (sorted by name: the first n_cal
# are its calibration split, the next n_eval its evaluation split) instead of being generated again.
for m in $MODELS; do export "AEDR_IMAGES_$(env_key "$m")=$OUT/images/$m"; done
# shellcheck disable=SC2086
aedr bench --models ${MODELS// /,} --methods "${METHODS// /,}" \
  --real "$OUT/split/real/eval" --real-cal "$OUT/split/real/cal" \
  --n-cal "$HALF" --n-eval "$HALF" --alpha auto --device "$DEVICE" --seed "$SEED" \
  --out "$OUT/bench" $BENCH_ARGS

log "5. leaderboard"
aedr leaderboard "$OUT/bench" --out "$OUT/leaderboard"

log "done in $((SECONDS / 3600)) h $((SECONDS % 3600 / 60)) min: $OUT/leaderboard, $OUT/bench/report.html, cards in $OUT/cards"
