# EasyDistill Studio for a GPU demo box. Not built in CI (no GPU, no registry for base images there).
#   docker build -t easydistill-studio .
#   docker run --gpus all -p 7860:7860 -e EDS_AUTH=demo:change-me -v $PWD/workspace:/app/workspace easydistill-studio
# The studio and vLLM live in separate virtualenvs: vLLM pins its own torch/transformers.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    GRADIO_ANALYTICS_ENABLED=False EDS_WORKSPACE=/app/workspace
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git make gcc \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app

# Studio venv with a CUDA torch (the CPU pin in scripts/setup_venv.sh is for machines without CUDA).
RUN python3 -m venv .venv \
    && .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu128 \
    && .venv/bin/pip install -e . \
    && python3 -m venv .venv-vllm && .venv-vllm/bin/pip install vllm

EXPOSE 7860
# EDS_AUTH=USER:PASS is required: the studio refuses a public bind without a password.
CMD [".venv/bin/distill-studio", "--host", "0.0.0.0", "--port", "7860"]
