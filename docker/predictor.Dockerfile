# Slim, non-root predictor: KServe model server (`python -m model_server`) on port 8080.
# Build with docker/build.sh (context = the repository's tracked files).
# BASE_IMAGE must provide CPython 3.11 as `python` with the venv module:
#   python:3.11-slim-bookworm (public), or the local base docker/build.sh makes with debootstrap.
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
# Only locked, third-party dependencies of the `server` extra (no dev tools, no jobs stack).
RUN /opt/uv/bin/uv export --frozen --no-dev --extra server --no-emit-project -o requirements.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r requirements.txt \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +
# Serving code only: the shared package and the predictor (never training/ or jobs/).
COPY fraudcore /app/fraudcore
COPY model_server /app/model_server
RUN /opt/venv/bin/python -m compileall -q /app

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="fraud-detection predictor" \
      org.opencontainers.image.description="KServe v2 fraud-scoring model server" \
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
WORKDIR /app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "model_server"]
CMD ["--model_name", "fraud-detector", "--http_port", "8080"]
