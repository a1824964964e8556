# The worker image: CPU by default; build with --build-arg EXTRAS=gpu for onnxruntime-gpu.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY agents ./agents
ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}"
RUN useradd --create-home --uid 10001 streamer
USER streamer
ENV STREAMER_DATA_DIR=/home/streamer/data STREAMER_CACHE_DIR=/home/streamer/cache
EXPOSE 6066
ENTRYPOINT ["streamer"]
CMD ["worker"]
