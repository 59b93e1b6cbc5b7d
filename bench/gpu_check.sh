#!/usr/bin/env bash
# The GPU check a session runs first when it is lent a device machine (the `device` tool; no network there).
#
# Here, once (downloads the pure-Python wheels the device's Python 3.12 image lacks into .device_wheels/,
# which .git/info/exclude keeps out of git):
#     bash bench/gpu_check.sh prepare
# Then, through the device tool, in one call of at most 8 minutes:
#     run(command="bash bench/gpu_check.sh", carry=[".device_wheels"], timeout_s=540)
# It installs nothing into the image's Python: the wheels go to a target folder put first on PYTHONPATH with
# the checkout. It runs the CUDA tests (tests/test_kernels_cuda_gpu.py), the measurement-isolation tests, and
# bench/kernels.py --backend cuda --dtypes bf16 (bar: >= 85% of the HBM bandwidth measured beside it, no
# slower than cuBLAS (torch.mv), bf16, batch 1). Logs go to $OUT (gpu_check.log, kernels.txt, pytest.txt).
set -uo pipefail

WHEELS=.device_wheels
# What the device image lacks of amk's dependencies (cattrs, simpleeval; attrs and typing_extensions at the
# versions this cattrs needs, put first on the path) and of the tests' (none: pytest,
# hypothesis, xdist are there). KINDS.md lists the image's packages.
PACKAGES=(cattrs attrs typing_extensions simpleeval)

if [[ "${1:-}" == "prepare" ]]; then
    mkdir -p "$WHEELS"
    exclude="$(git rev-parse --git-common-dir)/info/exclude"
    grep -qx "/$WHEELS/" "$exclude" 2>/dev/null || echo "/$WHEELS/" >> "$exclude"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation py --abi none --platform any -d "$WHEELS" "${PACKAGES[@]}"
    ls "$WHEELS"
    exit 0
fi

OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
set -x
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))"
nvcc --version | tail -2

SITE=/tmp/amk_site
python3 -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1 AMK_BUILD_DIR=/tmp/amk_build
python3 -m amk doctor

timeout 300 python3 -m pytest -q -p no:cacheprovider -x tests/test_kernels_cuda_gpu.py tests/test_isolation_worker.py \
    tests/test_isolation_cpu.py 2>&1 | tee "$OUT/pytest.txt"
timeout 180 python3 bench/kernels.py --backend cuda --dtypes bf16 2>&1 | tee "$OUT/kernels.txt"
