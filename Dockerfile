# SPDX-License-Identifier: Apache-2.0
# turnstile's two services and its admin tool on Debian 12, the libraries
# the local stack uses. Two stages: the build (compiler and -dev packages)
# and the runtime image (only the shared libraries the binaries load, and
# curl for healthchecks), running as a user of its own.
#   docker build -t turnstile:dev .      (scripts/image does it, and more)
# The binaries carry their Avro schemas and SQL migrations, so nothing but
# them is copied from the build. The package lists follow scripts/stack's.
FROM debian:bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev cmake ninja-build pkg-config \
      librdkafka-dev libpq-dev libavro-dev libmicrohttpd-dev libjansson-dev uuid-dev libssl-dev \
      libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY producer-api producer-api
COPY worker worker
COPY tools tools
COPY schemas schemas
COPY sql sql
# CMakeLists.txt declares the benchmark's tools too: their sources must be
# there even though only the three binaries below are built.
COPY bench bench
# No .git is copied: turnstile_build_info says commit="unknown" unless the
# build names it (docker build --build-arg TS_COMMIT=$(git rev-parse --short=12 HEAD)).
ARG TS_COMMIT=
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTS_TESTS=OFF "-DTS_COMMIT=${TS_COMMIT}" \
    && cmake --build /build --target turnstile-api turnstile-worker turnstile-admin

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libpq5 libavro23 libmicrohttpd12 libjansson4 libuuid1 libssl3 libcurl4 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin turnstile
COPY --from=build /build/turnstile-api /build/turnstile-worker /build/turnstile-admin /usr/local/bin/
USER turnstile
# The API's port (TS_HTTP_PORT) and the worker's /healthz and /metrics
# (TS_WORKER_HTTP_PORT). Inside a container the API must listen beyond
# loopback (TS_HTTP_BIND=0.0.0.0), which is protected mode: see the README.
EXPOSE 4000 4001
CMD ["turnstile-api", "--help"]
