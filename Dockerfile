# syntax=docker/dockerfile:1
# One image for both components; the Helm chart picks one with the container args:
#   node dist/operator/main.js      (Deployment)
#   node dist/node-agent/main.js    (DaemonSet)
# Build: docker build -t kubenova:dev .   (e2e/kind/run.sh builds and loads it into kind)
ARG NODE_IMAGE=node:20-bookworm-slim

# Compile the TypeScript with the full toolchain.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common ./common
COPY operator ./operator
COPY node-agent ./node-agent
RUN npm run build

# Run it with production dependencies and the compiled code only.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/common ./dist/common
COPY --from=build /src/dist/operator ./dist/operator
COPY --from=build /src/dist/node-agent ./dist/node-agent
# The image's "node" user, numeric so that runAsNonRoot can verify it.
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["dist/operator/main.js"]
