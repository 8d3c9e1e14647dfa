#!/usr/bin/env bash
# Unpack what earlier calls carried in pieces (.gpu/part.*: onnxruntime-gpu without its
# TensorRT provider, and an artefact folder), then run cuda_check.py on the artefact.
# Used on a lent GPU machine whose image has CUDA 13 libraries but only CPU onnxruntime.
set -euo pipefail
work=/tmp/gpu-check
if [ ! -d "$work/artefact" ]; then  # a rerun on the same machine skips the unpacking
    mkdir -p "$work/site"
    cat .gpu/part.* | tar xf - -C "$work"
    tar xJf "$work/onnxruntime-gpu.tar.xz" -C "$work/site"
    tar xJf "$work/artefact.tar.xz" -C "$work"
fi
export PYTHONPATH="$work/site:$PWD/runtime" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 benchmarks/gpu/cuda_check.py "$work/artefact" "${OUT:-/tmp}/cuda-check.json" "$@"
