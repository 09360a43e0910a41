# Montage AI engine in a container: the laptop runs this; `cgpu serve` (Gemini) stays on the
# host and Colab does the GPU work through `cgpu run` with the host's login mounted.
#   docker build -t montage-ai .                          engine only (ffmpeg from the wheel)
#   docker build --build-arg WITH_CGPU=1 -t montage-ai .  plus Node and the cgpu CLI (cloud upscaling)
# Builds on linux/amd64 and linux/arm64; the local Real-ESRGAN upscaler is installed where it
# has a wheel (CPython 3.11/3.12 on amd64), elsewhere upscaling falls back to Lanczos and says so.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY otio_adapters ./otio_adapters
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir ".[upscale]"
COPY scripts/warm_numba.py ./scripts/warm_numba.py
# librosa's numba kernels compiled once, readable and writable by any user id
RUN NUMBA_CACHE_DIR=/opt/numba /opt/venv/bin/python scripts/warm_numba.py && chmod -R a+rwX /opt/numba

FROM ${PYTHON_IMAGE}
ARG WITH_CGPU=0
# libomp5 and libvulkan1: the ncnn upscaler's system libraries (amd64, where it has a wheel).
# Node and cgpu only when asked for; a failing npm never fails the image (doctor says it is missing).
RUN set -e; apt-get update; \
    libs="ca-certificates"; [ "$(dpkg --print-architecture)" = amd64 ] && libs="$libs libomp5 libvulkan1"; \
    apt-get install -y --no-install-recommends $libs; \
    if [ "$WITH_CGPU" = 1 ]; then \
      apt-get install -y --no-install-recommends nodejs npm \
      && (npm install -g cgpu || echo "montage-ai: npm could not install cgpu; cloud upscaling is unavailable" >&2); \
    fi; \
    apt-get clean; rm -rf /var/lib/apt/lists/* /root/.npm
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/numba /opt/numba
COPY scripts/docker-entrypoint.sh /usr/local/bin/montage-ai-entrypoint
# Any host user id runs this image (`--user UID:GID`): the cache volume and the output folder are
# writable by all, each user id gets its own cache folder inside the volume (entrypoint).
RUN useradd --create-home --uid 1000 montage \
 && mkdir -p /data/input /data/music /data/output /data/cache /home/montage/.config/cgpu \
 && chmod 1777 /data/output /data/cache \
 && chmod 0755 /usr/local/bin/montage-ai-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    NUMBA_CACHE_DIR=/opt/numba \
    CGPU_CONFIG_DIR=/home/montage/.config/cgpu \
    MEMORY_LIMIT_GB=8 \
    MAX_PARALLEL_JOBS=2 \
    CGPU_HOST=host.docker.internal \
    CGPU_PORT=8080
USER montage
VOLUME ["/data/input", "/data/music", "/data/output", "/data/cache"]
ENTRYPOINT ["montage-ai-entrypoint"]
CMD ["--help"]
