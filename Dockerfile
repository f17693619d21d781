# refinebot in a container: `refinebot serve` (Slack app, scheduler, /healthz) as a non-root user.
#
#   docker build -t refinebot .
#   docker run -d --name refinebot --env-file refinebot.env \
#     -v $PWD/refinebot.toml:/etc/refinebot/refinebot.toml:ro -v refinebot-data:/var/lib/refinebot \
#     -p 3000:3000 refinebot
#
# The config is mounted read-only at /etc/refinebot/refinebot.toml (REFINEBOT_CONFIG); secrets come from
# the environment (--env-file), never from the image. With SQLite, point database_url at the volume
# (database_url = "sqlite:////var/lib/refinebot/refinebot.db"); several replicas need PostgreSQL
# (REFINEBOT_DATABASE_URL=postgresql+psycopg://refinebot:PASSWORD@db/refinebot in the env file, with no
# database_url in the config; or a password-less database_url and PGPASSWORD).
#
# The optional semantic duplicate re-ranking pulls in torch: build with --build-arg SEMANTIC=1, which
# installs the CPU-only torch wheel from PyTorch's CPU index first (about 200 MB instead of several GB of
# CUDA wheels).
FROM python:3.11-slim

ARG SEMANTIC=0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REFINEBOT_CONFIG=/etc/refinebot/refinebot.toml \
    MPLCONFIGDIR=/var/lib/refinebot/.matplotlib

WORKDIR /src
COPY pyproject.toml README.md ./
COPY refinebot ./refinebot
COPY connectors ./connectors
COPY rules ./rules

# One layer: install, then drop the sources (the package is in site-packages). Versions are pinned by
# pyproject's ranges (and torch by the semantic extra's sentence-transformers), not here.
# hadolint ignore=DL3013
RUN if [ "$SEMANTIC" = "1" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" torch && pip install ".[postgres,semantic]"; \
    else \
        pip install ".[postgres]"; \
    fi \
    && rm -rf /src

RUN groupadd --system --gid 10001 refinebot \
    && useradd --system --uid 10001 --gid refinebot --home-dir /var/lib/refinebot --create-home \
       --shell /usr/sbin/nologin refinebot \
    && mkdir -p /etc/refinebot

# Numeric, so Kubernetes runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/refinebot
VOLUME ["/var/lib/refinebot"]

# [slack] port: POST /slack/events in http mode; GET /healthz in both modes.
EXPOSE 3000

# slim has no curl: the health check is Python's own urllib (a non-200 or no answer in 4 s fails it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status != 200)"]

# SIGTERM (docker stop) is a clean shutdown: exec form, so refinebot is PID 1 and gets the signal itself.
STOPSIGNAL SIGTERM
CMD ["refinebot", "serve"]
