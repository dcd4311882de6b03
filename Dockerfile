# Orva in one container. Build: docker build -t orva .   Run: see docs/OPERATIONS.md

# The dashboard: exact npm versions from the lockfile, bundled by esbuild into /web/dist.
FROM node:20-bookworm-slim AS dashboard
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/build.mjs ./
COPY web/src ./src
RUN node build.mjs

FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs python3.11 iproute2 nftables ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/orva
COPY pyproject.toml README.md hatch_build.py ./
COPY orvad ./orvad
COPY runtimes ./runtimes
COPY seccomp ./seccomp
COPY sandbox ./sandbox
COPY orva_cli ./orva_cli
COPY --from=dashboard /web/dist ./web/dist
RUN pip install --no-cache-dir . && rm -rf /opt/orva/build

ENV ORVA_HOST=0.0.0.0 \
    ORVA_PORT=8443 \
    ORVA_DATA_DIR=/var/lib/orva
VOLUME /var/lib/orva
EXPOSE 8443

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8443/api/v1/system/health || exit 1

ENTRYPOINT ["orvad", "serve"]
