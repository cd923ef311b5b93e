# One image for every bullpen app (api, worker, exporter, cli): they share one dependency tree
# and one build, so one image keeps pulls, caches and versions in step. The command picks the app.
# Node 24 (LTS): Node 20 reached its end of life on 2026-04-30. bullpen still runs on Node 20
# ("engines"), and its test suite runs on both.
# syntax=docker/dockerfile:1

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY packages/core/package.json packages/core/
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY apps/exporter/package.json apps/exporter/
COPY apps/cli/package.json apps/cli/
RUN npm ci --no-audit --no-fund
COPY packages packages
COPY apps apps
COPY config config
RUN npm run build

FROM node:24-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/core/package.json packages/core/
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY apps/exporter/package.json apps/exporter/
COPY apps/cli/package.json apps/cli/
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=prod-deps /app/node_modules node_modules
COPY --from=build /app/package.json ./
COPY --from=build /app/config config
COPY --from=build /app/packages/core/package.json packages/core/
COPY --from=build /app/packages/core/dist packages/core/dist
COPY --from=build /app/packages/core/lua packages/core/lua
COPY --from=build /app/apps/api/package.json apps/api/
COPY --from=build /app/apps/api/dist apps/api/dist
COPY --from=build /app/apps/worker/package.json apps/worker/
COPY --from=build /app/apps/worker/dist apps/worker/dist
COPY --from=build /app/apps/exporter/package.json apps/exporter/
COPY --from=build /app/apps/exporter/dist apps/exporter/dist
COPY --from=build /app/apps/cli/package.json apps/cli/
COPY --from=build /app/apps/cli/dist apps/cli/dist
COPY --from=build /app/apps/cli/bin apps/cli/bin
COPY docker/entrypoint.sh docker/healthcheck.js /usr/local/bin/
# `bullpen` on PATH: the package's bin, as npm links it outside the image.
RUN chmod 0755 /usr/local/bin/entrypoint.sh && ln -s /app/apps/cli/bin/bullpen.js /usr/local/bin/bullpen \
  && chmod 0755 /app/apps/cli/bin/bullpen.js \
  && mkdir -p /var/lib/bullpen/events && chown -R node:node /var/lib/bullpen
# Where event logs go (EVENT_LOG_FILE): a volume mounted here starts out owned by the app's user.
USER node
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["api"]
# Each app answers /healthz on its own port; the check asks the one this container runs.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "/usr/local/bin/healthcheck.js"]
