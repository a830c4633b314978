#!/bin/sh
# Tests the Debian package on this machine, as root, the way an operator
# uses it: make deb, apt-get install ./engramd_*.deb, the user, the state
# directory and the units exist, systemd-analyze verify and security pass on
# the installed units, a table built as the engramd user is named in the
# installed config, the installed unit's ExecStart serves it under
# systemd-socket-activate on /run/engramd/engramd.sock (systemd need not be
# PID 1: the tests never ask it to start anything), the installed engram
# reads a row, then dpkg -r and dpkg -P leave none of the package's files.
#
# It installs a system package: it refuses to run when engramd is already
# installed, /run/engramd or /var/lib/engramd exists or a process runs as
# user engramd (someone else's); a leftover engramd user without processes
# is deleted first, so that the package is seen creating it. A lock keeps
# two runs from overlapping.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "deb-test: needs root (installs a package)" >&2; exit 1; }
exec 9>/var/lock/engramd-deb-test.lock
flock -w 600 9 || { echo "deb-test: another run holds the lock" >&2; exit 1; }

fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
ok() { echo "deb-test: ok: $*"; }
installed() { dpkg-query -W -f='${Status}' engramd 2>/dev/null | grep -q "install ok installed"; }

installed && fail "package engramd is already installed here; not touching it"
[ -e /run/engramd ] && fail "/run/engramd exists (another engramd?); not touching it"
[ -e /var/lib/engramd ] && fail "/var/lib/engramd exists (someone's tables?); not touching it"
# the package must create the user: one left by an earlier run (Debian never
# removes system users) goes first, unless something runs as it
if getent passwd engramd > /dev/null; then
	pgrep -u engramd > /dev/null && fail "processes run as user engramd; not touching it"
	userdel engramd
	getent group engramd > /dev/null && groupdel engramd
fi

work=$(mktemp -d /tmp/engramd-deb-test.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	if installed; then dpkg -P engramd >/dev/null 2>&1 || true; fi
	rm -rf /run/engramd /var/lib/engramd/t "$work"
}
trap cleanup EXIT

make --no-print-directory deb > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "make deb"; }
version=$(cat VERSION)
deb=$(ls "engramd_${version}_"*.deb)
ok "built $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" > "$work/install.log" 2>&1 ||
	{ cat "$work/install.log"; fail "apt-get install ./$deb"; }
installed || fail "engramd not installed after apt-get install"
dpkg -L engramd | sort > "$work/files"
ok "installed ($(wc -l < "$work/files") paths)"

# the user, the state directory, the units, the config
getent passwd engramd > /dev/null || fail "no user engramd"
getent group engramd > /dev/null || fail "no group engramd"
[ "$(stat -c '%U:%G %a' /var/lib/engramd)" = "engramd:engramd 750" ] ||
	fail "/var/lib/engramd is $(stat -c '%U:%G %a' /var/lib/engramd)"
units=/lib/systemd/system
for u in engramd.service engramd.socket; do
	[ -f "$units/$u" ] || fail "no $units/$u"
done
[ -L /etc/systemd/system/sockets.target.wants/engramd.socket ] || fail "engramd.socket not enabled"
conf=/etc/engramd/engramd.conf
[ -f "$conf" ] || fail "no $conf"
grep -q "^/etc/engramd/engramd.conf$" /var/lib/dpkg/info/engramd.conffiles || fail "$conf is not a conffile"
[ "$(engramd --version | cut -d' ' -f2)" = "$version" ] || fail "engramd --version"
[ "$(engram --version)" = "engram $version" ] || fail "engram --version"
MANWIDTH=80 man --warnings engramd > /dev/null 2> "$work/man" && [ ! -s "$work/man" ] ||
	{ cat "$work/man"; fail "man engramd"; }
ok "user, group, /var/lib/engramd, units (socket enabled), conffile, versions, man page"

systemd-analyze verify "$units/engramd.socket" "$units/engramd.service" > "$work/verify" 2>&1 ||
	{ cat "$work/verify"; fail "systemd-analyze verify"; }
[ -s "$work/verify" ] && { cat "$work/verify"; fail "systemd-analyze verify printed warnings"; }
ok "systemd-analyze verify"
if systemd-analyze security --offline=true "$units/engramd.service" > "$work/security" 2>&1; then
	exposure=$(sed -n 's/.*Overall exposure level for engramd.service: \([0-9.]*\).*/\1/p' "$work/security")
	[ -n "$exposure" ] || { cat "$work/security"; fail "no exposure level"; }
	awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "exposure $exposure > 2.0"
	ok "systemd-analyze security --offline=true: exposure $exposure"
else
	cat "$work/security"
	echo "deb-test: NOT CHECKED: systemd-analyze security --offline=true cannot run here"
fi

# an operator's steps: a table as the engramd user, named in the config
runuser -u engramd -- engram table create /var/lib/engramd/t --slots 4096 --dim 16 --dtype f32 \
	--fill random:7 > /dev/null || fail "engram table create as engramd"
sed -i 's|^# table = layer1=/var/lib/engramd/layer1$|table = t=/var/lib/engramd/t|' "$conf"
grep -q '^table = t=/var/lib/engramd/t$' "$conf" || fail "could not name the table in $conf"

# the unit's command line, as systemd would run it: user engramd, the socket
# passed as fd 3 (systemd-socket-activate stands in for engramd.socket; it
# and setpriv exec, so $pid is engramd's own)
exec_start=$(sed -n 's/^ExecStart=//p' "$units/engramd.service")
case $exec_start in /usr/bin/engramd\ *) ;; *) fail "ExecStart is '$exec_start'" ;; esac
mkdir -p /run/engramd
chown engramd:engramd /run/engramd
# shellcheck disable=SC2086
setpriv --reuid=engramd --regid=engramd --init-groups systemd-socket-activate -l /run/engramd/engramd.sock $exec_start \
	> "$work/engramd.log" 2>&1 &
pid=$!
i=0
until [ -S /run/engramd/engramd.sock ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no socket"; sleep 0.1
done
# the first connection starts engramd (socket activation); it may still be
# opening the table: retry ping for a while
i=0
until engram ping > /dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/engramd.log"; fail "engram ping (default address)"; }
	sleep 0.1
done
engram lookup --table t --slots 0,17,4095 --out "$work/served.npy" || fail "engram lookup"
engram table export /var/lib/engramd/t --slots 0,17,4095 --out "$work/expected.npy" ||
	fail "engram table export"
cmp -s "$work/served.npy" "$work/expected.npy" || fail "served rows differ from the table's"
ok "ExecStart under systemd-socket-activate on /run/engramd/engramd.sock served the table's rows"
[ "$(cat /proc/$pid/comm)" = engramd ] || fail "the process started is not engramd"
kill -TERM "$pid"
wait "$pid" || fail "engramd did not exit 0 on SIGTERM: $(tail -3 "$work/engramd.log")"
pid=""
grep -q "serving /var/lib/engramd/t" "$work/engramd.log" || { cat "$work/engramd.log"; fail "log"; }
ok "SIGTERM: exit 0"
rm -rf /var/lib/engramd/t /run/engramd

dpkg -r engramd > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r"; }
left=""
while read -r f; do
	[ -d "$f" ] && continue # shared directories (/usr/bin) stay
	[ "$f" = "$conf" ] && continue # a conffile stays until purge
	[ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done < "$work/files"
[ -z "$left" ] || fail "left after dpkg -r:$left"
dpkg -P engramd > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg -P"; }
while read -r f; do
	[ -d "$f" ] && [ "${f#*engramd}" = "$f" ] && continue
	[ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done < "$work/files"
[ -z "$left" ] || fail "left after dpkg -P:$left"
[ -e /var/lib/engramd ] && fail "/var/lib/engramd left after purging an empty one"
[ -e /etc/systemd/system/sockets.target.wants/engramd.socket ] && fail "socket still enabled"
dpkg-query -W engramd > /dev/null 2>&1 && fail "dpkg still knows engramd"
ok "dpkg -r, dpkg -P: nothing of the package left (the engramd user stays, as Debian does)"
echo "deb-test: passed"
