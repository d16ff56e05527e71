#!/usr/bin/env bash
# Creates the studio's virtualenv. Torch is chosen here, not by pip's resolver: a machine whose Python already has a
# CUDA torch (PAI-DSW images) keeps it (the venv sees system site-packages); elsewhere we install the CPU build pinned
# below, because an unpinned torch resolves to a multi-GB CUDA build.
set -euo pipefail
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}

has_cuda_torch=$("$PYTHON" -c 'import torch,sys; sys.stdout.write("1" if torch.cuda.is_available() else "0")' 2>/dev/null || echo 0)
if [ ! -x "$VENV/bin/python" ]; then
  if [ "$has_cuda_torch" = "1" ]; then
    echo "[setup] CUDA torch found in $PYTHON: the venv will reuse it (--system-site-packages)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
extra=()
[ -d /opt/wheels ] && extra+=(--find-links /opt/wheels)
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "[setup] installing torch==$TORCH_CPU_VERSION (CPU build)"
  "${PIP[@]}" install "${extra[@]}" "torch==$TORCH_CPU_VERSION" \
    || "${PIP[@]}" install --index-url https://download.pytorch.org/whl/cpu "torch==$TORCH_CPU_VERSION"
fi
torch_version=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
# Pin whatever torch we have so that no dependency can swap it for another build.
echo "torch==$torch_version" > "$VENV/torch-constraint.txt"
# ray: the Ray executor's tests start a Ray head (~80 MB wheel); EDS_EXTRAS=dev leaves it out.
"${PIP[@]}" install "${extra[@]}" -c "$VENV/torch-constraint.txt" -e ".[${EDS_EXTRAS:-dev,ray}]"
echo "[setup] done: $("$VENV/bin/python" -c 'import torch, gradio, transformers, trl; print("torch", torch.__version__, "gradio", gradio.__version__, "transformers", transformers.__version__, "trl", trl.__version__)')"
