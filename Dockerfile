# syntax=docker/dockerfile:1
# One image for the gateway, the auth service and the Node example upstream:
#   docker build -t sessiongate .
#   docker run --rm sessiongate keys generate --alg EdDSA
#   docker run ... sessiongate gateway        (the default)
#   docker run ... sessiongate auth
# docker-compose.yml runs the whole demo stack from it.
ARG NODE_VERSION=20

# --- build: every dependency, TypeScript compiled to dist/ ---------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
# the context is trimmed by .dockerignore: no node_modules, dist, tests or secrets
COPY . .
RUN npm ci --no-audit --no-fund
RUN npm run build
# What the runtime needs, for every workspace of package.json (none is named here, so a new
# one needs no change): manifests apart from code, so that the runtime's dependency layer
# is rebuilt only when a manifest changes, not on every code change.
RUN set -eu; \
    mkdir -p /stage/manifests /stage/code; \
    cp package.json package-lock.json /stage/manifests/; \
    for ws in $(node -p "require('./package.json').workspaces.join(' ')"); do \
      mkdir -p "/stage/manifests/$ws" "/stage/code/$ws"; \
      cp "$ws/package.json" "/stage/manifests/$ws/"; \
      for dir in dist bin; do if [ -d "$ws/$dir" ]; then cp -R "$ws/$dir" "/stage/code/$ws/"; fi; done; \
    done; \
    find /stage/code -name '*.tsbuildinfo' -delete; \
    cp examples/node-upstream/server.mjs /stage/code/examples/node-upstream/; \
    mkdir -p /stage/code/examples/compose; \
    cp examples/compose/init-demo.sh /stage/code/examples/compose/

# --- runtime: production dependencies and compiled code only, as an unprivileged user ------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
WORKDIR /app
COPY --from=build /stage/manifests ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /stage/code ./
# where keys and users live in the compose demo (a named volume copies this ownership)
RUN mkdir -p /var/lib/sessiongate && chown node:node /var/lib/sessiongate
USER node
ENV HOST=0.0.0.0
# gateway 8080 (metrics 9091), auth service 4000 (metrics 9092), node example 4001
EXPOSE 8080 9091 4000 9092 4001
ENTRYPOINT ["node", "--no-memory-reducer", "gateway/bin/sessiongate.js"]
CMD ["gateway"]
