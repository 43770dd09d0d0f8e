# syntax=docker/dockerfile:1.7
#
# The image of every service; the build argument SERVICE names which (auth, users or orgs):
#   docker build --build-arg SERVICE=auth -t identity-platform/auth:0.1.0 .
#   docker build --build-arg SERVICE=auth --target dev -t identity-platform/auth:dev .  (Tilt)
#
# The runtime CMD names no app: the shared gunicorn config serves `$SERVICE.app:create_app()`,
# so the CMD stays in exec form and gunicorn is PID 1 (it gets the pod's SIGTERM).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------------------
# build: the locked dependencies in one cached layer, then the workspace members on top.
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN case "${SERVICE}" in auth|users|orgs) ;; *) echo "--build-arg SERVICE=auth|users|orgs" >&2; exit 1;; esac
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Only the lock and the workspace's pyproject files: this layer is rebuilt when a dependency
# changes, not when the code does. Every member's pyproject is needed for uv to see the
# workspace, even though only this service's dependencies are installed.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/testing/pyproject.toml libs/testing/
COPY services/auth/pyproject.toml services/auth/
COPY services/users/pyproject.toml services/users/
COPY services/orgs/pyproject.toml services/orgs/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "${SERVICE}-service"

COPY libs/common/src libs/common/src
COPY services/${SERVICE}/src services/${SERVICE}/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${SERVICE}-service"

# ---------------------------------------------------------------------------------------------
# dev: for Tilt. Editable install so the sources Tilt syncs into /app are what runs, uv kept
# for the live_update `uv sync` step, and uvicorn --reload restarts on every synced change.
FROM build AS dev
ARG SERVICE
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package "${SERVICE}-service" \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp app \
    && chown -R 10001:10001 /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    UV_CACHE_DIR=/tmp/uv-cache \
    SERVICE=${SERVICE}
USER 10001:10001
EXPOSE 8000
# The shell only expands SERVICE; exec leaves uvicorn as PID 1.
CMD ["sh", "-c", "exec uvicorn --factory \"${SERVICE}.app:create_app\" --reload --reload-dir \"/app/services/${SERVICE}/src\" --reload-dir /app/libs/common/src --host 0.0.0.0 --port 8000"]

# ---------------------------------------------------------------------------------------------
# runtime (default target): the virtual environment and nothing else. The Python in the base
# image is the one the venv was built against. Runs as an unprivileged numeric user and
# writes only to /tmp and $PROMETHEUS_MULTIPROC_DIR, so readOnlyRootFilesystem works;
# `sleep` (coreutils) stays available for the pod's preStop hook.
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp app
COPY --from=build --chown=10001:10001 /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus \
    SERVICE=${SERVICE}
RUN install -d -o 10001 -g 10001 /run/prometheus
WORKDIR /app
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "-c", "python:platform_common.gunicorn_conf"]
