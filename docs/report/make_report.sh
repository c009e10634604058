#!/usr/bin/env bash
# Regenerates docs/report/: CLIP against the supervised baseline on `shapes`, 3 seeds each.
# Usage (from anywhere): bash docs/report/make_report.sh
# Takes about 18 minutes on 2 busy CPU cores (6 runs of 2-4 minutes, then the report).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python}"
RUNS="$(mktemp -d)/clip-vs-supervised"
"$PYTHON" -m modalab run --quiet method=clip,supervised seed=0,1,2 \
    data.n_samples=2000 trainer.max_epochs=8 output_dir="$RUNS"
"$PYTHON" -m modalab report "$RUNS" --output docs/report --formats png --dpi 90 --quiet \
    --title "CLIP vs supervised late fusion on shapes (3 seeds)"
