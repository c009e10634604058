#!/usr/bin/env bash
# Regenerates docs/report/: the report of the missing-modality study (studies/missing_modality.yaml:
# CLIP, SimCLR, VICReg and supervised late fusion on `shapes`, image missing at test time and
# semi-paired training, 5 seeds).
# Usage (from anywhere): bash docs/report/make_report.sh
# The sweep resumes: runs already in results/missing_modality are skipped (second edition: 125
# runs, see docs/study.md for its cost); the report itself took 52 s (2026-11-30).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -m modalab sweep studies/missing_modality.yaml
# The report reads the store's rows and, for configs, learning curves and embedding maps, the
# run directories below its PATH: stage both in one folder (a link to the rows, hard links to
# the run directories, so nothing is copied).
STAGE=runs/.report_missing_modality
rm -rf "$STAGE"
mkdir -p "$STAGE"
ln -s "$PWD/results/missing_modality/rows" "$STAGE/rows"
cp -al runs/missing_modality "$STAGE/runs"
rm -rf docs/report/figures
"$PYTHON" -m modalab report "$STAGE" --output docs/report --formats png --dpi 72 --quiet \
    --embedding-samples 200 \
    --title "Missing-modality study: CLIP, SimCLR, VICReg vs supervised late fusion on shapes (5 seeds)"
rm -rf "$STAGE"
