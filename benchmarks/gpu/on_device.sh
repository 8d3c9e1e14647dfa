#!/usr/bin/env bash
# Run a GPU check on a lent GPU machine whose image has CUDA 13 libraries but only CPU
# onnxruntime, from what earlier calls carried in pieces (.gpu/part.*): onnxruntime-gpu without
# its TensorRT provider (onnxruntime-gpu.tar.xz), an artefact folder (artefact.tar.xz) and, for
# service_check.py, the service's wheels (wheels.tar).
#
#     bash benchmarks/gpu/on_device.sh cuda_check|service_check [ARGS...]
set -euo pipefail
check=${1:?cuda_check or service_check}
shift
work=/tmp/gpu-check
if [ ! -d "$work/artefact" ]; then  # a rerun on the same machine skips the unpacking
    mkdir -p "$work/site"
    cat .gpu/part.* | tar xf - -C "$work"
    tar xJf "$work/onnxruntime-gpu.tar.xz" -C "$work/site"
    tar xJf "$work/artefact.tar.xz" -C "$work"
    if [ -f "$work/wheels.tar" ]; then
        mkdir -p "$work/wheels" && tar xf "$work/wheels.tar" -C "$work/wheels"
        python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/service-site" \
            "$work"/wheels/*.whl
    fi
fi
rooms=$PWD/runtime:$PWD/service:$PWD/registry:$PWD/evaluation:$PWD/cli:$PWD/client:$PWD/export
export PYTHONPATH="$work/site:$work/service-site:$rooms" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 "benchmarks/gpu/$check.py" "$work/artefact" "${OUT:-/tmp}/$check.json" "$@"
