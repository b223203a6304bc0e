//! The wallet's exit codes and `--json` failures for what needs no running network: bad
//! input, a node that is not there, one that hangs, one that answers garbage, a local file
//! that cannot be written, a key that is not there. (Rejections by a real node, wrong
//! passphrases and failed verifications run against a real testnet in testnet/tests/e2e.rs.)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use cairn_cli::output::JsonFailure;

fn cairn(keystore: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--keystore")
        .arg(keystore)
        .args(args)
        .env_remove("CAIRN_NODE")
        .env_remove("CAIRN_PASSPHRASE")
        .env_remove("CAIRN_KEY")
        .env_remove("CAIRN_TIMEOUT")
        .output()
        .expect("run cairn")
}

/// Runs `cairn --json ARGS`, expects exit `code`, and returns the JSON failure it printed.
fn fails(keystore: &Path, args: &[&str], code: i32) -> JsonFailure {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = cairn(keystore, &all);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(code),
        "cairn {args:?}: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let f: JsonFailure = serde_json::from_str(&out).expect("a JSON failure on stdout");
    assert_eq!(i32::from(f.exit), code, "{f:?}");
    assert!(!f.error.message.is_empty());
    f
}

/// A server on 127.0.0.1 that answers every connection with `reply` (or holds it open, for
/// `None`), for the life of the test process.
fn server(reply: Option<&'static str>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            match reply {
                Some(r) => {
                    let _ = s.write_all(r.as_bytes());
                }
                None => held.push(s),
            }
        }
    });
    format!("http://{addr}")
}

/// `cairn sign PAYLOAD` with key `k`, nonce 0, chain `c`, into `out`.
fn sign<'a>(payload: &'a str, out: &'a str) -> [&'a str; 10] {
    [
        "sign",
        payload,
        "--nonce",
        "0",
        "--chain-id",
        "c",
        "--from",
        "k",
        "-o",
        out,
    ]
}

#[test]
fn each_failure_has_its_exit_code_and_json_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = dir.path().join("keys");
    let o = cairn(&ks, &["key", "new", "k", "--insecure-plaintext"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // 2: the user's input, before any node is asked.
    let f = fails(&ks, &["tx", "not-an-id"], 2);
    assert!(f.error.message.contains("64 hex digits"), "{f:?}");
    let f = fails(&ks, &["--node", "127.0.0.1:8000", "status"], 2);
    assert_eq!(f.error.code, "bad_address", "{f:?}");
    fails(&ks, &sign("{\"transfer\":{}}", "x"), 2);
    fails(&ks, &["--timeout", "0", "status"], 2);

    // 3: nothing listens; the cause is named.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let f = fails(&ks, &["--node", &closed, "status"], 3);
    assert_eq!(f.error.code, "unreachable", "{f:?}");
    assert!(f.error.message.contains("connection refused"), "{f:?}");

    // 3: a server that is not a Cairn node answers garbage with a 500 (once "error: error:", 1).
    let garbage = server(Some(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 7\r\nConnection: close\r\n\r\ngarbage",
    ));
    let f = fails(&ks, &["--node", &garbage, "status"], 3);
    assert_eq!(f.error.code, "not_cairn", "{f:?}");
    assert!(f.error.message.contains("garbage"), "{f:?}");
    let o = cairn(&ks, &["--node", &garbage, "status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && !err.contains("error: error"),
        "{err}"
    );
    // … or a 200 that is not the API's JSON.
    let html = server(Some(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\nConnection: close\r\n\r\n<html>",
    ));
    assert_eq!(
        fails(&ks, &["--node", &html, "status"], 3).error.code,
        "not_cairn"
    );

    // 7: a node that accepts and never answers.
    let silent = server(None);
    let f = fails(&ks, &["--node", &silent, "--timeout", "1", "status"], 7);
    assert_eq!(f.error.code, "timeout", "{f:?}");

    // 5: a key that is not in the keystore.
    let f = fails(&ks, &["key", "show", "nobody"], 5);
    assert!(f.error.message.contains("nobody"), "{f:?}");

    // 1: a local file that cannot be written.
    let f = fails(
        &ks,
        &sign(
            "{\"transfer\":{\"to\":\"k\",\"amount\":1}}",
            "/nonexistent-dir/tx.json",
        ),
        1,
    );
    assert!(
        f.error.message.contains("/nonexistent-dir/tx.json"),
        "{f:?}"
    );

    // 6: an unencrypted key file others can read is refused, with the fix.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = ks.join("k.json");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let f = fails(&ks, &["key", "export", "k"], 6);
        assert!(f.error.message.contains("chmod 600"), "{f:?}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    // 0: and what works, works: offline signing with a key name and a text value.
    let out = dir.path().join("tx.json");
    let o = cairn(
        &ks,
        &sign(
            "{\"put_record\":{\"key\":\"greeting\",\"text\":\"hello\"}}",
            out.to_str().expect("path"),
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tx: cairn_ledger::SignedTransaction =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("tx file")).expect("a tx");
    assert!(matches!(
        tx.tx.payload,
        cairn_ledger::Payload::PutRecord { ref key, ref value } if key == "greeting" && value == b"hello"
    ));
    // "value" is hex, as in the protocol's JSON: the same bytes.
    let hex_out = dir.path().join("tx-hex.json");
    let o = cairn(
        &ks,
        &sign(
            "{\"put_record\":{\"key\":\"greeting\",\"value\":\"68656c6c6f\"}}",
            hex_out.to_str().expect("path"),
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again: cairn_ledger::SignedTransaction =
        serde_json::from_str(&std::fs::read_to_string(&hex_out).expect("tx file")).expect("a tx");
    assert_eq!(again.tx, tx.tx);
    for both_or_none in [
        "{\"put_record\":{\"key\":\"k\",\"value\":\"00\",\"text\":\"x\"}}",
        "{\"put_record\":{\"key\":\"k\"}}",
        "{\"put_record\":{\"key\":\"k\",\"value\":\"hello\"}}",
    ] {
        fails(&ks, &sign(both_or_none, "y"), 2);
    }
    assert!(tx.verify_signature().is_ok());
}

#[test]
fn help_teaches_and_version_names_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = dir.path().join("keys");
    let o = cairn(&ks, &["--version"]);
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    // Built from a git checkout (as tests are), the version names its commit.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(commit) => assert!(v.contains(&format!("({commit})")), "{v} names {commit}"),
        None => assert!(v.starts_with("cairn ") && v.contains('('), "{v}"),
    }
    let o = cairn(&ks, &["transfer", "--help"]);
    let h = String::from_utf8_lossy(&o.stdout);
    assert!(
        h.contains("Example:") && h.contains("Global options:"),
        "{h}"
    );
    let o = cairn(&ks, &["completions", "bash"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("cairn"));
    let o = cairn(&ks, &["man"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(".TH cairn"));
}
