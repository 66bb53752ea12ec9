# Network-namespace "hosts" for the cluster tests (sourced by the *_test.sh scripts).
#
# netns_up N: makes N namespaces ${NS_PREFIX}0..N-1, each joined by a veth pair to one bridge
# in the root namespace, with private addresses ${NS_NET}.1..N (/24) that exist only inside
# them (the root namespace has no address on the bridge), and an sshd in each that admits the
# test's key as root. Everything is undone by netns_down, which the scripts run on EXIT.
#
# Needs root, ip(8), and sshd (openssh-server). Tests call netns_can_run first and skip
# (exit 77) with its message when it fails.

NS_PREFIX="tp$$-"
NS_NET="10.213.$(( $$ % 200 + 20 ))"
NS_BRIDGE="tpbr$$"
NS_COUNT=0
NS_DIR=""

netns_can_run() {
  [ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
  command -v ip >/dev/null || { echo "no ip(8) (iproute2)"; return 1; }
  [ -x /usr/sbin/sshd ] || { echo "no /usr/sbin/sshd (apt-get install openssh-server)"; return 1; }
  ip netns add "${NS_PREFIX}probe" 2>/dev/null || { echo "cannot make a network namespace"; return 1; }
  ip netns del "${NS_PREFIX}probe"
  return 0
}

netns_up() {
  NS_COUNT=$1
  NS_DIR=$(mktemp -d /tmp/treepo-netns-XXXXXX)
  ip link add "$NS_BRIDGE" type bridge || return 1
  ip link set "$NS_BRIDGE" up || return 1
  mkdir -p /run/sshd
  ssh-keygen -q -t ed25519 -N "" -f "$NS_DIR/id" || return 1
  ssh-keygen -q -t ed25519 -N "" -f "$NS_DIR/hostkey" || return 1
  cp "$NS_DIR/id.pub" "$NS_DIR/authorized_keys"
  i=0
  while [ $i -lt "$NS_COUNT" ]; do
    ns="${NS_PREFIX}$i"
    ip netns add "$ns" || return 1
    ip link add "tpv$$-$i" type veth peer name "tpp$$-$i" || return 1
    ip link set "tpp$$-$i" netns "$ns" || return 1
    ip link set "tpv$$-$i" master "$NS_BRIDGE" up || return 1
    ip -n "$ns" link set lo up || return 1
    ip -n "$ns" addr add "$NS_NET.$((i + 1))/24" dev "tpp$$-$i" || return 1
    ip -n "$ns" link set "tpp$$-$i" up || return 1
    cat > "$NS_DIR/sshd-$i.conf" <<CONF
ListenAddress $NS_NET.$((i + 1))
Port 22
HostKey $NS_DIR/hostkey
AuthorizedKeysFile $NS_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $NS_DIR/sshd-$i.pid
AcceptEnv none
CONF
    ip netns exec "$ns" /usr/sbin/sshd -f "$NS_DIR/sshd-$i.conf" -E "$NS_DIR/sshd-$i.log" || return 1
    i=$((i + 1))
  done
  # Every sshd answers before the test goes on.
  i=0
  while [ $i -lt "$NS_COUNT" ]; do
    n=0
    until ip netns exec "${NS_PREFIX}0" ssh $(netns_ssh_opts) "$NS_NET.$((i + 1))" true 2>/dev/null; do
      n=$((n + 1))
      [ $n -gt 50 ] && { echo "sshd in ${NS_PREFIX}$i does not answer"; cat "$NS_DIR/sshd-$i.log"; return 1; }
      sleep 0.2
    done
    i=$((i + 1))
  done
}

netns_ssh_opts() {
  echo "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i $NS_DIR/id"
}

# netem delay/loss on namespace $1's link; prints what it did or why not.
netns_netem() {
  if ip netns exec "${NS_PREFIX}$1" tc qdisc add dev "tpp$$-$1" root netem delay "$2" loss "$3" 2>/dev/null; then
    echo "netem: ${NS_PREFIX}$1 delay $2 loss $3"
  else
    echo "netem: not available in this kernel; the link stays clean"
  fi
}

netns_down() {
  i=0
  while [ $i -lt "$NS_COUNT" ]; do
    ns="${NS_PREFIX}$i"
    if [ -n "$NS_DIR" ] && [ -f "$NS_DIR/sshd-$i.pid" ]; then kill "$(cat "$NS_DIR/sshd-$i.pid")" 2>/dev/null; fi
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    ip link del "tpv$$-$i" 2>/dev/null
    i=$((i + 1))
  done
  ip link del "$NS_BRIDGE" 2>/dev/null
  [ -n "$NS_DIR" ] && rm -rf "$NS_DIR"
  return 0
}
