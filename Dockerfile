# syntax=docker/dockerfile:1
# Multi-stage build: compile with the locked dependency set, ship a small non-root image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
RUN cargo build --release --locked --bin alert-router

FROM debian:bookworm-slim
# ca-certificates: TLS to Slack, webhooks and SMTP servers verifies against the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --home-dir /data alert-router \
 && mkdir -p /data /etc/alert-router \
 && chown 10001:10001 /data
COPY --from=build /src/target/release/alert-router /usr/local/bin/alert-router
COPY config/docker.yml /etc/alert-router/alert-router.yml
USER 10001:10001
VOLUME ["/data"]
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/alert-router"]
CMD ["serve", "--config", "/etc/alert-router/alert-router.yml"]
