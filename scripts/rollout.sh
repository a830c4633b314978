#!/bin/sh
# rollout.sh - ships a new version of one table to its replicas, one at a time.
#
#   scripts/rollout.sh --table NAME [--engram PATH] [--ssh CMD] [--wait SEC] VERSION_DIR REPLICAS
#
# REPLICAS is a file with one replica a line ('#' starts a comment):
#
#   HOST   LINK                      STAGING                    ADDR
#   local  /var/lib/engramd/layer1   /var/lib/engramd/versions  unix:/run/engramd/engramd.sock
#   gpu2   /var/lib/engramd/layer1   /var/lib/engramd/versions  unix:/run/engramd/engramd.sock
#
# HOST is "local" (this machine) or an ssh destination; LINK the table path
# that replica's engramd serves as NAME (--table NAME=LINK), a symlink to the
# version served; STAGING the directory on that host where versions are kept;
# ADDR that engramd's address as seen on HOST. PATH names the engram command
# on every host (default: engram); CMD the ssh command (default: ssh).
#
# For each replica in turn: rsync VERSION_DIR to STAGING/<its base name>,
# `engram table publish LINK` it there (the old target stays LINK.prev),
# reload NAME with a Reload request, and wait up to SEC seconds (default 60)
# until the daemon reports the version's generation. The daemon checks a
# version before serving it (--verify new, its default, recomputes every
# checksum): a version it refuses, or one it does not report in time, is
# rolled back on that replica (LINK points at the old version again, which
# the daemon never stopped serving) and on the replicas already done, and the
# rollout stops with status 1. A replica already at the version's generation
# is left alone, so a rollout that stopped can be run again.
set -eu

usage() {
	sed -n '3,3p' "$0" | sed 's/^# *//' >&2
	exit 2
}

TABLE="" ENGRAM=engram SSH=ssh WAIT=60
while [ $# -gt 0 ]; do
	case $1 in
	--table) TABLE=$2; shift 2 ;;
	--engram) ENGRAM=$2; shift 2 ;;
	--ssh) SSH=$2; shift 2 ;;
	--wait) WAIT=$2; shift 2 ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
if [ $# -ne 2 ] || [ -z "$TABLE" ]; then usage; fi
VERSION=${1%/} REPLICAS=$2
NAME=$(basename "$VERSION")

say() { echo "rollout: $*" >&2; }

# Single-quotes one word for a remote shell.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# Runs a command on host ("local": here).
on() {
	host=$1; shift
	if [ "$host" = local ]; then
		"$@"
		return
	fi
	cmd=""
	for w in "$@"; do cmd="$cmd $(quote "$w")"; done
	$SSH "$host" "$cmd" </dev/null
}

# The generation of TABLE the daemon at addr on host serves ("" if none).
served() {
	on "$1" "$ENGRAM" info --connect "$2" --timeout 5000 2>/dev/null |
		awk -v t="$TABLE:" '$1 == t { for (i = 2; i <= NF; i++)
			if (sub(/^generation=/, "", $i)) print $i }'
}

# Waits until the daemon at addr on host serves generation gen.
wait_for() {
	end=$(( $(date +%s) + WAIT ))
	while [ "$(served "$1" "$2")" != "$3" ]; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

gen=$("$ENGRAM" table info "$VERSION" | awk -F': *' '$1 == "generation" { print $2 }')
[ -n "$gen" ] || { say "cannot read the generation of $VERSION"; exit 1; }
say "$TABLE: rolling out $VERSION (generation $gen)"

done_list=""  # replicas switched so far: "host|link|addr|old generation" lines

# Puts the previous version back on one replica and waits until it serves it.
undo() { # host link addr old
	say "$1:$2: rolling $TABLE back to generation $4"
	on "$1" "$ENGRAM" table rollback "$2" >&2 || return 1
	on "$1" "$ENGRAM" reload --connect "$3" --table "$TABLE" >&2 || return 1
	wait_for "$1" "$3" "$4" || { say "$1:$2: does not serve generation $4 after ${WAIT}s"; return 1; }
}

fail() { # host link addr old published why
	say "$1:$2: $6; stopping"
	status=0
	if [ "$5" = yes ]; then
		undo "$1" "$2" "$3" "$4" || status=1
	fi
	printf '%s' "$done_list" | while IFS='|' read -r h l a o; do
		[ -n "$h" ] && { undo "$h" "$l" "$a" "$o" || exit 1; }
	done || status=1
	if [ $status -eq 0 ]; then
		say "every replica serves the version it served before"
	else
		say "rollback incomplete: check the replicas above"
	fi
	exit 1
}

[ -r "$REPLICAS" ] || { say "cannot read $REPLICAS"; exit 2; }
while read -r host link staging addr rest <&3; do
	case $host in ''|'#'*) continue ;; esac
	if [ -z "$addr" ] || [ -n "$rest" ]; then
		say "bad line in $REPLICAS: $host $link $staging $addr $rest"
		exit 2
	fi
	old=$(served "$host" "$addr")
	[ -n "$old" ] || fail "$host" "$link" "$addr" "" no "the daemon at $addr serves no table '$TABLE'"
	if [ "$old" = "$gen" ]; then
		say "$host:$link: already at generation $gen"
		continue
	fi
	dest="$staging/$NAME"
	say "$host:$link: shipping to $dest"
	on "$host" mkdir -p "$staging"
	if [ "$host" = local ]; then
		rsync -a --delete --exclude lock.mdb "$VERSION/" "$dest/"
	else
		rsync -a --delete --exclude lock.mdb -e "$SSH" "$VERSION/" "$host:$dest/" </dev/null
	fi ||
		fail "$host" "$link" "$addr" "$old" no "rsync to $dest failed"
	on "$host" "$ENGRAM" table publish "$link" "$dest" >&2 ||
		fail "$host" "$link" "$addr" "$old" no "publish refused $dest"
	on "$host" "$ENGRAM" reload --connect "$addr" --table "$TABLE" >&2 ||
		fail "$host" "$link" "$addr" "$old" yes "the daemon refused generation $gen"
	wait_for "$host" "$addr" "$gen" ||
		fail "$host" "$link" "$addr" "$old" yes "the daemon does not serve generation $gen after ${WAIT}s"
	say "$host:$link: serves generation $gen (was $old)"
	done_list="$done_list$host|$link|$addr|$old
"
done 3< "$REPLICAS"
say "$TABLE: every replica serves generation $gen"
