# The client container of docker/compose.yaml: Debian's kcat (librdkafka
# 2.0.2) and the shared libraries ldd lists for it, copied from the host by
# scripts/docker-build.sh into a FROM scratch image, so nothing is pulled.
FROM scratch
COPY . /
USER 1000:1000
ENTRYPOINT ["/usr/bin/kcat"]
