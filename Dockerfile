# The emitter command line in a container: `docker run --rm IMAGE run workflows/ecommerce.yaml ...`.
#
#   docker build -t emitter:local .
#   docker run --rm emitter:local run workflows/ecommerce.yaml --speed max --sessions 100 --sink stdout
#
# The example workflows are in the image's working directory (/app/workflows); mount your own:
#   docker run --rm -v "$PWD/my.yaml:/app/my.yaml:ro" emitter:local run my.yaml ...
#
# Keep the build context small: .venv/, .local/ (the local Kafka's jars and data), .git/ and caches do
# not belong in it (a .dockerignore listing them makes `docker build` much faster).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /app

# The package (pyproject.toml names a README.md; setuptools only warns when it is absent).
COPY pyproject.toml ./
COPY emitter ./emitter
RUN pip install . && rm -rf build *.egg-info

COPY workflows ./workflows

# Smoke test at build time: the console script works and a short run encodes events (this also
# fills the numba cache, so containers do not compile the encoder at start).
RUN emitter run workflows/ecommerce.yaml --speed max --sessions 20 --seed 1 --progress off --sink null

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin emitter \
    && mkdir -p /tmp/numba-cache && chown -R emitter /tmp/numba-cache
USER emitter

ENTRYPOINT ["emitter"]
CMD ["--help"]
