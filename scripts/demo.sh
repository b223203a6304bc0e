#!/usr/bin/env bash
# Builds Cairn, starts a local 4-node PBFT testnet, and makes a transfer with the wallet that
# becomes final on every node. The network keeps running afterwards; the script prints what
# to try next and how to stop it.
#
#   ./scripts/demo.sh
#
# Needs: a Rust toolchain. Installs libclang-dev, g++ and pkg-config with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

DIR=${CAIRN_DEMO_DIR:-.testnet}
BIN=target/debug

say "building (the first build compiles RocksDB from source: ~10 min on 2 cores)"
cargo build --workspace --locked --bins

testnet() { "$BIN/cairn-testnet" --dir "$DIR" "$@"; }
if [[ -f "$DIR/testnet.json" ]]; then testnet down >/dev/null; fi

say "a 4-node PBFT network: keys, genesis, funded demo accounts"
testnet init --force --nodes 4 --consensus pbft
say "starting the nodes"
testnet up
testnet status

node0=$(testnet status --json | sed -n 's/.*"api": "\(.*\)".*/\1/p' | head -1)
export CAIRN_NODE=$node0 CAIRN_KEYSTORE=$DIR/accounts
wallet() { "$BIN/cairn" "$@"; }

say "a transfer of 25 from account1 to account2, signed by the wallet, waited for until final"
wallet account account2
out=$(wallet --json transfer --from account1 --to account2 --amount 25 --wait)
id=$(printf '%s' "$out" | sed -n 's/^  "id": "\(.*\)",$/\1/p')
height=$(printf '%s' "$out" | sed -n 's/^    "height": \([0-9]*\),\{0,1\}$/\1/p' | head -1)
echo "transaction $id is final at height $height"

say "the same transaction, asked of every node"
for api in $(testnet status --json | sed -n 's/.*"api": "\(.*\)".*/\1/p'); do
  # A node may be a moment behind the one that answered: ask until it has the block.
  for _ in $(seq 100); do
    "$BIN/cairn" --node "$api" --json tx "$id" 2>/dev/null | grep -q '"committed"' && break
    sleep 0.1
  done
  printf '%s  ' "$api"
  "$BIN/cairn" --node "$api" tx "$id"
done
wallet account account2
wallet verify "$height" --genesis "$DIR/genesis.json"

cat <<NEXT

The network is still running. Open the block explorer any node serves: $node0/
Try:
  export CAIRN_NODE=$node0 CAIRN_KEYSTORE=$DIR/accounts
  $BIN/cairn status                                   # this node's view
  $BIN/cairn blocks                                   # recent blocks
  $BIN/cairn transfer --from account1 --to account3 --amount 7 --wait
  $BIN/cairn events                                   # follow blocks live (Ctrl-C stops)
  $BIN/cairn-testnet --dir $DIR kill node0            # crash the primary; transfers still go through
  $BIN/cairn-testnet --dir $DIR restart node0         # it comes back and catches up
  $BIN/cairn-testnet --dir $DIR bench --txs 20000     # load and measure
  curl -s $node0/api/v1/status                        # the JSON API
Stop it with:
  $BIN/cairn-testnet --dir $DIR down
NEXT
