# SPDX-License-Identifier: Apache-2.0
# turnstile's two services (and its admin tool) on Debian 12, the same
# libraries the local stack uses.
FROM debian:bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
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
COPY bench bench
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTS_TESTS=OFF \
    && cmake --build /build

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libpq5 libavro23 libmicrohttpd12 libjansson4 libuuid1 libssl3 libcurl4 curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/turnstile-api /build/turnstile-worker /build/turnstile-admin /usr/local/bin/
USER nobody
