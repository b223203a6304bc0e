// Checks what a node serves, in the page, from docs/PROTOCOL.md alone: the canonical encoding
// (§1), tagged SHA-256 (§2), transaction ids (§4), block hashes (§5), the Merkle root and
// inclusion proofs (§6), commit certificates (§8) and the genesis hash (§9). Hashing and
// ed25519 use the browser's Web Crypto, which needs a secure context (https, or a page served
// from localhost / 127.0.0.1).
//
// Limits: Web Crypto's ed25519 is RFC 8032's strict check, not the network's ZIP-215 rule
// (§3); they differ only on signatures no honest validator makes, which this page would call
// invalid. Integers above 2^53 must reach this code as BigInt (app.js parses JSON so), or
// their encoding would be wrong and a check would fail.

const TAGS = {
  txId: "cairn/tx/id/v1",
  block: "cairn/block/v1",
  genesis: "cairn/genesis/v4",
  validators: "cairn/validators/v1",
  raftCommit: "cairn/raft/commit/v1",
  pbftCommit: "cairn/pbft/commit/v1",
  stateLeaf: "cairn/state/leaf/v2",
  stateNode: "cairn/state/node/v2",
};

const utf8 = new TextEncoder();

export function hexToBytes(hex) {
  const h = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) {
    throw new Error(`not hex: ${hex.slice(0, 20)}`);
  }
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
  return out;
}

export function bytesToHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/// The canonical encoding, written field by field.
class Encoder {
  constructor() {
    this.parts = [];
  }
  raw(bytes) {
    this.parts.push(bytes);
    return this;
  }
  u8(n) {
    return this.raw(Uint8Array.of(n));
  }
  u32(n) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    return this.raw(b);
  }
  u64(n) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    return this.raw(b);
  }
  fixed(hex, len) {
    const b = hexToBytes(hex);
    if (b.length !== len) throw new Error(`expected ${len} bytes, got ${b.length}`);
    return this.raw(b);
  }
  bytes(b) {
    return this.u64(b.length).raw(b);
  }
  string(s) {
    return this.bytes(utf8.encode(s));
  }
  done() {
    const len = this.parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(len);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

const ROLES = { user: 0, admin: 1 };
const POLICIES = { admins: 0, validators: 1 };

/// §4: a validator-set change.
function putChange(e, change) {
  const [kind, c] = Object.entries(change)[0];
  switch (kind) {
    case "add":
      return e.u32(0).string(c.validator.name).fixed(c.validator.public_key, 32);
    case "remove":
      return e.u32(1).fixed(c.public_key, 32);
    case "rotate":
      return e.u32(2).fixed(c.public_key, 32).fixed(c.new_key, 32);
    default:
      throw new Error(`unknown validator change ${kind}`);
  }
}

/// §4: the unsigned transaction.
export function encodeTx(tx) {
  const e = new Encoder().string(tx.chain_id).fixed(tx.sender, 32).u64(tx.nonce);
  const [kind, p] = Object.entries(tx.payload)[0];
  switch (kind) {
    case "transfer":
      return e.u32(0).fixed(p.to, 32).u64(p.amount).done();
    case "put_record":
      return e.u32(1).string(p.key).bytes(hexToBytes(p.value)).done();
    case "add_member":
      return e.u32(2).fixed(p.account, 32).u32(ROLES[p.role]).done();
    case "remove_member":
      return e.u32(3).fixed(p.account, 32).done();
    case "change_validators":
      return putChange(e.u32(4), p.change).done();
    default:
      throw new Error(`unknown payload ${kind}`);
  }
}

/// §5: the block header.
export function encodeHeader(h) {
  const e = new Encoder()
    .string(h.chain_id)
    .u64(h.height)
    .fixed(h.prev_hash, 32)
    .u64(h.timestamp_ms)
    .fixed(h.tx_root, 32)
    .u32(h.tx_count)
    .fixed(h.state_root, 32)
    .fixed(h.proposer, 32)
    .u64(h.round)
    .fixed(h.validators_hash, 32);
  if (h.next_validators == null) return e.u8(0).done();
  return putValidators(e.u8(1), h.next_validators).done();
}

/// A validator list (§5, §9): its length, then each name and key.
function putValidators(e, list) {
  e.u64(list.length);
  for (const v of list) e.string(v.name).fixed(v.public_key, 32);
  return e;
}

/// §5: what a header's validators_hash is for a list.
export async function validatorsHash(list) {
  return bytesToHex(await taggedHash(TAGS.validators, putValidators(new Encoder(), list).done()));
}

/// §9: the genesis.
export function encodeGenesis(g) {
  const e = new Encoder().string(g.chain_id).u64(g.genesis_time_ms);
  if (g.consensus.raft) {
    const r = g.consensus.raft;
    e.u32(0).u64(r.election_timeout_min_ms).u64(r.election_timeout_max_ms).u64(r.heartbeat_interval_ms);
    e.u64(r.epoch_length).u32(POLICIES[r.validator_changes]);
  } else {
    const p = g.consensus.pbft;
    e.u32(1).u64(p.checkpoint_interval).u64(p.view_change_timeout_ms);
    e.u32(POLICIES[p.validator_changes]);
  }
  putValidators(e, g.validators);
  e.u64(g.accounts.length);
  for (const a of g.accounts) {
    e.fixed(a.public_key, 32).u64(a.balance);
    if (a.role == null) e.u8(0);
    else e.u8(1).u32(ROLES[a.role]);
  }
  return e.done();
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/// §2: SHA-256(u8(len(tag)) ‖ tag ‖ data).
export async function taggedHash(tag, data) {
  const t = utf8.encode(tag);
  return sha256(new Encoder().u8(t.length).raw(t).raw(data).done());
}

/// §3: what a signature covers.
function signingBytes(tag, chainId, message) {
  const t = utf8.encode(tag);
  return new Encoder().u8(t.length).raw(t).string(chainId).raw(message).done();
}

async function verifySignature(publicKeyHex, signatureHex, message) {
  const key = await crypto.subtle.importKey(
    "raw",
    hexToBytes(publicKeyHex),
    { name: "Ed25519" },
    false,
    ["verify"],
  );
  return crypto.subtle.verify({ name: "Ed25519" }, key, hexToBytes(signatureHex), message);
}

/// §6: RFC 6962 over the ids, an odd last node carried up.
export async function merkleRoot(ids) {
  if (ids.length === 0) return sha256(new Uint8Array());
  let level = [];
  for (const id of ids) level.push(await sha256(new Encoder().u8(0).raw(id).done()));
  while (level.length > 1) {
    const next = [];
    for (let i = 0; i < level.length; i += 2) {
      if (i + 1 < level.length) {
        next.push(await sha256(new Encoder().u8(1).raw(level[i]).raw(level[i + 1]).done()));
      } else {
        next.push(level[i]);
      }
    }
    level = next;
  }
  return level[0];
}

/// §6: an inclusion proof against a root.
export async function verifyProof(idHex, proof, rootHex) {
  let acc = await sha256(new Encoder().u8(0).raw(hexToBytes(idHex)).done());
  let index = BigInt(proof.index);
  let width = BigInt(proof.leaf_count);
  if (index >= width) return false;
  let used = 0;
  while (width > 1n) {
    if (index % 2n === 1n) {
      if (used >= proof.path.length) return false;
      acc = await sha256(new Encoder().u8(1).raw(hexToBytes(proof.path[used++])).raw(acc).done());
    } else if (index + 1n < width) {
      if (used >= proof.path.length) return false;
      acc = await sha256(new Encoder().u8(1).raw(acc).raw(hexToBytes(proof.path[used++])).done());
    }
    index /= 2n;
    width = (width + 1n) / 2n;
  }
  return used === proof.path.length && bytesToHex(acc) === rootHex.toLowerCase();
}

/// §7: whether `proof` shows that `key` (bytes) holds the value `valueHex` (null: holds
/// nothing) in the state whose root is `rootHex`.
export async function verifyStateProof(key, valueHex, proof, rootHex) {
  const depth = proof.siblings.length;
  if (depth > 256) return false;
  const path = await sha256(key);
  const bit = (b, i) => (b[i >> 3] >> (7 - (i & 7))) & 1;
  const leaf = proof.leaf;
  if (valueHex != null) {
    if (!leaf || leaf.key_hash !== bytesToHex(path)) return false;
    if (leaf.value_hash !== bytesToHex(await sha256(hexToBytes(valueHex)))) return false;
  } else if (leaf) {
    const other = hexToBytes(leaf.key_hash);
    if (leaf.key_hash === bytesToHex(path)) return false;
    for (let i = 0; i < depth; i++) if (bit(other, i) !== bit(path, i)) return false;
  }
  let acc = leaf
    ? await taggedHash(TAGS.stateLeaf, new Encoder().raw(hexToBytes(leaf.key_hash)).raw(hexToBytes(leaf.value_hash)).done())
    : new Uint8Array(32);
  for (let i = depth - 1; i >= 0; i--) {
    const s = hexToBytes(proof.siblings[i]);
    const pair = bit(path, i) ? new Encoder().raw(s).raw(acc) : new Encoder().raw(acc).raw(s);
    acc = await taggedHash(TAGS.stateNode, pair.done());
  }
  return bytesToHex(acc) === rootHex.toLowerCase();
}

/// §7: an account as `GET /api/v1/accounts/{id}?prove=true` serves it, checked: the block it
/// is proved at against the validator set in force there (`set`, see `setFor`), and the proof
/// from the account's own key (`id`, not the one the node names) and the value shown to that
/// block's state root. The value must be what the page shows: balance, nonce, role.
export async function verifyAccount(view, id, genesis, set) {
  const p = view.proof;
  if (!p) return { ok: false, why: "the node sent no proof" };
  if (BigInt(p.height) === 0n || !p.header) return { ok: false, why: "nothing is committed yet" };
  const key = new Uint8Array([1, ...hexToBytes(id)]);
  if (p.key !== bytesToHex(key)) return { ok: false, why: "the proof is for another key" };
  const h = p.header;
  if (BigInt(view.height) !== BigInt(p.height) || BigInt(p.height) !== BigInt(h.height)) {
    return { ok: false, why: "the heights of the account, the proof and the block differ" };
  }
  if (h.chain_id !== genesis.chain_id) return { ok: false, why: "the block is of another chain" };
  // The set is the one in force at the height the page followed to: the header must name it.
  if (h.validators_hash !== (await validatorsHash(set))) {
    return { ok: false, why: "the block names a validator set other than the one in force" };
  }
  if (!set.some((v) => v.public_key === h.proposer)) {
    return { ok: false, why: "the proposer is not a validator in force" };
  }
  const hash = bytesToHex(await taggedHash(TAGS.block, encodeHeader(h)));
  const cert = await checkCertificate(p.certificate, h.height, hash, genesis, set);
  if (!cert.ok) return { ok: false, why: `certificate: ${cert.why}` };
  if (!(await verifyStateProof(key, p.value, p.proof, h.state_root))) {
    return { ok: false, why: "the proof does not lead to the block's state root" };
  }
  if (p.value == null) {
    const empty =
      !view.exists && BigInt(view.balance) === 0n && BigInt(view.nonce) === 0n && view.role == null;
    return empty ? { ok: true, height: h.height, absent: true } : { ok: false, why: "the account shown is not the one proved" };
  }
  // Account { balance: u64, nonce: u64, role: Option<Role> } (§1, §7).
  const b = hexToBytes(p.value);
  const u64 = (at) => new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0, true);
  const shown = view.exists && BigInt(view.balance) === u64(0) && BigInt(view.nonce) === u64(8);
  const role = b[16] === 0 ? null : Object.keys(ROLES).find((r) => ROLES[r] === new DataView(b.buffer, b.byteOffset + 17, 4).getUint32(0, true));
  if (!shown || (view.role ?? null) !== (role ?? null)) return { ok: false, why: "the account shown is not the one proved" };
  return { ok: true, height: h.height };
}

export async function txId(tx) {
  return bytesToHex(await taggedHash(TAGS.txId, encodeTx(tx)));
}

export async function genesisHash(genesis) {
  return bytesToHex(await taggedHash(TAGS.genesis, encodeGenesis(genesis)));
}

/// §8: a certificate for (height, hash), against the validators in force at that height.
async function checkCertificate(cert, height, blockHashHex, genesis, set) {
  const chain = genesis.chain_id;
  const keys = set.map((v) => v.public_key);
  const names = Object.fromEntries(set.map((v) => [v.public_key, v.name]));
  const hashBytes = hexToBytes(blockHashHex);
  if (cert.raft) {
    if (!genesis.consensus.raft) return { ok: false, why: "a Raft certificate on a PBFT chain" };
    const c = cert.raft;
    if (!keys.includes(c.leader)) return { ok: false, why: "the leader is not a validator" };
    const statement = new Encoder().u64(height).raw(hashBytes).u64(c.term).done();
    const ok = await verifySignature(c.leader, c.signature, signingBytes(TAGS.raftCommit, chain, statement));
    return ok
      ? { ok, kind: "raft", signers: [names[c.leader]], quorum: 1, n: keys.length, round: c.term }
      : { ok, why: "the leader's signature does not verify" };
  }
  const c = cert.pbft;
  if (!c) return { ok: false, why: "an unknown certificate" };
  if (!genesis.consensus.pbft) return { ok: false, why: "a PBFT certificate on a Raft chain" };
  if (BigInt(c.seq) !== BigInt(height)) return { ok: false, why: "seq is not the height" };
  const n = keys.length;
  const quorum = n - Math.floor((n - 1) / 3);
  const statement = new Encoder().u64(c.view).u64(c.seq).raw(hashBytes).done();
  const message = signingBytes(TAGS.pbftCommit, chain, statement);
  const seen = new Set();
  const signers = [];
  for (const v of c.votes) {
    if (!keys.includes(v.validator)) return { ok: false, why: "a voter is not a validator" };
    if (seen.has(v.validator)) return { ok: false, why: "a validator voted twice" };
    seen.add(v.validator);
    if (!(await verifySignature(v.validator, v.signature, message))) {
      return { ok: false, why: `${names[v.validator]}'s vote does not verify` };
    }
    signers.push(names[v.validator]);
  }
  if (signers.length < quorum) {
    return { ok: false, why: `${signers.length} votes, ${quorum} needed` };
  }
  return { ok: true, kind: "pbft", signers, quorum, n, round: c.view };
}

/// Blocks per epoch: set changes take effect after multiples of it (§8).
export function epochLength(genesis) {
  const c = genesis.consensus;
  return BigInt(c.raft ? c.raft.epoch_length : c.pbft.checkpoint_interval);
}

/// The set in force after each boundary already followed, by chain: [boundary, set] pairs.
const followed = new Map();

/// §8: the validator set in force at `height`, followed from the genesis: every boundary
/// block below it is checked against the set before it (its certificate included), and the
/// set its header announces (next_validators) takes over after it. `fetchBlock(h)` returns
/// the block view at h. Throws when a boundary block does not verify.
export async function setFor(height, genesis, fetchBlock) {
  const k = epochLength(genesis);
  const key = await genesisHash(genesis);
  const known = followed.get(key) ?? [[0n, genesis.validators]];
  followed.set(key, known);
  let [at, set] = known[known.length - 1];
  for (let e = at + k; e < BigInt(height); e += k) {
    const view = await fetchBlock(e);
    const r = await verifyBlock(view, genesis, set);
    if (!r.ok) throw new Error(`boundary block ${e} does not verify: ${r.errors.join("; ")}`);
    if (view.block.header.next_validators != null) set = view.block.header.next_validators;
    // Another call may have followed this far meanwhile (the result is the same): the list
    // stays in boundary order.
    if (known[known.length - 1][0] < e) known.push([e, set]);
  }
  // The set after the highest boundary below `height` (another call may have gone further).
  let best = 0n;
  for (const [e, s] of known) {
    if (e < BigInt(height) && e >= best) [best, set] = [e, s];
  }
  return set;
}

/// Everything the page can check about a block (as `GET /api/v1/blocks/{id}` serves it)
/// against a genesis and the validator set in force at its height (see `setFor`; the genesis
/// set by default): its hash, its transactions' ids and root, and its certificate.
export async function verifyBlock(view, genesis, set = genesis.validators) {
  const h = view.block.header;
  const out = { errors: [] };
  const hash = bytesToHex(await taggedHash(TAGS.block, encodeHeader(h)));
  out.hashOk = hash === view.hash;
  if (!out.hashOk) out.errors.push("the header does not hash to the block hash");
  out.chainOk = h.chain_id === genesis.chain_id;
  if (!out.chainOk) out.errors.push("the block is of another chain");
  const ids = [];
  for (const t of view.block.txs) ids.push(hexToBytes(await txId(t.tx)));
  out.txRootOk = ids.length === h.tx_count && bytesToHex(await merkleRoot(ids)) === h.tx_root;
  if (!out.txRootOk) out.errors.push("the transactions do not match the header's tx_root");
  if (BigInt(h.height) === 1n) {
    // The first block links to the genesis itself.
    out.linkOk = h.prev_hash === (await genesisHash(genesis));
    if (!out.linkOk) out.errors.push("block 1 does not link to this genesis");
  }
  out.validatorsOk = h.validators_hash === (await validatorsHash(set));
  if (!out.validatorsOk) {
    out.errors.push("the block names a validator set other than the one in force");
  }
  out.certificate = await checkCertificate(view.certificate, h.height, view.hash, genesis, set);
  if (!out.certificate.ok) out.errors.push(`certificate: ${out.certificate.why}`);
  out.ok = out.errors.length === 0;
  return out;
}
