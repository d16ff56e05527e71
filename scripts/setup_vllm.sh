#!/usr/bin/env bash
# vLLM lives in its own virtualenv (.venv-vllm): it pins its own torch/transformers. Filled in by the backends work.
set -euo pipefail
exit 0
