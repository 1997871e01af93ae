# Tessera as a container: a release build on Debian, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
# curl is for the health check (docker-compose.yml asks /readyz).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/tessera tessera \
    && mkdir -p /var/lib/tessera && chown tessera /var/lib/tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
USER tessera
ENV TESSERA__METADATA_DIR=/metadata
# What `docker stop` sends: Tessera stops accepting, lets requests in flight finish for up
# to server.shutdown_grace_secs (20) and exits 0. Docker kills after 10 s unless given
# more (`docker stop -t 25`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
