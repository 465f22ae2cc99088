# CPU image by default, installed exactly as `make install` does: torch from TORCH_SPEC, then every other package
# from requirements-lock.txt with its hashes checked, then the project itself without dependencies.
# CUDA: the CUDA wheel brings its own CUDA libraries, so the Python base serves; the host needs the NVIDIA driver and
# the container toolkit (docker run --gpus all ...):
#   docker build --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" .
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_SPEC="torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu"
RUN apt-get update && apt-get install -y --no-install-recommends make git && rm -rf /var/lib/apt/lists/*
WORKDIR /workspace
COPY . .
RUN python -m pip install --no-cache-dir ${TORCH_SPEC} \
 && python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements-lock.txt \
 && python -m pip install --no-cache-dir --no-deps -e . \
 && python -m pip check
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--no-browser", "--allow-root", "--notebook-dir=nbs"]
