# sluice serve in a container: a Kinesis Data Streams endpoint on port 4567, data in /data.
#
#   docker build -t sluice .
#   docker run --rm -p 4567:4567 --security-opt seccomp=unconfined -v sluice-data:/data sluice
#
# Sluice runs on io_uring, which Docker's default seccomp profile blocks (io_uring_setup is
# refused with EPERM; `sluice serve` then exits naming this fix). Run the container with
# `--security-opt seccomp=unconfined`, or with a seccomp profile that allows io_uring_setup,
# io_uring_enter and io_uring_register (Kubernetes: the pod's securityContext.seccompProfile).
# The host kernel needs io_uring too (Linux 5.8 or later, sysctl kernel.io_uring_disabled=0).
#
# Every `sluice serve` option can also be set with an environment variable (`-e SLUICE_...`;
# `docker run --rm sluice serve --help` lists them). For a throw-away endpoint in tests:
#   docker run --rm -p 4567:4567 --security-opt seccomp=unconfined sluice \
#       serve --listen 0.0.0.0:4567 --ephemeral
#
# Not built in this project's CI: the machines that test Sluice have no Docker daemon. The
# build is the README's (`cargo build --release --locked -p sluice`) on the Debian release the
# runtime image uses, so the binary's glibc matches.

FROM rust:1.92-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice \
    && cp target/release/sluice /usr/local/bin/sluice

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
COPY LICENSE /usr/share/doc/sluice/LICENSE
RUN useradd --system --no-create-home sluice && mkdir /data && chown sluice /data
USER sluice
VOLUME /data
EXPOSE 4567
ENTRYPOINT ["sluice"]
CMD ["serve", "--listen", "0.0.0.0:4567", "--dir", "/data"]
