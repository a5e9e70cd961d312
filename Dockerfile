# Dockerfile — build soak and its tests in a Swift toolchain image (Debian 12 "bookworm").
# Used by docker-compose.yaml's `soak-tests` service:
#   docker compose run --rm soak-tests               # swift test against the `seaweedfs` service
#   docker compose run --rm soak-tests swift test --filter IntegrationTests
# Build alone:  docker build -t soak .   (override the toolchain: --build-arg SWIFT_IMAGE=swift:6.2-bookworm)
ARG SWIFT_IMAGE=swift:6.1-bookworm
FROM ${SWIFT_IMAGE}

# C libraries soak links against (FUSE 3, libcurl, SQLite), tools for the scripts, and boto3 for the
# integration tests' fixture helper (scripts/s3fixture.py).
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get -q update \
 && apt-get -q install -y --no-install-recommends \
      libfuse3-dev fuse3 libcurl4-openssl-dev libsqlite3-dev pkg-config curl ca-certificates \
      python3 python3-boto3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Resolve the package dependencies first so that this layer is cached across source changes.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY scripts ./scripts
RUN swift build && swift build --build-tests

ENV SOAK_BIN=/src/.build/debug/soak \
    AWS_REGION=us-east-1
CMD ["swift", "test"]
