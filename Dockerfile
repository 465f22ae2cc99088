# CPU image by default; for CUDA: docker build --build-arg BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 \
#   --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124" .
# (a CUDA base needs python3.11 installed; the CPU base has it.)
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
RUN apt-get update && apt-get install -y --no-install-recommends make git && rm -rf /var/lib/apt/lists/*
WORKDIR /workspace
COPY . .
# the same pinned set as `make install`: torch first, then requirements-lock.txt
RUN python -m pip install --no-cache-dir ${TORCH_SPEC} \
 && python -m pip install --no-cache-dir -c requirements-lock.txt -e ".[dev]"
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--no-browser", "--allow-root", "--notebook-dir=nbs"]
