# scheduler-reconciler as a long-running controller: reconcile --watch --apply on /config/scheduler.yaml.
# Build: docker build -t scheduler-reconciler .   Run: see deploy/kubernetes/ and the README.
# The image installs exactly the versions and hashes in requirements.lock (regenerate: scripts/lock.sh),
# then the reconciler's own wheel without dependencies: the image that was tested is the image that ships.

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.lock ./
COPY --from=wheel /dist/ /tmp/dist/
# psycopg's binary wheel brings its own libpq; no compiler, no test tooling, no localdb.
RUN pip install --require-hashes --no-deps -r requirements.lock \
 && pip install --no-deps /tmp/dist/*.whl \
 && pip check \
 && rm -rf /tmp/dist \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin reconciler

USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["reconcile"]
CMD ["--watch", "--apply", "-f", "/config/scheduler.yaml", "--http-host", "0.0.0.0", "--http-port", "8080"]
