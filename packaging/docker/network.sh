#!/usr/bin/env bash
# Writes a network of N validator containers: each node's home (its own key, a config.toml
# listing the others as bootstrap peers) and one genesis made with `cairn-node genesis`, plus
# a compose.yaml that runs the `cairn-node` image once per home on a private bridge with
# fixed addresses (172.28.0.10 + i).
#
#   packaging/docker/network.sh [--consensus pbft|raft] [--chain-id ID] N OUT_DIR
#
# Needs a cairn-node binary on the host ($CAIRN_NODE, default `cairn-node` on PATH; e.g.
# CAIRN_NODE=target/release/cairn-node) to make keys and the genesis. Prints the admin
# account's key file, whose key holds the network's funds.
set -euo pipefail

consensus=pbft
chain_id=cairn-docker
while [ $# -gt 0 ]; do
  case "$1" in
    --consensus) consensus=$2; shift 2 ;;
    --chain-id) chain_id=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "usage: $0 [--consensus pbft|raft] [--chain-id ID] N OUT_DIR" >&2
  exit 2
fi
n=$1
out=$2
node=${CAIRN_NODE:-cairn-node}
if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then
  echo "error: N must be 1..200, got $n" >&2
  exit 2
fi
if ! command -v "$node" >/dev/null; then
  echo "error: no cairn-node binary ($node): build one and set CAIRN_NODE=path/to/cairn-node" >&2
  exit 1
fi
if [ -e "$out" ]; then
  echo "error: $out exists; choose a new directory" >&2
  exit 1
fi
mkdir -p "$out"
ip() { echo "172.28.0.$((10 + $1))"; }

# Keys first: every node's peer id goes into the others' bootstrap lists.
declare -a peers
for i in $(seq 0 $((n - 1))); do
  "$node" init --home "$out/node$i" --moniker "node$i" --json \
    --p2p-listen /ip4/0.0.0.0/tcp/26000 --api-listen 0.0.0.0:8000 >"$out/node$i.key.json"
  peer=$(sed -n 's/.*"peer_id":"\([^"]*\)".*/\1/p' "$out/node$i.key.json")
  if [ -z "$peer" ]; then
    echo "error: no peer id in what \`$node init --json\` printed for node$i" >&2
    exit 1
  fi
  peers[i]="/ip4/$(ip "$i")/tcp/26000/p2p/$peer"
done

"$node" genesis new --file "$out/genesis.json" --chain-id "$chain_id" --consensus "$consensus"
for i in $(seq 0 $((n - 1))); do
  "$node" genesis add-validator --file "$out/genesis.json" --name "node$i" --home "$out/node$i"
done
# The admin account: a fresh key, written as a node key file (hex seed, mode 0600).
"$node" init --home "$out/admin" --json >"$out/admin.key.json" 2>/dev/null
admin=$(sed -n 's/.*"public_key":"\([^"]*\)".*/\1/p' "$out/admin.key.json")
rm -f "$out/admin/config.toml"
"$node" genesis add-account --file "$out/genesis.json" --key "$admin" \
  --balance 1000000000 --role admin
"$node" genesis validate --file "$out/genesis.json"

{
  echo "# Written by packaging/docker/network.sh: $n validators ($consensus)."
  # Compose project names are lowercase letters, digits, - and _.
  echo "name: $(echo "$chain_id" | tr 'A-Z.' 'a-z-')"
  echo "services:"
  for i in $(seq 0 $((n - 1))); do
    others=()
    for j in $(seq 0 $((n - 1))); do
      [ "$j" = "$i" ] || others+=("\"${peers[j]}\"")
    done
    cp "$out/genesis.json" "$out/node$i/genesis.json"
    sed -i "s|^bootstrap = \[\]|bootstrap = [$(IFS=,; echo "${others[*]}")]|" "$out/node$i/config.toml"
    echo "  node$i:"
    echo "    image: cairn-node"
    echo "    restart: on-failure"
    # The image's user when run as root (the homes are handed to it), else the homes' owner:
    # node_key is mode 0600.
    if [ "$(id -u)" = 0 ]; then
      echo "    user: \"10001:10001\""
    else
      echo "    user: \"$(id -u):$(id -g)\""
    fi
    echo "    volumes: [\"./node$i:/var/lib/cairn\"]"
    echo "    ports: [\"127.0.0.1:$((8000 + i)):8000\"]"
    echo "    networks: { cairn: { ipv4_address: $(ip "$i") } }"
  done
  echo "networks:"
  echo "  cairn:"
  echo "    ipam: { config: [ { subnet: 172.28.0.0/24 } ] }"
} >"$out/compose.yaml"
rm -f "$out"/node*.key.json "$out/admin.key.json"
if [ "$(id -u)" = 0 ]; then
  chown -R 10001:10001 "$out"/node*
fi
echo "wrote $out: $n homes, genesis.json and compose.yaml; node i's API on 127.0.0.1:800i"
echo "admin account $admin: its seed is $out/admin/node_key (cairn key import admin $out/admin/node_key)"
