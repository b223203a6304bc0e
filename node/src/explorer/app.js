// The block explorer every node serves at `/`: a page per view, chosen by the URL's hash
// (#/, #/block/H, #/tx/ID, #/account/ID), fed by the node's JSON API. Nothing from the API is
// ever parsed as HTML: every text goes in through textContent.

import * as verify from "./verify.js";

/// JSON with integers above 2^53 (a large balance, say) kept exact, as BigInt.
function parseJson(text) {
  return JSON.parse(text, (_key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && context?.source && /^\d+$/.test(context.source)
      ? BigInt(context.source)
      : value,
  );
}

const api = (path) =>
  fetch(`/api/v1${path}`).then(async (r) => {
    const body = await r.text().then(parseJson).catch(() => null);
    if (!r.ok) {
      const e = new Error(body?.error?.message ?? `HTTP ${r.status}`);
      e.status = r.status;
      throw e;
    }
    return body;
  });

/// An element with attributes and children (strings become text).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const short = (hex) => (hex ? `${hex.slice(0, 12)}…` : "—");
const time = (ms) => {
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? `${ms} ms` : d.toISOString().replace("T", " ").replace(".000Z", "Z");
};
const link = (href, text, title) => el("a", { href, ...(title ? { title } : {}) }, text);
const blockLink = (h) => link(`#/block/${h}`, h);
const txLink = (id) => link(`#/tx/${id}`, short(id), id);
const accountLink = (id) => link(`#/account/${id}`, short(id), id);

const main = () => document.getElementById("main");
let genesis = null;
let events = null;

async function theGenesis() {
  if (!genesis) genesis = await api("/genesis");
  return genesis;
}

function describe(tx) {
  const [kind, p] = Object.entries(tx.payload)[0];
  switch (kind) {
    case "transfer":
      return ["transfer ", String(p.amount), " to ", accountLink(p.to)];
    case "put_record":
      return ["record ", el("code", {}, p.key)];
    case "add_member":
      return [`make ${p.role} `, accountLink(p.account)];
    case "remove_member":
      return ["remove member ", accountLink(p.account)];
    default:
      return [kind];
  }
}

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows),
  );
}

function blockRow(b) {
  return el(
    "tr",
    { "data-height": String(b.height) },
    el("td", {}, blockLink(b.height)),
    el("td", { class: "mono" }, short(b.hash)),
    el("td", {}, time(b.timestamp_ms)),
    el("td", {}, String(b.tx_count)),
    el("td", { class: "mono" }, short(b.proposer)),
  );
}

async function header() {
  const s = await api("/status");
  document.getElementById("chain").textContent =
    `${s.chain_id} · ${s.consensus} · height ${s.height} · ${s.moniker} (${s.version})` +
    (s.ready ? "" : ` · not ready: ${s.not_ready.join("; ")}`);
  return s;
}

async function home() {
  const [s, page, validators, peers] = await Promise.all([
    header(),
    api("/blocks?limit=20"),
    api("/validators"),
    api("/peers"),
  ]);
  const body = el("tbody", {}, page.blocks.map(blockRow));
  const live = el("span", { class: "live", id: "live" }, "connecting…");
  main().replaceChildren(
    el("h2", {}, "Latest blocks ", live),
    el(
      "table",
      { id: "blocks" },
      el("thead", {}, el("tr", {}, ["Height", "Hash", "Time (UTC)", "Txs", "Proposer"].map((h) => el("th", {}, h)))),
      body,
    ),
    el("h2", {}, "Validators"),
    table(
      ["#", "Name", "Key", "Address", "Reachable"],
      validators.map((v) =>
        el(
          "tr",
          {},
          el("td", {}, String(v.index)),
          el("td", {}, v.name + (v.leader ? " (leader)" : "")),
          el("td", { class: "mono" }, short(v.public_key)),
          el("td", { class: "mono" }, v.address ?? "—"),
          el("td", {}, v.connected ? "connected" : "unreachable"),
        ),
      ),
    ),
    el("h2", {}, `Peers (${peers.length})`),
    table(
      ["Validator", "Key", "Address"],
      peers.map((p) =>
        el(
          "tr",
          {},
          el("td", {}, p.validator ?? "observer"),
          el("td", { class: "mono" }, short(p.public_key)),
          el("td", { class: "mono" }, p.address),
        ),
      ),
    ),
  );
  // Live: from the block after the newest shown, so none is missed or shown twice.
  const from = (page.blocks[0]?.height ?? s.height) + 1;
  events = new EventSource(`/api/v1/events?from_height=${from}`);
  events.onopen = () => (live.textContent = "live");
  events.onerror = () => (live.textContent = "reconnecting…");
  events.addEventListener("block", (m) => {
    const b = parseJson(m.data);
    if (body.querySelector(`tr[data-height="${b.height}"]`)) return;
    body.prepend(blockRow(b));
    while (body.children.length > 50) body.lastChild.remove();
    document.getElementById("chain").textContent = document
      .getElementById("chain")
      .textContent.replace(/height \d+/, `height ${b.height}`);
  });
}

function fields(pairs) {
  return el(
    "dl",
    {},
    pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
  );
}

/// Why the page cannot check anything here, if it cannot.
const NO_CRYPTO = () =>
  window.isSecureContext && crypto.subtle
    ? null
    : "cannot check in this page: browsers give Web Crypto only to pages served over https or from localhost";

function check(ok, text) {
  return el("li", { class: ok ? "ok" : "bad" }, `${ok ? "✓" : "✗"} ${text}`);
}

async function block(id) {
  const s = await header();
  const [v, g] = await Promise.all([api(`/blocks/${encodeURIComponent(id)}`), theGenesis()]);
  const h = v.block.header;
  const checks = el("ul", { id: "checks" }, el("li", {}, "checking in this page…"));
  main().replaceChildren(
    el("h2", {}, `Block ${v.height}`),
    el(
      "p",
      { class: "nav" },
      v.height > 1 ? link(`#/block/${v.height - 1}`, "← previous") : "",
      " ",
      v.height < s.height ? link(`#/block/${v.height + 1}`, "next →") : "",
    ),
    fields([
      ["Hash", el("span", { class: "mono" }, v.hash)],
      ["Previous", el("span", { class: "mono" }, h.prev_hash)],
      ["Time (UTC)", time(h.timestamp_ms)],
      ["Proposer", accountLink(h.proposer)],
      ["Round", String(h.round)],
      ["Transactions", String(h.tx_count)],
      ["Transaction root", el("span", { class: "mono" }, h.tx_root)],
      ["State root", el("span", { class: "mono" }, h.state_root)],
    ]),
    el("h3", {}, "Verified in this page"),
    checks,
    el("h3", {}, "Transactions"),
    table(
      ["#", "Id", "From", "Nonce", "What"],
      await Promise.all(
        v.block.txs.map(async (t, i) =>
          el(
            "tr",
            {},
            el("td", {}, String(i)),
            el("td", { class: "mono" }, NO_CRYPTO() ? "—" : txLink(await verify.txId(t.tx))),
            el("td", { class: "mono" }, accountLink(t.tx.sender)),
            el("td", {}, String(t.tx.nonce)),
            el("td", {}, describe(t.tx)),
          ),
        ),
      ),
    ),
  );
  if (NO_CRYPTO()) return checks.replaceChildren(check(false, NO_CRYPTO()));
  let r;
  try {
    const set = await verify.setFor(h.height, g, (e) => api(`/blocks/${e}`));
    r = await verify.verifyBlock(v, g, set);
  } catch (e) {
    checks.replaceChildren(check(false, `cannot check here: ${e.message}`));
    return;
  }
  const c = r.certificate;
  checks.replaceChildren(
    check(r.hashOk, "the header hashes to the block hash"),
    check(
      r.txRootOk,
      h.tx_count === 1
        ? "the transaction hashes to the header's transaction root"
        : `the ${h.tx_count} transactions hash to the header's transaction root`,
    ),
    check(r.chainOk, `the block is of chain ${g.chain_id}`),
    check(r.validatorsOk, "the header names the validator set in force, followed from the genesis"),
    r.linkOk === undefined ? null : check(r.linkOk, "block 1 links to the genesis"),
    c.ok
      ? check(
          true,
          c.kind === "pbft"
            ? `Certificate verified: ${c.signers.length} of ${c.n} validators signed (quorum ${c.quorum}) in view ${c.round}: ${c.signers.join(", ")}`
            : `Certificate verified: signed by the Raft leader ${c.signers[0]} in term ${c.round}`,
        )
      : check(false, `Certificate INVALID: ${c.why}`),
    el(
      "li",
      { class: "note" },
      "against the validators in force at this height, followed from the genesis this node serves through every boundary block below it; the genesis hash (computed in this page) is ",
      el("span", { class: "mono" }, await verify.genesisHash(g)),
      s.genesis_hash === (await verify.genesisHash(g)) ? "" : " — NOT the one its status names",
      ": compare it with the genesis hash you know.",
    ),
  );
}

async function tx(id) {
  await header();
  const v = await api(`/txs/${encodeURIComponent(id)}`);
  const parts = [
    ["Id", el("span", { class: "mono" }, v.id)],
    ["Status", v.status],
  ];
  if (v.tx) {
    parts.push(
      ["From", accountLink(v.tx.tx.sender)],
      ["Nonce", String(v.tx.tx.nonce)],
      ["What", describe(v.tx.tx)],
    );
  }
  if (v.receipt) {
    parts.push(
      ["Block", blockLink(v.receipt.height)],
      ["Position", String(v.receipt.index)],
      ["Time (UTC)", time(v.receipt.block_time_ms)],
    );
  }
  if (v.reason) parts.push(["Rejected", `${v.reason.code}: ${v.reason.message}`]);
  const checks = el("ul", { id: "checks" });
  main().replaceChildren(el("h2", {}, "Transaction"), fields(parts), checks);
  if (NO_CRYPTO()) {
    checks.replaceChildren(check(false, NO_CRYPTO()));
  } else if (v.receipt && v.proof && v.tx) {
    const b = await api(`/blocks/${v.receipt.height}`);
    const idOk = (await verify.txId(v.tx.tx)) === v.id;
    const proofOk =
      BigInt(v.proof.leaf_count) === BigInt(b.block.header.tx_count) &&
      (await verify.verifyProof(v.id, v.proof, b.block.header.tx_root));
    checks.replaceChildren(
      check(idOk, "the transaction hashes to its id"),
      check(proofOk, `inclusion proof verified against block ${v.receipt.height}'s transaction root`),
    );
  }
}

async function account(id) {
  await header();
  const [a, history, records, g] = await Promise.all([
    api(`/accounts/${encodeURIComponent(id)}?prove=true`),
    api(`/accounts/${encodeURIComponent(id)}/txs?limit=50`),
    api(`/accounts/${encodeURIComponent(id)}/records?limit=50`),
    theGenesis(),
  ]);
  const checks = el("ul", { id: "checks" }, el("li", {}, "checking in this page…"));
  main().replaceChildren(
    el("h2", {}, "Account"),
    fields([
      ["Id", el("span", { class: "mono" }, a.id)],
      ["Balance", String(a.balance)],
      ["Nonce", String(a.nonce)],
      ["Role", a.role ?? "none (not a member)"],
      ["As of height", String(a.height)],
    ]),
    el("h3", {}, "Verified in this page"),
    checks,
    el("h3", {}, "Transactions"),
    history.txs.length
      ? table(
          ["Block", "Id", "From", "What"],
          history.txs.map((t) =>
            el(
              "tr",
              {},
              el("td", {}, blockLink(t.height)),
              el("td", { class: "mono" }, txLink(t.id)),
              el("td", { class: "mono" }, accountLink(t.tx.tx.sender)),
              el("td", {}, describe(t.tx.tx)),
            ),
          ),
        )
      : el("p", {}, "none"),
    el("h3", {}, "Records"),
    records.records.length
      ? table(
          ["Key", "Value"],
          records.records.map((r) =>
            el("tr", {}, el("td", {}, el("code", {}, r.key)), el("td", {}, r.text ?? `0x${r.value}`)),
          ),
        )
      : el("p", {}, "none"),
  );
  if (NO_CRYPTO()) return checks.replaceChildren(check(false, NO_CRYPTO()));
  if (BigInt(a.height) === 0n) return checks.replaceChildren(el("li", {}, "nothing committed yet: no block to prove against"));
  try {
    const set = await verify.setFor(a.height, g, (e) => api(`/blocks/${e}`));
    const r = await verify.verifyAccount(a, id.toLowerCase(), g, set);
    checks.replaceChildren(
      r.ok
        ? check(true, `balance, nonce and role proved against block ${r.height}'s state root, whose certificate verifies against the validators in force`)
        : check(false, `account proof INVALID: ${r.why}`),
    );
  } catch (e) {
    checks.replaceChildren(check(false, `cannot check here: ${e.message}`));
  }
}

/// A search: a height, a transaction id, a block hash, or an account id.
async function search(q) {
  q = q.trim();
  if (/^\d+$/.test(q)) return (location.hash = `#/block/${q}`);
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(q)) {
    return show(el("p", { class: "bad" }, "Enter a height, or a transaction, block or account id (64 hex digits)."));
  }
  const id = q.replace(/^0x/, "").toLowerCase();
  for (const [path, view] of [
    [`/txs/${id}`, "tx"],
    [`/blocks/${id}`, "block"],
  ]) {
    try {
      await api(path);
      return (location.hash = `#/${view}/${id}`);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
  }
  location.hash = `#/account/${id}`;
}

function show(...nodes) {
  main().replaceChildren(...nodes);
}

async function route() {
  if (events) {
    events.close();
    events = null;
  }
  show(el("p", {}, "loading…"));
  try {
    const [, view, arg] = decodeURIComponent(location.hash).match(/^#\/(\w+)\/(.+)$/) ?? [];
    if (view === "block") await block(arg);
    else if (view === "tx") await tx(arg);
    else if (view === "account") await account(arg);
    else await home();
  } catch (e) {
    show(el("p", { class: "bad" }, e.status === 404 ? `Not found: ${e.message}` : `Error: ${e.message}`));
  }
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  search(e.target.elements.q.value).catch((err) => show(el("p", { class: "bad" }, err.message)));
});
window.addEventListener("hashchange", route);
// For tests and the curious: the checks, callable from the console.
window.cairnVerify = verify;
route();
