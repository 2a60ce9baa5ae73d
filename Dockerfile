# The image that helm/mimamori runs: `mimamori` as the entrypoint, `worker` by default
# (`migrate`, `query`, `registry load`, ... are the other commands of the same image).
#
#   docker build -t REGISTRY/mimamori:0.1.0 .
#
# NOT BUILT OR RUN IN THIS REPOSITORY'S CI: the development machines have no Docker engine. What
# was checked there instead: the same install steps (editable install of this tree, then
# `mimamori --help` and a replay with the tree read-only and the working directory elsewhere).
#
# The install is editable on purpose: the package finds sql/, schemas/ and templates/ next to
# pipeline/ (pipeline/resources.py), so the tree stays at /app, owned by root and read-only. The
# container writes only to its working directory /var/lib/mimamori (Faust's data directory; the
# embedded chdb store and a maildir if configured) and /tmp: the chart mounts both, so it can run
# with a read-only root file system as user 10001.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The Japanese font of the monthly report's charts (scripts/fonts.sh on a development machine).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-ipaexfont-gothic \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY agents ./agents
COPY mimamori ./mimamori
COPY sql ./sql
COPY schemas ./schemas
COPY templates ./templates
RUN pip install -e /app \
    && python -m compileall -q /app/pipeline /app/agents /app/mimamori \
    && mimamori --help > /dev/null

RUN groupadd --gid 10001 mimamori \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mimamori \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/mimamori

USER 10001:10001
WORKDIR /var/lib/mimamori
ENV HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
EXPOSE 6066
ENTRYPOINT ["mimamori"]
CMD ["worker"]
