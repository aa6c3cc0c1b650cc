#!/bin/sh
# e2e-install.sh installs, with apt-get, the Debian packages the real-daemon
# end-to-end suite (e2e/) needs, when they are missing. It must run as root on
# Debian (bookworm or later).
#
# Package maintainer scripts must not start system daemons: the suite starts its
# own dockerd, containerd and registry with private roots and sockets. While the
# packages install, /usr/sbin/policy-rc.d answers 101 ("action forbidden") to
# invoke-rc.d; the file that was there before, if any, is put back afterwards.
# Nothing relies on systemd.
set -eu

# command -> package that provides it. btrfs-progs and fuse-overlayfs serve the
# optional btrfs and fuse-overlayfs dockerds; the suite runs without them when
# the kernel or the mount refuses, but installs them so that it can try.
# prometheus-node-exporter and prometheus (with promtool) serve the metrics
# tests (e2e/metrics_test.go).
# podman and buildah (rootful, offline, private --root/--runroot) write the
# containers-storage graph roots of e2e/podman_test.go; with skopeo and umoci they
# write the artifact layouts of e2e/formats_test.go.
# ca-certificates: TestDockerfile puts /etc/ssl/certs/ca-certificates.crt in
# its golang stand-in (a minimal Debian may lack it).
PACKAGES="
dockerd:docker.io
docker-registry:docker-registry
skopeo:skopeo
containerd:containerd
ctr:containerd
runc:runc
busybox:busybox-static
mkfs.btrfs:btrfs-progs
fuse-overlayfs:fuse-overlayfs
prometheus-node-exporter:prometheus-node-exporter
prometheus:prometheus
promtool:prometheus
update-ca-certificates:ca-certificates
podman:podman
buildah:buildah
umoci:umoci
"

if [ "$(id -u)" != 0 ]; then
	echo "e2e-install: must run as root (apt-get install, dockerd)" >&2
	exit 1
fi

missing=""
for pair in $PACKAGES; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	case "$cmd" in
	busybox)
		# The image builds need the static binary, not a dynamically linked busybox.
		if [ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1; then continue; fi
		;;
	*)
		if command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ]; then continue; fi
		;;
	esac
	case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
done

if [ -z "$missing" ]; then
	echo "e2e-install: all packages present"
	exit 0
fi

echo "e2e-install: installing$missing"

policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
	backup=$(mktemp)
	cp -p "$policy" "$backup"
fi
restore() {
	if [ -n "$backup" ]; then
		cp -p "$backup" "$policy"
		rm -f "$backup"
	else
		rm -f "$policy"
	fi
}
trap restore EXIT INT TERM
printf '#!/bin/sh\n# written by layercheck scripts/e2e-install.sh: no daemon starts during install\nexit 101\n' >"$policy"
chmod 0755 "$policy"

export DEBIAN_FRONTEND=noninteractive
# One update per install; an old or empty package list finds nothing.
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing

# A package may still have started a daemon on a system where policy-rc.d is
# not consulted (systemd units enabled by deb-systemd-invoke honour it too, but
# be sure): stop what the packages' own init scripts started, by their pidfiles.
for pidfile in /var/run/docker.pid /run/docker.pid /run/containerd/containerd.pid /run/prometheus/prometheus.pid /run/prometheus-node-exporter.pid; do
	if [ -s "$pidfile" ]; then
		pid=$(cat "$pidfile")
		if kill -0 "$pid" 2>/dev/null; then
			echo "e2e-install: stopping daemon $pid started by the package ($pidfile)" >&2
			kill "$pid" || true
		fi
	fi
done

echo "e2e-install: done"
