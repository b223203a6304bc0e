//! The API under slow and silent clients, on a real node: a stalled body is answered 408 and
//! closed, stalled headers and idle keep-alive connections are closed after the header
//! timeout, the concurrency limit holds node-wide, and other clients are served throughout.

mod common;

use std::time::{Duration, Instant};

use cairn_ledger::ConsensusKind;
use common::Net;
use std::io::{Read, Write};
use std::net::TcpStream;

/// A raw connection to node 0's API (plain blocking sockets: the test drives the bytes).
fn connect(net: &Net) -> TcpStream {
    let addr = net.nodes[0].api.trim_start_matches("http://").to_string();
    TcpStream::connect(addr).expect("connect")
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
fn until_closed(s: &mut TcpStream, within: Duration) -> (String, Duration) {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(t.elapsed());
        assert!(
            !left.is_zero(),
            "the connection stayed open for {within:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
}

const STALLED_POST: &[u8] = b"POST /api/v1/txs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"tx\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_clients_are_cut_off_while_others_are_served() {
    let mut net = Net::new(ConsensusKind::Raft, 1, 3);
    for line in [
        "header_timeout_ms = 2000",
        "body_timeout_ms = 1000",
        "wait_timeout_ms = 5000",
        "idle_timeout_ms = 10500",
        "max_concurrent_requests = 8",
    ] {
        net.configure(0, "api", line);
    }
    net.start_all().await;
    net.wait_ready().await;

    // Eight stalled bodies hold every request slot: a ninth request is turned away at once,
    // node-wide, with the JSON error shape.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = connect(&net);
        s.write_all(STALLED_POST).expect("write");
        stalled.push(s);
    }
    net.wait_for("the slots to fill", Duration::from_secs(5), || async {
        let (code, v) = net.get(0, "/api/v1/validators").await;
        code == 503 && v["error"]["code"] == "unavailable"
    })
    .await;
    // The body timeout frees them: each stalled request gets 408 and its connection closes.
    for mut s in stalled {
        let (answer, took) = until_closed(&mut s, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    let to = net.accounts[0].public_key();
    let (code, v) = net.submit(0, &net.transfer(1, 0, to, 1), true).await;
    assert_eq!(code, 200, "served again: {v}");

    // Stalled headers: closed after the header timeout, while another client is served.
    let mut half = connect(&net);
    half.write_all(b"GET /api/v1/status HTTP/1.1\r\nhost:")
        .expect("write");
    let (code, _) = net.get(0, "/api/v1/status").await;
    assert_eq!(code, 200);
    let (_, took) = until_closed(&mut half, Duration::from_secs(6));
    assert!(took < Duration::from_secs(5), "{took:?}");

    // An idle keep-alive connection: one request answered, then silence. Waiting for the next
    // request's headers is bounded by the header timeout too, so it closes after that;
    // meanwhile others are served.
    let mut idle = connect(&net);
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let (code, v) = net.submit(0, &net.transfer(1, 1, to, 1), true).await;
    assert_eq!(code, 200, "{v}");
    let (_, _) = until_closed(&mut idle, Duration::from_secs(20));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "closed after {took:?}, the header timeout is 2 s"
    );

    // A path that does not decode is a JSON error like any other.
    let mut raw = connect(&net);
    raw.write_all(b"GET /api/v1/accounts/%FF%FE HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("write");
    let (answer, _) = until_closed(&mut raw, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_path\""), "{answer}");
}
