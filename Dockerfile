# Dockerfile — soak's images, in stages (Debian 12 "bookworm" throughout):
#   runtime (the default, last stage): a slim Debian with soak on PATH (/usr/bin/soak, built with
#            --static-swift-stdlib) and the runtime packages of deploy/runtime-packages.txt.
#   test:    the toolchain, the debug build and its tests, for docker-compose.yaml's `soak-tests`.
#
#   docker build -t soak .                      # the runtime image
#   docker build --target test -t soak-test .   # the test image (docker compose run --rm soak-tests)
#   docker run --rm soak --help
# Other toolchain or base: --build-arg SWIFT_IMAGE=swift:6.2-bookworm, RUNTIME_IMAGE=debian:12-slim.
#
# The runtime image runs as the unprivileged user `soak` (uid 10001), which is enough for
# `soak download`, `soak prewarm` on a cache of its own and `soak status`. `soak mount` needs
# mount(2): run that container as root (`--user 0`) with `--device /dev/fuse --cap-add SYS_ADMIN
# --security-opt apparmor=unconfined` (Docker's default AppArmor profile forbids mount(2) even
# with SYS_ADMIN), or privileged in Kubernetes (see deploy/kubernetes/README.md). A prewarm or
# status that talks to a root mount through its cache's control socket (mode 0600) runs as root too.
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- deps: the toolchain plus the C libraries soak links against, dependencies resolved
FROM ${SWIFT_IMAGE} AS deps
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get -q update \
 && apt-get -q install -y --no-install-recommends \
      libfuse3-dev libcurl4-openssl-dev libsqlite3-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve the package dependencies first so that this layer is cached across source changes.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
# SwiftPM checks every target's directory, the test targets' included.
COPY Tests ./Tests

# ---- build: the release binary, Swift runtime and Foundation linked in, stripped (install -s)
FROM deps AS build
# The commit `soak --version` prints: the context has no .git, so pass it in
# (--build-arg SOAK_COMMIT=$(git rev-parse --short=12 HEAD)); without it, "commit unknown".
ARG SOAK_COMMIT=""
COPY scripts/gen-buildinfo ./scripts/gen-buildinfo
RUN SOAK_COMMIT="${SOAK_COMMIT}" scripts/gen-buildinfo \
 && swift build -c release --static-swift-stdlib --product soak \
 && install -D -s -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/soak" /out/soak

# ---- test: what docker-compose.yaml's `soak-tests` runs (swift test against its `seaweedfs`)
FROM deps AS test
# fuse3 for fusermount3, curl and python3-boto3 for the scripts and the tests' fixture helper
# (scripts/s3fixture.py), procps for the tests' process checks.
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get -q update \
 && apt-get -q install -y --no-install-recommends \
      fuse3 curl ca-certificates procps python3 python3-boto3 \
 && rm -rf /var/lib/apt/lists/*
COPY scripts ./scripts
RUN swift build && swift build --build-tests
ENV SOAK_BIN=/src/.build/debug/soak \
    AWS_REGION=us-east-1
CMD ["swift", "test"]

# ---- runtime (default): slim Debian, soak on PATH
FROM ${RUNTIME_IMAGE} AS runtime
# One list of runtime packages, shared with the release binary's chroot check (deploy/README.md).
COPY deploy/runtime-packages.txt /tmp/runtime-packages.txt
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get -q update \
 && xargs -a /tmp/runtime-packages.txt apt-get -q install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --user-group --home-dir /home/soak --create-home --shell /usr/sbin/nologin soak \
 && install -d -m 0700 -o soak -g soak /var/cache/soak
COPY --from=build /out/soak /usr/bin/soak
# mount(8) runs /sbin/mount.fuse.soak for `mount -t fuse.soak` (README, "fstab")
RUN ln -s /usr/bin/soak /sbin/mount.fuse.soak
# The default cache directory: $CACHE_DIRECTORY comes before $HOME/.cache/soak (README, "Prewarm").
ENV CACHE_DIRECTORY=/var/cache/soak
# Numeric, so that Kubernetes' runAsNonRoot can check it
USER 10001:10001
WORKDIR /home/soak
ENTRYPOINT ["soak"]
CMD ["--help"]
