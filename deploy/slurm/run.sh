#!/bin/bash
# deploy/slurm/run.sh — submit the array prewarm, then the training job once every task of it
# has succeeded (afterok).   Usage: S3_URI=s3://BUCKET/PREFIX/ deploy/slurm/run.sh [NODES]
set -euo pipefail
: "${S3_URI:?set S3_URI=s3://BUCKET/PREFIX/}"
NODES=${1:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
prewarm=$(sbatch --parsable --array="0-$((NODES - 1))" --export="ALL,S3_URI=$S3_URI" "$HERE/prewarm.sbatch")
echo "prewarm: job $prewarm ($NODES shards)"
train=$(sbatch --parsable --dependency="afterok:$prewarm" --nodes="$NODES" --export="ALL,S3_URI=$S3_URI" "$HERE/train.sbatch")
echo "train: job $train (after $prewarm)"
