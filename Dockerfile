# The image that helm/mimamori runs: `mimamori` as the entrypoint, `worker` by default
# (`migrate`, `query`, `registry load`, ... are the other commands of the same image).
#
#   docker build -t REGISTRY/mimamori:0.1.0 .
#
# NOT BUILT OR RUN IN THIS REPOSITORY'S CI: the development machines have no Docker engine. What
# is checked there instead (tests/integration/test_wheel_install.py): the same install, i.e. a wheel
# of these same files installed without extras into a fresh environment, then `replay` with a
# registry, `registry load`, `migrate` and `query` from a directory outside the source tree.
#
# The install is a regular one, as users install: the wheel puts sql/, schemas/ and templates/
# under /usr/local/share/mimamori, where pipeline/resources.py finds them, and the source tree is
# removed. The container writes only to its working directory /var/lib/mimamori (Faust's data
# directory; the embedded chdb store and a maildir if configured) and /tmp: the chart mounts both,
# so it can run with a read-only root file system as user 10001.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The Japanese font of the monthly report's charts (scripts/fonts.sh on a development machine).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-ipaexfont-gothic \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /src/
COPY pipeline /src/pipeline
COPY agents /src/agents
COPY gateway /src/gateway
COPY portal /src/portal
COPY mimamori /src/mimamori
COPY sql /src/sql
COPY schemas /src/schemas
COPY templates /src/templates
RUN pip install /src \
    && rm -rf /src \
    && mimamori --help > /dev/null \
    && python -c "import pipeline.resources as r; assert (r.SQL / 'migrations').is_dir() and (r.TEMPLATES / 'ja').is_dir(), r.ROOT"

RUN groupadd --gid 10001 mimamori \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mimamori \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/mimamori

USER 10001:10001
WORKDIR /var/lib/mimamori
ENV HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
EXPOSE 6066
ENTRYPOINT ["mimamori"]
CMD ["worker"]
