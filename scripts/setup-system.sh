#!/usr/bin/env bash
# Installs the machine packages gridmap needs, from Debian's repositories, when missing:
# PostgreSQL + PostGIS (database), GDAL's ogr tools (tests, benchmarks), Chromium (page
# tests), Node.js/npm (the web page's scripts), wrk (benchmarks), Mosquitto (sensors),
# python3-venv; and starts Mosquitto on 127.0.0.1:1883 when nothing listens there.
# Not root or not Debian: prints one line saying what to install, and fails.
set -euo pipefail

need=()
have_postgis() {
  local share
  for share in /usr/share/postgresql/*/extension; do
    [ -f "$share/postgis.control" ] && return 0
  done
  return 1
}
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
have_postgis || need+=(postgresql-postgis)
command -v ogrinfo >/dev/null 2>&1 || need+=(gdal-bin)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # benchmarks
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)  # sensor readings over MQTT
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

start_broker() {
  # The sensor tests and `gridmap events listen` talk to an MQTT broker on 127.0.0.1:1883.
  if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    echo "gridmap setup: starting mosquitto on 127.0.0.1:1883" >&2
    mosquitto -d -p 1883 >/dev/null 2>&1 || mosquitto -d
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  start_broker
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "gridmap setup: missing system packages; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "gridmap setup: installing ${need[*]} from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
start_broker
