# trafficjam as a FROM-scratch image holding only the static binary.
# No registry is needed: build the binary first, then the image.
#
#   rustup target add x86_64-unknown-linux-musl
#   cargo build --release --target x86_64-unknown-linux-musl -p trafficjam-cli
#   docker build -t trafficjam .
#
# Run it next to your proxy (see docker-compose.yml):
#   docker run -d --name trafficjam --network host --cap-add NET_ADMIN \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -e NETWORK=traefik_public -e WHITELIST_FILTER=ancestor=traefik:latest trafficjam
FROM scratch
COPY target/x86_64-unknown-linux-musl/release/trafficjam /trafficjam
ENTRYPOINT ["/trafficjam"]
CMD ["run"]
