# Jobs image: `fraud` CLI (train, drift, retrain, models, canary) and the MLflow server.
# Build with docker/build.sh (context = the repository's tracked files).
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.8

FROM ${BASE_IMAGE} AS build
ARG UV_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/build-ca.pem
# The build host's certificate authorities (docker/build.sh adds them to the context), for pip in
# this stage only: the final stage starts again from the base and never sees them.
COPY build-ca.pem /etc/build-ca.pem
RUN [ -s /etc/build-ca.pem ] || cp /etc/ssl/certs/ca-certificates.crt /etc/build-ca.pem \
 && python -m venv /opt/uv && /opt/uv/bin/pip install "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv export --frozen --no-dev --extra jobs --no-emit-project -o requirements.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r requirements.txt
COPY fraudcore fraudcore/
COPY training training/
COPY model_server model_server/
COPY jobs jobs/
COPY cli cli/
COPY README.md ./
# The console script `fraud` comes from the project wheel; the sources also live in /app, first on
# PYTHONPATH, so `skaffold dev` can sync changed *.py files into a running container.
RUN /opt/venv/bin/pip install --no-deps . \
 && mkdir /app && cp -r fraudcore training model_server jobs cli /app/ \
 && find /opt/venv /app -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="fraud-detection jobs" \
      org.opencontainers.image.description="Training, drift, retraining, canary tooling and MLflow server" \
      org.opencontainers.image.licenses="Apache-2.0"
# LightGBM's wheel links the system's OpenMP runtime, libgomp.so.1, which slim bases lack (the base
# docker/build.sh makes already has it).
RUN ldconfig -p | grep -q libgomp.so.1 \
 || { apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*; }
COPY --from=build /opt/venv /opt/venv
# APP_OWNER: root (code read-only for the server); docker/build.sh gives it to the server's user
# for `skaffold dev`, whose file sync writes into /app.
ARG APP_OWNER=0:0
COPY --from=build --chown=${APP_OWNER} /app /app
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT []
CMD ["fraud", "--help"]
