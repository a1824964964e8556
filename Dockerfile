# The worker image: CPU by default; --build-arg EXTRAS=train (the compose file's worker)
# adds torch for the first run's model build, EXTRAS=train,gpu onnxruntime-gpu too.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY agents ./agents
# EXTRAS: e.g. train (torch, to build the model bundle on the first run), gpu; the
# compose file builds the worker with train. TORCH_INDEX_URL: an extra index for torch,
# e.g. https://download.pytorch.org/whl/cpu for CPU-only wheels.
ARG EXTRAS=""
ARG TORCH_INDEX_URL=""
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".${EXTRAS:+[$EXTRAS]}"
# The volumes mount on these folders: made here, they are the streamer user's (a named
# volume takes the ownership of the folder it first mounts on).
RUN useradd --create-home --uid 10001 streamer \
 && install -d -o streamer -g streamer /home/streamer/cache /home/streamer/data
USER streamer
ENV STREAMER_DATA_DIR=/home/streamer/data STREAMER_CACHE_DIR=/home/streamer/cache
EXPOSE 6066
ENTRYPOINT ["streamer"]
CMD ["worker"]
