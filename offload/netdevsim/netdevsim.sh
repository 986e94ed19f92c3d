#!/usr/bin/env bash
# The offload testbed: boots a Debian 6.1 kernel under QEMU (TCG) with netdevsim — the kernel's
# BPF-offload device simulator, which this machine's kernel lacks — and runs `nfcc load --mode
# offload` against it: a policy wholly on the NIC, a split policy (NIC stage in HW mode, host
# stage in driver mode beside it), status, stats, unload, and the device refusing (netdevsim's
# debugfs switches). Prints the VM's console; exits 0 when every check inside passed, 1 when one
# failed, 77 when the testbed cannot be built here (say why).
#
# Usage: netdevsim.sh NFCC_BINARY
# Downloads and builds what it needs once (kernel image and headers, kernel source for the
# netdevsim module, busybox, qemu) and caches it in $NFCC_NETDEVSIM_CACHE
# (default /var/cache/nfcc-netdevsim).
set -euo pipefail
nfcc=${1:?usage: netdevsim.sh NFCC_BINARY}
cache=${NFCC_NETDEVSIM_CACHE:-/var/cache/nfcc-netdevsim}
skip() { echo "skipped: netdevsim testbed: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (apt-get, module build)"
command -v apt-get >/dev/null || skip "needs a Debian system (apt-get)"
mkdir -p "$cache"
cd "$cache"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v gcc-12 >/dev/null || need+=(gcc-12)
command -v make >/dev/null || need+=(make)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || skip "cannot install ${need[*]}"
fi

# The kernel ABI the distribution's current 6.1 headers belong to (image, headers and source
# of one version, so the module matches the kernel it is loaded into).
if [ ! -f kernel.ready ]; then
    abi=$(apt-cache show linux-headers-amd64 2>/dev/null | awk -F'[ (]' '/^Depends: linux-headers-6\.1/ {print $2; exit}' | sed 's/^linux-headers-//')
    [ -n "$abi" ] || skip "no linux-headers-6.1 ABI in the package lists"
    ver=$(apt-cache show "linux-headers-$abi" | awk '/^Version:/ {print $2; exit}')
    rm -rf debs x && mkdir -p debs x
    (cd debs && apt-get download "linux-image-$abi-unsigned=$ver" "linux-headers-$abi=$ver" \
        "linux-headers-${abi%-amd64}-common=$ver" "linux-kbuild-6.1=$ver" "linux-source-6.1=$ver" \
        busybox-static >/dev/null 2>&1) || skip "cannot download the kernel packages ($abi $ver)"
    for d in debs/*.deb; do dpkg-deb -x "$d" x; done
    hdr="$cache/x/usr/src/linux-headers-$abi"
    # The headers' Makefile names the common tree by its installed path; point it here.
    echo "include $cache/x/usr/src/linux-headers-${abi%-amd64}-common/Makefile" > "$hdr/Makefile"
    (cd x/usr/src && tar xf linux-source-6.1.tar.xz linux-source-6.1/drivers/net/netdevsim)
    rm -rf nds && cp -r x/usr/src/linux-source-6.1/drivers/net/netdevsim nds
    make -s -C "$hdr" M="$cache/nds" CONFIG_NETDEVSIM=m modules >build.log 2>&1 \
        || { tail -20 build.log; skip "the netdevsim module does not build"; }
    echo "$abi" > kernel.ready
fi
abi=$(cat kernel.ready)

# The initramfs: busybox, iproute2, nfcc and their libraries, the modules, the test policies.
ir=$(mktemp -d)
trap 'rm -rf "$ir"' EXIT
mkdir -p "$ir"/{bin,lib,lib64,proc,sys,dev,tmp,run,p}
cp x/bin/busybox "$ir/bin/"
cp nds/netdevsim.ko "$(find x/lib/modules -name 'psample.ko*' | head -1)" "$ir/lib/"
strip -o "$ir/bin/nfcc" "$nfcc"
cp "$(command -v ip)" "$ir/bin/ip2"
for bin in "$ir/bin/nfcc" "$ir/bin/ip2"; do
    for lib in $(ldd "$bin" | grep -o '/[^ ]*\.so[^ ]*'); do
        mkdir -p "$ir$(dirname "$lib")"
        cp -L "$lib" "$ir$lib"
    done
done
cat > "$ir/p/full.nf" <<'NF'
policy full on xdp {
  offload nfp
  set bad_ports: port, capacity 2, dynamic = { 19 }
  rule dns: udp.dport in bad_ports => drop
  default pass
}
NF
cat > "$ir/p/split.nf" <<'NF'
policy split on xdp {
  limiter per_src: key ip.src, rate 10/s, burst 5, capacity 16
  rule dns: udp.dport == 53 => drop
  rule flood: over per_src => drop
  default pass
}
NF
cat > "$ir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug; mount -t bpf bpf /sys/fs/bpf; mount -t tmpfs run /run
ok() { echo "NDS-OK $1"; }
fail() { echo "NDS-FAIL $*"; }
insmod /lib/psample.ko* && insmod /lib/netdevsim.ko || fail modules
echo "1 1" > /sys/bus/netdevsim/new_device; sleep 1
IF=$(ls /sys/bus/netdevsim/devices/netdevsim1/net/ | head -1)
ip2 link set "$IF" up
echo "netdevsim device: $IF"
xdp() { ip2 -d link show "$IF" | grep -o 'xdp[a-z]*\|prog/xdp id [0-9]*' | tr '\n' ' '; }

out=$(nfcc load /p/full.nf --iface "$IF" --mode offload 2>&1) && ok load-full || fail "load-full: $out"
echo "$out"
st=$(nfcc status 2>&1); echo "$st"
echo "$st" | grep -q "NIC program" && ok status-full || fail "status-full: $st"
x=$(xdp); echo "xdp: $x"
echo "$x" | grep -q xdpoffload && ok hw-mode-full || fail "hw-mode-full: $x"
nfcc stats full --json >/tmp/s 2>&1 && grep -q '"rule":"dns"' /tmp/s && ok stats-full || fail "stats-full: $(cat /tmp/s)"
nfcc set add full bad_ports 53 >/tmp/s 2>&1 && ok set-add-nic || fail "set-add-nic: $(cat /tmp/s)"
nfcc set list full bad_ports >/tmp/s 2>&1; grep -qx 53 /tmp/s && grep -qx 19 /tmp/s && ok set-list-nic || fail "set-list-nic: $(cat /tmp/s)"
out=$(nfcc load /p/full.nf --iface "$IF" --replace 2>&1); [ $? = 2 ] && echo "$out" | grep -q "not built yet" && ok replace-refused || fail "replace-refused: $out"
nfcc unload --iface "$IF" && ok unload-full || fail unload-full
x=$(xdp); [ -z "$x" ] && ok detached-full || fail "detached-full: $x"

out=$(nfcc load /p/split.nf --iface "$IF" --mode offload 2>&1) && ok load-split || fail "load-split: $out"
echo "$out"
st=$(nfcc status 2>&1); echo "$st"
x=$(xdp); echo "xdp: $x"
echo "$x" | grep -q xdpmulti && ok two-programs || fail "two-programs: $x"
echo "$st" | grep -q "NIC program" && echo "$st" | grep -q "split" && ok status-split || fail "status-split: $st"
nfcc stats split --json >/tmp/s 2>&1 && grep -q '"rule":"flood"' /tmp/s && ok stats-split || fail "stats-split: $(cat /tmp/s)"
nfcc unload --iface "$IF" && ok unload-split || fail unload-split
x=$(xdp); [ -z "$x" ] && ok detached-split || fail "detached-split: $x"
[ -z "$(ls /sys/fs/bpf/nfcc 2>/dev/null)" ] && ok unpinned || fail "unpinned: $(ls -R /sys/fs/bpf/nfcc)"

# The device refuses the HW-mode attach: one clear message, exit 2, nothing left.
acc=$(find /sys/kernel/debug/netdevsim -name bpf_xdpoffload_accept | head -1)
echo N > "$acc"
out=$(nfcc load /p/full.nf --iface "$IF" --mode offload 2>&1); rc=$?
echo "$out"
[ "$rc" = 2 ] && echo "$out" | grep -q "refused" && ok refused-attach || fail "refused-attach: rc=$rc $out"
x=$(xdp); [ -z "$x" ] && [ -z "$(ls /sys/fs/bpf/nfcc 2>/dev/null)" ] && ok refused-clean || fail "refused-clean: $x"
echo Y > "$acc"
# The device's verifier refuses the program.
ver=$(find /sys/kernel/debug/netdevsim -name bpf_bind_verifier_accept | head -1)
echo N > "$ver"
out=$(nfcc load /p/full.nf --iface "$IF" --mode offload 2>&1); rc=$?
echo "$out"
[ "$rc" = 2 ] && echo "$out" | grep -q "$IF" && ok refused-load || fail "refused-load: rc=$rc $out"
x=$(xdp); [ -z "$x" ] && ok refused-load-clean || fail "refused-load-clean: $x"
echo NDS-END
poweroff -f
INIT
chmod +x "$ir/init"
(cd "$ir" && find . | "$cache/x/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > initrd.gz
log=$(mktemp)
timeout 600 qemu-system-x86_64 -accel tcg -m 1024 -nographic -no-reboot \
    -kernel "x/boot/vmlinuz-$abi" -initrd initrd.gz \
    -append "console=ttyS0 panic=-1 quiet" >"$log" 2>&1 || true
tr -d '\r' <"$log" | sed -n '/netdevsim device/,$p'
if grep -q NDS-END "$log" && ! grep -q NDS-FAIL "$log"; then
    exit 0
fi
grep -q NDS-END "$log" || echo "the VM did not finish (see the console above)"
exit 1
