#!/usr/bin/env bash
# A local weir cluster on this machine: one JobManager and two TaskManagers as
# separate processes on loopback, on the embedded defaults. Logs go to
# ./data/logs, process ids to ./data/run.
#
#   deploy/local/cluster.sh start|stop|restart|status
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${WEIR_DATA:-./data}
TASKMANAGERS=${WEIR_TASKMANAGERS:-2}
export WEIR_JOBMANAGER=${WEIR_JOBMANAGER:-127.0.0.1:6123}
mkdir -p "$DATA/logs" "$DATA/run"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemon() { # name binary args...
	local name=$1; shift
	if alive "$DATA/run/$name.pid"; then
		echo "$name is already running (pid $(cat "$DATA/run/$name.pid"))"
		return
	fi
	"$@" >"$DATA/logs/$name.log" 2>&1 &
	echo $! >"$DATA/run/$name.pid"
	echo "started $name (pid $!, log $DATA/logs/$name.log)"
}

wait_for_taskmanagers() {
	local want=$1
	for _ in $(seq 1 100); do
		n=$(bin/weir taskmanagers -o json 2>/dev/null | grep -o '"id"' | wc -l || true)
		if [ "$n" -ge "$want" ]; then
			echo "cluster up: JobManager at $WEIR_JOBMANAGER, $n TaskManagers registered"
			return 0
		fi
		sleep 0.1
	done
	echo "the cluster did not come up within 10s; see $DATA/logs/" >&2
	tail -n 20 "$DATA"/logs/*.log >&2 || true
	exit 1
}

start() {
	start_daemon jobmanager bin/jobmanager
	for i in $(seq 1 "$TASKMANAGERS"); do
		start_daemon "taskmanager-$i" bin/taskmanager
	done
	wait_for_taskmanagers "$TASKMANAGERS"
}

stop() {
	for pidfile in "$DATA"/run/*.pid; do
		[ -e "$pidfile" ] || continue
		name=$(basename "$pidfile" .pid)
		if alive "$pidfile"; then
			pid=$(cat "$pidfile")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
			echo "stopped $name"
		fi
		rm -f "$pidfile"
	done
}

status() {
	for pidfile in "$DATA"/run/*.pid; do
		[ -e "$pidfile" ] || { echo "no cluster running"; return; }
		name=$(basename "$pidfile" .pid)
		if alive "$pidfile"; then echo "$name running (pid $(cat "$pidfile"))"; else echo "$name not running"; fi
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart) stop; start ;;
status) status ;;
*) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
