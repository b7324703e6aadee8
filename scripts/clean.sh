#!/usr/bin/env bash
# Remove what the test bed made in the Docker engine: test containers and test-host images.
set -uo pipefail
docker info >/dev/null 2>&1 || exit 0
docker ps -aq --filter label=swiftlinux.test | xargs -r docker rm -f >/dev/null
docker images -q 'swiftlinux-testhost' | xargs -r docker rmi -f >/dev/null
