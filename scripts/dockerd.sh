#!/usr/bin/env bash
# Start a Docker engine for the image tests when none answers, and stop only the one this script started.
#   scripts/dockerd.sh start   # prints nothing when an engine already answers
#   scripts/dockerd.sh stop    # stops the engine recorded in build/images/dockerd.pid, by PID
set -euo pipefail
cd "$(dirname "$0")/.."
state="${CRACKSEG_IMAGE_CACHE:-build/images}"
pidfile="$state/dockerd.pid"
docker="${DOCKER:-docker}"
mkdir -p "$state"

case "${1:-}" in
  start)
    if "$docker" info >/dev/null 2>&1; then
      exit 0
    fi
    command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install -y docker.io)" >&2; exit 1; }
    nohup dockerd >"$state/dockerd.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do
      "$docker" info >/dev/null 2>&1 && { echo "started dockerd (pid $(cat "$pidfile"))"; exit 0; }
      sleep 1
    done
    echo "dockerd did not come up; see $state/dockerd.log" >&2
    exit 1
    ;;
  stop)
    [[ -s "$pidfile" ]] || exit 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      echo "stopped dockerd (pid $pid)"
    fi
    rm -f "$pidfile"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
