#!/bin/sh
# Installs the Debian packages engramd needs to build, test and run.
# As root it runs apt-get; otherwise it prints the one command to run.
set -eu

PACKAGES="build-essential pkg-config liblmdb-dev lmdb-utils libuv1-dev \
libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libxxhash-dev check \
libjansson-dev libsystemd-dev libmicrohttpd-dev liburing-dev fio redis-server libhiredis-dev gnuplot-nox python3 python3-numpy python3-protobuf python3-torch \
clang libclang-rt-14-dev haproxy rsync \
debhelper dpkg-dev fakeroot systemd man-db groff-base python3-venv python3-setuptools python3-pip"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# Node.js runs the Node client's tests (tests/node). Debian's nodejs and npm
# packages, unless node and npm are already there (NodeSource's nodejs
# package bundles npm and conflicts with Debian's).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "engramd: missing Debian packages; run as root:" >&2
	echo "  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "engramd: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
