# scheduler-reconciler as a long-running controller: reconcile --watch --apply on /config/scheduler.yaml.
# Build: docker build -t scheduler-reconciler .   Run: see deploy/kubernetes/ and the README.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY localdb ./localdb
# Runtime dependencies only (no test extra); psycopg's binary wheel brings its own libpq.
RUN pip install . \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin reconciler

USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["reconcile"]
CMD ["--watch", "--apply", "-f", "/config/scheduler.yaml", "--http-host", "0.0.0.0", "--http-port", "8080"]
