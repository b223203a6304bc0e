//! A typed client of the node API (feature `client`), and an event stream that survives a
//! node restart: it reconnects with `Last-Event-ID`, so no block is missed or repeated.

use std::time::Duration;

use cairn_crypto::PublicKey;
use cairn_ledger::{Height, SignedTransaction, TxId};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorBody};
use crate::sse::SseReader;
use crate::types::*;

/// Why a call did not return what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node's address is not a URL this client can use.
    #[error("{node:?} is not a node address: {reason}")]
    BadAddress {
        /// The address as given.
        node: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered: the cause as the system gave it (name resolution, refused…).
    #[error("cannot reach the node at {node}: {cause}")]
    Unreachable {
        /// The address.
        node: String,
        /// Why, in words.
        cause: String,
    },
    /// No answer in time; a submission may still have been taken.
    #[error("the node at {node} did not answer within {seconds} s")]
    Timeout {
        /// The address.
        node: String,
        /// The time allowed.
        seconds: u64,
    },
    /// The node answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The answer is not the API's: a wrong address, or a broken node.
    #[error("the answer of {node} is not a Cairn node's (HTTP {status}): {detail}")]
    NotCairn {
        /// The address.
        node: String,
        /// HTTP status.
        status: u16,
        /// What did not fit.
        detail: String,
    },
}

/// A node's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

/// How the cause of a failed connection reads for people: the innermost error's words.
fn cause(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    let mut words = e.to_string();
    while let Some(s) = inner.source() {
        words = s.to_string();
        inner = s;
    }
    if words.contains("failed to lookup address") || words.contains("Name or service not known") {
        format!("the name does not resolve ({words})")
    } else if words.contains("Connection refused") {
        "nothing listens there (connection refused)".into()
    } else {
        words
    }
}

impl Client {
    /// A client of the node at `base` (`http://host:port`); each call may take `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Client, ClientError> {
        let bad = |reason: &str| ClientError::BadAddress {
            node: base.to_string(),
            reason: reason.to_string(),
        };
        let url = reqwest::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "this client speaks plain HTTP only (no TLS): reach the node over http://, \
                     through an SSH tunnel or a local proxy",
                ));
            }
            _ => return Err(bad("it must start with http://")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        let http = reqwest::Client::builder()
            // Below the node's header timeout (10 s), which also closes idle kept-alive
            // connections: reusing one the node is closing fails the request.
            .pool_idle_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http,
            timeout,
        })
    }

    /// The node's address.
    pub fn node(&self) -> &str {
        &self.base
    }

    fn fail(&self, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                node: self.base.clone(),
                seconds: self.timeout.as_secs(),
            }
        } else {
            ClientError::Unreachable {
                node: self.base.clone(),
                cause: cause(&e),
            }
        }
    }

    async fn answer<T: DeserializeOwned>(&self, r: reqwest::Response) -> Result<T, ClientError> {
        let status = r.status().as_u16();
        let bytes = r.bytes().await.map_err(|e| self.fail(e))?;
        let not_cairn = |detail: String| ClientError::NotCairn {
            node: self.base.clone(),
            status,
            detail,
        };
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| not_cairn(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(ClientError::Api(ApiError::new(
                status,
                b.error.code,
                b.error.message,
            ))),
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let head: String = text.chars().take(120).collect();
                Err(not_cairn(format!(
                    "an error without the API's shape: {head:?}"
                )))
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.fail(e))?;
        self.answer(r).await
    }

    /// `GET /api/v1/snapshots`.
    pub async fn snapshots(&self) -> Result<SnapshotList, ClientError> {
        self.get("/api/v1/snapshots").await
    }

    /// `GET /api/v1/snapshots/{height}`: a manifest (check it before use).
    pub async fn snapshot_manifest(
        &self,
        height: Height,
    ) -> Result<cairn_ledger::snapshot::SnapshotManifest, ClientError> {
        self.get(&format!("/api/v1/snapshots/{height}")).await
    }

    /// `GET /api/v1/snapshots/{height}/chunks/{index}`: a chunk's bytes, at most `max` of
    /// them (a peer cannot make this read more).
    pub async fn snapshot_chunk(
        &self,
        height: Height,
        index: u32,
        max: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let mut r = self
            .http
            .get(format!(
                "{}/api/v1/snapshots/{height}/chunks/{index}",
                self.base
            ))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.fail(e))?;
        if !r.status().is_success() {
            return self.answer(r).await;
        }
        let mut out = Vec::new();
        while let Some(piece) = r.chunk().await.map_err(|e| self.fail(e))? {
            if out.len() + piece.len() > max {
                return Err(ClientError::NotCairn {
                    node: self.base.clone(),
                    status: 200,
                    detail: format!("a snapshot chunk of more than {max} bytes"),
                });
            }
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get("/api/v1/status").await
    }

    /// `GET /ready`: the readiness view, or `not_ready` with the reasons (HTTP 503).
    pub async fn ready(&self) -> Result<ReadyView, ClientError> {
        self.get("/ready").await
    }

    /// `GET /api/v1/blocks`: newest first, below `before`.
    pub async fn blocks(
        &self,
        before: Option<Height>,
        limit: usize,
    ) -> Result<BlockPage, ClientError> {
        let mut path = format!("/api/v1/blocks?limit={limit}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        self.get(&path).await
    }

    /// `GET /api/v1/blocks/{height or hash}`.
    pub async fn block(&self, id: &str) -> Result<BlockView, ClientError> {
        self.get(&format!("/api/v1/blocks/{}", escape(id))).await
    }

    /// `GET /api/v1/txs/{id}`.
    pub async fn tx(&self, id: &TxId) -> Result<TxView, ClientError> {
        self.get(&format!("/api/v1/txs/{id}")).await
    }

    /// `POST /api/v1/txs[?wait=commit]`: 202 pending, or with `wait` the committed view.
    pub async fn submit(&self, tx: &SignedTransaction, wait: bool) -> Result<TxView, ClientError> {
        let path = if wait {
            "/api/v1/txs?wait=commit"
        } else {
            "/api/v1/txs"
        };
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(self.timeout)
            .json(tx)
            .send()
            .await
            .map_err(|e| self.fail(e))?;
        self.answer(r).await
    }

    /// `POST /api/v1/txs/batch` (`?wait=commit` with `wait`): up to
    /// [`BATCH_TXS_MAX`](crate::BATCH_TXS_MAX) transactions in the binary encoding, one
    /// answer each.
    pub async fn submit_batch(
        &self,
        txs: &[SignedTransaction],
        wait: bool,
    ) -> Result<BatchAnswer, ClientError> {
        let path = if wait {
            "/api/v1/txs/batch?wait=commit"
        } else {
            "/api/v1/txs/batch"
        };
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(cairn_crypto::codec::encode(txs))
            .send()
            .await
            .map_err(|e| self.fail(e))?;
        self.answer(r).await
    }

    /// `GET /api/v1/accounts/{id}`.
    pub async fn account(&self, id: &PublicKey) -> Result<AccountView, ClientError> {
        self.get(&format!("/api/v1/accounts/{id}")).await
    }

    /// `GET /api/v1/accounts/{id}?prove=true`: with the proof against a certified block.
    pub async fn account_proved(&self, id: &PublicKey) -> Result<AccountView, ClientError> {
        self.get(&format!("/api/v1/accounts/{id}?prove=true")).await
    }

    /// `GET /api/v1/accounts/{id}/txs`.
    pub async fn account_txs(
        &self,
        id: &PublicKey,
        before: Option<Height>,
        limit: usize,
    ) -> Result<AccountTxPage, ClientError> {
        let mut path = format!("/api/v1/accounts/{id}/txs?limit={limit}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        self.get(&path).await
    }

    /// `GET /api/v1/accounts/{id}/records`.
    pub async fn records(
        &self,
        owner: &PublicKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, ClientError> {
        let mut path = format!("/api/v1/accounts/{owner}/records?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={}", escape(a)));
        }
        self.get(&path).await
    }

    /// `GET /api/v1/accounts/{id}/records/{key}`.
    pub async fn record(&self, owner: &PublicKey, key: &str) -> Result<RecordView, ClientError> {
        self.get(&format!("/api/v1/accounts/{owner}/records/{}", escape(key)))
            .await
    }

    /// `GET /api/v1/accounts/{owner}/records/{key}?prove=true`.
    pub async fn record_proved(
        &self,
        owner: &PublicKey,
        key: &str,
    ) -> Result<RecordView, ClientError> {
        self.get(&format!(
            "/api/v1/accounts/{owner}/records/{}?prove=true",
            escape(key)
        ))
        .await
    }

    /// `GET /api/v1/genesis`: the node's word for it; check its hash before trusting it.
    pub async fn genesis(&self) -> Result<cairn_ledger::Genesis, ClientError> {
        self.get("/api/v1/genesis").await
    }

    /// `GET /api/v1/validators`.
    pub async fn validators(&self) -> Result<Vec<ValidatorView>, ClientError> {
        self.get("/api/v1/validators").await
    }

    /// `GET /api/v1/validators/changes`.
    pub async fn validator_changes(&self) -> Result<ValidatorChangesView, ClientError> {
        self.get("/api/v1/validators/changes").await
    }

    /// `GET /api/v1/peers`.
    pub async fn peers(&self) -> Result<Vec<PeerView>, ClientError> {
        self.get("/api/v1/peers").await
    }

    /// Opens the event stream from `last_seen + 1` (`from_height` for a first connection).
    async fn connect_events(
        &self,
        from_height: Option<Height>,
        last_seen: Option<Height>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = match from_height {
            Some(h) => format!("{}/api/v1/events?from_height={h}", self.base),
            None => format!("{}/api/v1/events", self.base),
        };
        let mut req = self.http.get(url);
        if let Some(h) = last_seen {
            req = req.header("last-event-id", h.to_string());
        }
        let r = req.send().await.map_err(|e| self.fail(e))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(self
                .answer::<serde_json::Value>(r)
                .await
                .err()
                .unwrap_or(ClientError::NotCairn {
                    node: self.base.clone(),
                    status: 0,
                    detail: "the event stream was refused".into(),
                }))
        }
    }

    /// Chain events from `from_height` (or from the next block), then live, for as long as
    /// the stream is read. A dropped connection (a node restart, say) is reopened after a
    /// pause that doubles up to `retry_max` and starts over once an event arrives, resuming
    /// after the last block seen: blocks come once each, in order. Without `from_height`,
    /// blocks committed during an outage before the first event are not replayed (the
    /// stream does not know where it started): pass the height to start from to get them.
    /// An error the node answers with ends the stream.
    pub fn events(
        &self,
        from_height: Option<Height>,
        retry_max: Duration,
    ) -> impl Stream<Item = Result<Event, ClientError>> + use<> {
        /// The shortest pause between attempts.
        const PAUSE_MIN: Duration = Duration::from_millis(250);
        struct State {
            client: Client,
            from_height: Option<Height>,
            last: Option<Height>,
            body: Option<futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>>,
            sse: SseReader,
            ready: std::collections::VecDeque<Event>,
            pause: Duration,
            retry_max: Duration,
            outage: bool,
            connected_once: bool,
            done: bool,
        }
        let state = State {
            client: self.clone(),
            from_height,
            last: None,
            body: None,
            sse: SseReader::default(),
            ready: Default::default(),
            pause: PAUSE_MIN,
            retry_max: retry_max.max(PAUSE_MIN),
            outage: false,
            connected_once: false,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(ev) = s.ready.pop_front() {
                    return Some((Ok(ev), s));
                }
                if s.done {
                    return None;
                }
                let Some(body) = s.body.as_mut() else {
                    // After a block was seen, Last-Event-ID says where to resume.
                    let from = if s.last.is_some() {
                        None
                    } else {
                        s.from_height
                    };
                    // Every attempt but the first waits: a node that accepts and at once
                    // closes the stream must not be asked again in a tight loop.
                    if s.connected_once {
                        tokio::time::sleep(s.pause).await;
                        s.pause = (s.pause * 2).min(s.retry_max);
                    }
                    s.connected_once = true;
                    match s.client.connect_events(from, s.last).await {
                        Ok(r) => {
                            if s.outage {
                                s.outage = false;
                                s.ready.push_back(Event::Reconnected);
                            }
                            s.sse = SseReader::default();
                            s.body = Some(r.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed());
                        }
                        Err(ClientError::Api(e)) if e.status != 503 => {
                            s.done = true;
                            return Some((Err(ClientError::Api(e)), s));
                        }
                        Err(e) => {
                            if !s.outage {
                                s.outage = true;
                                s.ready.push_back(Event::Disconnected(e.to_string()));
                            }
                        }
                    }
                    continue;
                };
                let why = match body.next().await {
                    Some(Ok(chunk)) => match s.sse.push(&chunk) {
                        Err(e) => e.to_string(),
                        Ok(events) => {
                            for data in events {
                                let Ok(ev) = serde_json::from_str::<ChainEvent>(&data) else {
                                    continue;
                                };
                                // The stream works: the next outage starts with short pauses.
                                s.pause = PAUSE_MIN;
                                if let Some(h) = ev.height() {
                                    if s.last.is_some_and(|l| h <= l) {
                                        continue;
                                    }
                                    s.last = Some(h);
                                }
                                s.ready.push_back(Event::Chain(ev));
                            }
                            continue;
                        }
                    },
                    Some(Err(e)) => format!("the stream broke: {e}"),
                    None => "the node closed the stream".to_string(),
                };
                s.body = None;
                s.outage = true;
                s.ready.push_back(Event::Disconnected(why));
            }
        })
    }
}

/// What [`Client::events`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chain event.
    Chain(ChainEvent),
    /// The connection dropped (or could not be made); the stream keeps trying.
    Disconnected(String),
    /// The stream is back, resuming after the last block seen.
    Reconnected,
}

/// A URL path segment or query value with everything but unreserved characters escaped.
pub fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
