#!/usr/bin/env bash
# Issue 19, step 2: the GRPO arms under the chosen recipe (R3), before any HEAL arm runs.
# 1. GRPO-32 on validation under R3 (information beside the recipe's GRPO-1K runs);
# 2. GRPO-32 and GRPO-1K on test, seeds 0-4, three families, into the v3 replication folder;
# 3. issue 11's criteria on them.  Resumable: re-run the same script.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PY:-python}"
FAMILIES="sort_digits digit_sum countdown"
$PY -m heal_hf.cli replicate --eval-split validation --seeds 0 --families $FAMILIES --arms grpo-32 \
    --learning-rate 5e-05 --warmup-ratio 0.1 --curve-problems 200 --workers 2 --output-dir "$HERE/recipe/R3" --no-report
$PY -m heal_hf.cli replicate --arms grpo-32 grpo-1k --families $FAMILIES --seeds 0 1 2 3 4 --workers 2 \
    --output-dir "$HERE"
$PY "$HERE/../../criteria.py" "$HERE" --write
