#!/usr/bin/env bash
# LLaMA-Factory lives in its own virtualenv (.venv-llamafactory): it pins transformers <= 5.6, datasets <= 4.0 and
# trl <= 0.24, which must not move the studio's. tests/test_llamafactory_roundtrip.py loads our exports through its
# data pipeline there, and `llamafactory-cli train` runs from it. Idempotent: a stamp named after the version and
# this script skips work already done.
#
# How it is installed, and why (found on llamafactory 0.9.5, Python 3.11, torch 2.13.0+cpu):
#   - torch is the studio's CPU build (torch==2.13.0 from the local wheel folder, else PyTorch's CPU index), never
#     the multi-GB CUDA build an unpinned resolve picks;
#   - llamafactory itself goes in with --no-deps, then its own requirements (read from its metadata, so its version
#     bounds hold) less the optional ones: torchaudio has no build for torch 2.13 on PyPI (2.11 is the newest), so
#     a plain `pip install llamafactory` with this torch cannot resolve at all; torchvision / av (video), gradio
#     (web UI), fastapi / uvicorn / sse-starlette (API server), modelscope / hf-transfer (hubs), torchdata (v1),
#     matplotlib (loss plots, skipped when absent) are not needed to read data or train text models;
#   - llamafactory.data.mm_plugin does `import torchaudio` at module level (for audio datasets only), so a stub
#     package stands in for it: importing works, any use says torchaudio is not installed. It has no dist-info, so
#     transformers' is_torchaudio_available() stays False.
# Override: LLAMAFACTORY_VENV (folder), LLAMAFACTORY_VERSION (e.g. 0.9.4), PYTHON (base interpreter),
# TORCH_CPU_VERSION. A machine that already has LLaMA-Factory elsewhere: set EDS_LLAMAFACTORY_PYTHON instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LLAMAFACTORY_VENV:-.venv-llamafactory}
PYTHON=${PYTHON:-python3}
LF_VERSION=${LLAMAFACTORY_VERSION:-0.9.5}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
# optional requirements left out (see above); matched against the requirement's name
SKIP='^(torchaudio|torchvision|av|gradio|fastapi|uvicorn|sse-starlette|modelscope|hf-transfer|torchdata|matplotlib)$'

if [ -n "${EDS_LLAMAFACTORY_PYTHON:-}" ] && "$EDS_LLAMAFACTORY_PYTHON" -c 'import llamafactory' 2>/dev/null; then
  echo "[llamafactory] using EDS_LLAMAFACTORY_PYTHON=$EDS_LLAMAFACTORY_PYTHON"
  exit 0
fi
STAMP="$VENV/.ready-llamafactory_$LF_VERSION-torch_$TORCH_CPU_VERSION-$(sha1sum "$0" | cut -c1-10)"
if [ -f "$STAMP" ]; then
  echo "[llamafactory] llamafactory==$LF_VERSION ready in $VENV"
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
# --no-compile: pip byte-compiles every file it installs (13,096 here, ~35 CPU-s, one core); Python compiles what is
# imported on first import instead (the import check below does the bulk of it)
PIP=("$PY" -m pip --disable-pip-version-check -q)
# pip's notes that the optional requirements left out are "not installed", and local-index misses: not problems
NOISE="which is not installed|dependency resolver does not currently take into account|is ignored: it is neither"
pip_install() { "${PIP[@]}" install --no-compile "$@" 2> >(grep -vE "$NOISE" >&2); }
extra=()
[ -d /opt/wheels ] && extra+=(--find-links /opt/wheels)
torch_version() { "$PY" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null || true; }
if [ "$(torch_version | cut -d+ -f1)" != "$TORCH_CPU_VERSION" ]; then
  echo "[llamafactory] installing torch==$TORCH_CPU_VERSION (CPU build)"
  pip_install "${extra[@]}" "torch==$TORCH_CPU_VERSION" \
    || pip_install --index-url https://download.pytorch.org/whl/cpu "torch==$TORCH_CPU_VERSION"
fi
echo "torch==$(torch_version)" > "$VENV/torch-constraint.txt"

echo "[llamafactory] installing llamafactory==$LF_VERSION and its required (non-optional) dependencies"
pip_install --no-deps "llamafactory==$LF_VERSION"
mapfile -t reqs < <("$PY" - "$SKIP" <<'EOF'
import re, sys
from importlib.metadata import requires
skip = re.compile(sys.argv[1])
for r in requires("llamafactory") or []:
    if "extra ==" in r:
        continue
    name = re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-")
    if not skip.match(name):
        print(r.split(";")[0].strip())
EOF
)
pip_install "${extra[@]}" -c "$VENV/torch-constraint.txt" "${reqs[@]}"

site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! "$PY" -c 'import torchaudio' 2>/dev/null; then
  mkdir -p "$site/torchaudio"
  cat > "$site/torchaudio/__init__.py" <<'EOF'
"""Stand-in for torchaudio (written by scripts/setup_llamafactory.sh): LLaMA-Factory imports it at module level for
audio datasets only, and PyPI has no torchaudio for this torch. Importing works; using it says so."""


def __getattr__(name):
    raise ImportError(f"torchaudio.{name}: torchaudio is not installed in this environment (a stand-in for "
                      "LLaMA-Factory's import; audio datasets are not supported here)")
EOF
fi

"$PY" -c 'import llamafactory
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.extras.misc import check_dependencies
check_dependencies()
import torch, transformers, datasets
print("[llamafactory] import ok: llamafactory", llamafactory.__version__, "torch", torch.__version__,
      "transformers", transformers.__version__, "datasets", datasets.__version__)'
rm -f "$VENV"/.ready-*
touch "$STAMP"
echo "[llamafactory] done in $(( $(date +%s) - start )) s"
