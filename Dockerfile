# syntax=docker/dockerfile:1
# rtpipeline: the radiotherapy DICOM node.
#   docker build -t rtpipeline .
#   docker run -d -p 11112:11112 -p 8080:8080 -v rtp-node:/data/node rtpipeline
# Build stage: dev dependencies and the TypeScript compiler; nothing of it reaches the runtime image
# but the compiled dist/ and the production node_modules.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Compilers only for the case where better-sqlite3 has no prebuilt binary for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are here; the native module is
# built explicitly below.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json ./
COPY src ./src
COPY jobs ./jobs
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
# tini: PID 1 that forwards SIGTERM to the node and reaps the external tools' exited children.
# dcm2niix: segmentation.input=dcm2niix and custom models. ca-certificates: TLS to destinations.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini dcm2niix ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Optional TotalSegmentator inside the image (GPU hosts): docker build --build-arg WITH_TOTALSEGMENTATOR=1
ARG WITH_TOTALSEGMENTATOR=0
RUN if [ "$WITH_TOTALSEGMENTATOR" = "1" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv \
      && python3 -m venv /opt/totalsegmentator \
      && /opt/totalsegmentator/bin/pip install --no-cache-dir TotalSegmentator \
      && ln -s /opt/totalsegmentator/bin/TotalSegmentator /usr/local/bin/TotalSegmentator \
      && rm -rf /var/lib/apt/lists/*; \
    fi
# A dedicated unprivileged user with a fixed uid, so host folders can be chowned to it (10001).
RUN groupadd --system --gid 10001 rtpipeline \
 && useradd --system --uid 10001 --gid rtpipeline --home-dir /home/rtpipeline --create-home --shell /usr/sbin/nologin rtpipeline \
 && mkdir -p /data/input /data/output /data/logs /data/node /home/rtpipeline/.totalsegmentator \
 && chown -R rtpipeline:rtpipeline /data /home/rtpipeline
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/jobs ./dist/jobs
# The web UI's static files (plain HTML/CSS/JS, served from the source folder).
COPY --from=build /app/src/http/ui ./src/http/ui
COPY config ./config
RUN chmod +x /app/dist/src/cli.js && ln -s /app/dist/src/cli.js /usr/local/bin/rtpipeline

# Tool timeouts (seconds): the same defaults as the original rtpipeline images; override with -e.
# Workers are not set: the node reads the container's cgroup cpu.max (docker --cpus).
ENV NODE_ENV=production \
    TOTALSEG_TIMEOUT=3600 \
    DCM2NIIX_TIMEOUT=300 \
    RTPIPELINE_RADIOMICS_TASK_TIMEOUT=600 \
    RTPIPELINE_CONFIGFILE=/app/config/config.container.yaml \
    RTPIPELINE_LOG_FORMAT=json \
    TOTALSEG_HOME_DIR=/home/rtpipeline/.totalsegmentator \
    HOME=/home/rtpipeline

USER rtpipeline
VOLUME ["/data/input", "/data/output", "/data/logs", "/data/node"]
# 2762: DICOM TLS, when node.tls is set (the plain listener stays on 11112 unless node.tls.plain: false).
EXPOSE 11112 2762 8080

# Node itself does the probe (the slim image has no curl). 503 (shutting down, disk nearly full) is unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.RTPIPELINE_HTTP_PORT || 8080) + '/health').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["rtpipeline", "serve"]
