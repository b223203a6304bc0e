//! The block explorer page, in a real headless Chromium against a real 4-node PBFT network:
//! what a person sees on each view, live blocks arriving without a reload, certificates and
//! inclusion proofs and account proofs checked in the page (and tampered ones refused),
//! lookups, and no HTML injected from chain data.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::Browser;
use cairn_ledger::{ConsensusKind, Payload, Transaction};
use common::Net;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_the_chain_live_and_checks_it_in_the_page() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 3);
    net.start_all().await;
    net.wait_ready().await;
    let receiver = net.accounts[2].public_key();
    let t1 = net.transfer(1, 0, receiver, 5);
    let (code, v) = net.submit(0, &t1, true).await;
    assert_eq!(code, 200, "{v}");
    let h1 = v["receipt"]["height"].as_u64().expect("height");
    let base = net.nodes[0].api.clone();

    let mut b = Browser::start().await;

    // Home: the chain, the latest blocks (live), the validators and the peers.
    b.open(&format!("{base}/#/")).await;
    let names: Vec<String> = net
        .genesis
        .validators
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let mut want = vec![
        "Latest blocks",
        "live",
        "Validators",
        "Peers (3)",
        net.genesis.chain_id.as_str(),
    ];
    want.extend(names.iter().map(String::as_str));
    b.wait_text(&want, WAIT).await;
    b.wait_true(
        &format!("!!document.querySelector('#blocks tr[data-height=\"{h1}\"]')"),
        WAIT,
    )
    .await;
    // A block committed after the page loaded appears without a reload.
    let t2 = net.transfer(1, 1, receiver, 6);
    let (code, v) = net.submit(1, &t2, true).await;
    assert_eq!(code, 200, "{v}");
    let h2 = v["receipt"]["height"].as_u64().expect("height");
    b.wait_true(
        &format!("!!document.querySelector('#blocks tr[data-height=\"{h2}\"]')"),
        WAIT,
    )
    .await;
    let png = b.screenshot().await;
    assert!(png.starts_with("iVBORw0KGgo"), "a PNG screenshot");

    // A block: its fields, and the checks the page made itself.
    b.open(&format!("{base}/#/block/{h1}")).await;
    let text = b
        .wait_text(
            &[
                &format!("Block {h1}"),
                "✓ the header hashes to the block hash",
                "✓ the transaction hashes to the header's transaction root",
                "✓ the header names the validator set in force, followed from the genesis",
                "✓ Certificate verified:",
                "validators signed (quorum 3)",
            ],
            WAIT,
        )
        .await;
    assert!(!text.contains('✗'), "{text}");
    assert!(
        text.contains(&net.genesis.hash().to_string()),
        "the genesis hash is shown whole"
    );
    if h1 == 1 {
        assert!(text.contains("✓ block 1 links to the genesis"), "{text}");
    }
    assert!(text.contains(&t1.id().to_string()[..12]), "{text}");

    // The page's checks refuse what is not right: a flipped vote signature, a changed header.
    let verdict = b
        .eval(&format!(
            "(async () => {{
                const v = await (await fetch('/api/v1/blocks/{h1}')).json();
                const g = await (await fetch('/api/v1/genesis')).json();
                const ok = await window.cairnVerify.verifyBlock(v, g);
                const sig = v.certificate.pbft.votes[0].signature;
                v.certificate.pbft.votes[0].signature = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
                const forged = await window.cairnVerify.verifyBlock(v, g);
                const w = await (await fetch('/api/v1/blocks/{h1}')).json();
                w.block.header.timestamp_ms += 1;
                const moved = await window.cairnVerify.verifyBlock(w, g);
                const x = await (await fetch('/api/v1/blocks/{h1}')).json();
                x.block.header.validators_hash = '00'.repeat(32);
                const otherSet = await window.cairnVerify.verifyBlock(x, g);
                return [ok.ok, forged.ok, forged.errors.join('; '), moved.ok, moved.hashOk,
                        otherSet.validatorsOk, otherSet.errors.join('; ')];
            }})()"
        ))
        .await;
    assert_eq!(verdict[0], true, "{verdict}");
    assert_eq!(verdict[1], false, "{verdict}");
    assert!(
        verdict[2]
            .as_str()
            .is_some_and(|e| e.contains("certificate")),
        "{verdict}"
    );
    assert_eq!((&verdict[3], &verdict[4]), (&false.into(), &false.into()));
    assert_eq!(verdict[5], false, "{verdict}");
    assert!(
        verdict[6]
            .as_str()
            .is_some_and(|e| e.contains("validator set other than the one in force")),
        "{verdict}"
    );

    // A transaction, with its inclusion proof checked in the page.
    b.open(&format!("{base}/#/tx/{}", t1.id())).await;
    b.wait_text(
        &[
            "committed",
            &format!("Block {h1}"),
            "✓ the transaction hashes to its id",
            &format!("✓ inclusion proof verified against block {h1}'s transaction root"),
        ],
        WAIT,
    )
    .await;

    // Search finds a transaction by id, and a height.
    b.open(&format!("{base}/#/")).await;
    b.wait_text(&["Latest blocks"], WAIT).await;
    let search = |q: String| {
        format!(
            "(() => {{ const f = document.getElementById('search'); f.elements.q.value = '{q}'; \
             f.requestSubmit(); return true; }})()"
        )
    };
    b.eval(&search(t2.id().to_string())).await;
    b.wait_true(&format!("location.hash === '#/tx/{}'", t2.id()), WAIT)
        .await;
    b.eval(&search(h2.to_string())).await;
    b.wait_true(&format!("location.hash === '#/block/{h2}'"), WAIT)
        .await;
    b.wait_text(&[&format!("Block {h2}"), "Verified in this page"], WAIT)
        .await;

    // An account: its balance as the API says, its history, its records shown as text even
    // when they look like HTML.
    let sender = net.accounts[1].public_key();
    let record = Transaction {
        chain_id: net.genesis.chain_id.clone(),
        sender,
        nonce: 2,
        payload: Payload::PutRecord {
            key: "note".into(),
            value: b"<b>bold</b><img src=x onerror=alert(1)>".to_vec(),
        },
    }
    .sign(&net.accounts[1]);
    let (code, v) = net.submit(0, &record, true).await;
    assert_eq!(code, 200, "{v}");
    let (_, acct) = net.get(0, &format!("/api/v1/accounts/{sender}")).await;
    let balance = acct["balance"].as_u64().expect("balance").to_string();
    b.open(&format!("{base}/#/account/{sender}")).await;
    b.wait_text(
        &[
            "Account",
            &format!("Balance {balance}"),
            "Nonce 3",
            &t1.id().to_string()[..12],
            "<b>bold</b><img src=x onerror=alert(1)>",
            "✓ balance, nonce and role proved against block",
        ],
        WAIT,
    )
    .await;
    // The page's proof check refuses a flipped sibling, another balance and another key.
    let verdict = b
        .eval(&format!(
            "(async () => {{
                const fresh = async () => (await fetch('/api/v1/accounts/{sender}?prove=true')).json();
                const g = await (await fetch('/api/v1/genesis')).json();
                const v = await fresh();
                const ok = await window.cairnVerify.verifyAccount(v, '{sender}', g, g.validators);
                const f = await fresh();
                const s = f.proof.proof.siblings[0];
                f.proof.proof.siblings[0] = (s[0] === '0' ? '1' : '0') + s.slice(1);
                const flipped = await window.cairnVerify.verifyAccount(f, '{sender}', g, g.validators);
                const r = await fresh();
                r.balance += 1;
                const richer = await window.cairnVerify.verifyAccount(r, '{sender}', g, g.validators);
                const o = await fresh();
                const other = await window.cairnVerify.verifyAccount(o, '{receiver}', g, g.validators);
                const m = await fresh();
                m.height += 1;
                const moved = await window.cairnVerify.verifyAccount(m, '{sender}', g, g.validators);
                return [ok.ok, flipped.ok, flipped.why, richer.ok, richer.why, other.ok, other.why,
                        moved.ok, moved.why];
            }})()"
        ))
        .await;
    assert_eq!(verdict[0], true, "{verdict}");
    assert_eq!(
        (&verdict[1], verdict[2].as_str()),
        (
            &false.into(),
            Some("the proof does not lead to the block's state root")
        ),
        "{verdict}"
    );
    assert_eq!(
        (&verdict[3], verdict[4].as_str()),
        (
            &false.into(),
            Some("the account shown is not the one proved")
        ),
        "{verdict}"
    );
    assert_eq!(
        (&verdict[5], verdict[6].as_str()),
        (&false.into(), Some("the proof is for another key")),
        "{verdict}"
    );
    assert_eq!(
        (&verdict[7], verdict[8].as_str()),
        (
            &false.into(),
            Some("the heights of the account, the proof and the block differ")
        ),
        "{verdict}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('main b, main img').length")
            .await,
        0,
        "chain data is never parsed as HTML"
    );

    // Something that is not there says so.
    b.open(&format!("{base}/#/block/999999")).await;
    b.wait_text(&["Not found"], WAIT).await;
}
