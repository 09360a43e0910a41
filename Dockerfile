# Montage AI engine in a container: the laptop runs this; `cgpu serve` (Gemini) stays on the
# host and Colab does the GPU work through `cgpu run` with the host's login mounted.
FROM python:3.11-slim

# ffmpeg from the distribution (encoders), libomp for the local Real-ESRGAN (ncnn) upscaler,
# Node for the cgpu CLI (cloud upscaling from inside the container)
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libomp5 nodejs npm ca-certificates \
 && npm install -g cgpu \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /root/.npm

RUN useradd --create-home --uid 1000 montage
WORKDIR /opt/montage-ai
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY otio_adapters ./otio_adapters
COPY scripts ./scripts
RUN pip install --no-cache-dir ".[upscale]"

ENV MONTAGE_CACHE_DIR=/data/cache \
    NUMBA_CACHE_DIR=/data/numba \
    MEMORY_LIMIT_GB=8 \
    MAX_PARALLEL_JOBS=2 \
    CGPU_HOST=host.docker.internal \
    CGPU_PORT=8080
RUN mkdir -p /data/input /data/music /data/output /data/cache /data/numba \
 && python scripts/warm_numba.py \
 && chown -R montage:montage /data
USER montage
VOLUME ["/data/input", "/data/music", "/data/output", "/data/cache"]
ENTRYPOINT ["montage-ai"]
CMD ["--help"]
