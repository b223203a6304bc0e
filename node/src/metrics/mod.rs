//! Prometheus metrics (`GET /metrics`): the node's own (`cairn_*`, cumulative counts as
//! `_total` counters), `cairn_build_info`, HTTP requests by route and status, and the
//! standard `process_*` metrics. Served in Prometheus' text format, or OpenMetrics to a
//! scraper that asks for it ([`exposition`]).

pub mod exposition;
mod process;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Labels of a metric family.
type Labels = Vec<(String, String)>;

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// Committed height.
    pub height: Gauge,
    /// Raft term or PBFT view.
    pub round: Gauge,
    /// 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
    pub role: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Pending transactions.
    pub mempool_txs: Gauge,
    /// Pending bytes.
    pub mempool_bytes: Gauge,
    /// Unverified transactions a Raft follower holds for the leader (bounded like the mempool).
    pub standby_txs: Gauge,
    /// Their bytes.
    pub standby_bytes: Gauge,
    /// Transactions waiting for signature verification.
    pub verify_queue: Gauge,
    /// API clients waiting for a transaction's outcome.
    pub waiters: Gauge,
    /// Committed blocks.
    pub blocks: Counter,
    /// Committed transactions.
    pub committed_txs: Counter,
    /// Rejected transactions by reason.
    pub rejected_txs: Family<Vec<(String, String)>, Counter>,
    /// Inputs the consensus engine refused, by reason (`cairn_consensus::Refusal`).
    pub consensus_refused: Family<Vec<(String, String)>, Counter>,
    /// Elections (Raft) or view changes (PBFT) seen.
    pub round_changes: Counter,
    /// Transaction signatures verified.
    pub verified_txs: Counter,
    /// Signatures per verification batch (larger batches cost less per signature).
    pub verify_batch: Histogram,
    /// Committed accounts the ledger holds in memory (bounded by `cairn_ledger::ACCOUNTS_KEPT`).
    pub cached_accounts: Gauge,
    /// Decoded public keys kept for verification (bounded by `cairn_crypto::KEYS_KEPT`).
    pub cached_keys: Gauge,
    /// Transactions remembered as verified (bounded by `admission::VERIFIED_KEPT`).
    pub verified_kept: Gauge,
    /// RocksDB's memtables, bytes (bounded by `storage.memtable_bytes` when set).
    pub store_memtables: Gauge,
    /// RocksDB's block cache, bytes (bounded by `storage.block_cache_bytes`).
    pub store_block_cache: Gauge,
    /// RocksDB's table readers outside the block cache, bytes.
    pub store_table_readers: Gauge,
    /// Compact blocks received with transactions this node did not hold, asked of their
    /// sender.
    pub compact_asks: Counter,
    /// Undecodable messages from peers.
    pub bad_messages: Counter,
    /// Gossiped transactions dropped because the verification queue was full.
    pub dropped_gossip: Counter,
    /// Inbound connections refused (key not allow-listed), from the network's count.
    pub refused_connections: Counter,
    /// Peers disconnected for sending oversized or undecodable data.
    pub misbehaving_peers: Counter,
    /// Links disconnected because their pings failed.
    pub dead_links: Counter,
    /// Direct (consensus) messages dropped before reaching a peer.
    pub failed_sends: Counter,
    /// Network events (messages, peer changes) dropped because the node's queue was full.
    pub dropped_network_events: Counter,
    /// Validators heard from in the last few seconds (this node included).
    pub heard_validators: Gauge,
    /// 1 when the node is ready, 0 when not.
    pub ready: Gauge,
    /// 1 while the node catches up by block sync.
    pub syncing: Gauge,
    /// HTTP requests answered, by route, method and status.
    pub http_requests: Family<Labels, Counter>,
    /// Time to answer an HTTP request (for the event stream: to open it), by route and method.
    pub http_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// Time between consecutive blocks.
    pub block_interval: Histogram,
    /// Admission here to commit, for transactions submitted to this node.
    pub commit_latency: Histogram,
}

fn buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
    .into_iter()
}

fn http_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
    ])
}

/// Raises a counter to a cumulative count kept elsewhere (the network's).
pub fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("cairn");
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            role: Gauge::default(),
            peers: Gauge::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            standby_txs: Gauge::default(),
            standby_bytes: Gauge::default(),
            verify_queue: Gauge::default(),
            waiters: Gauge::default(),
            blocks: Counter::default(),
            committed_txs: Counter::default(),
            rejected_txs: Family::default(),
            consensus_refused: Family::default(),
            round_changes: Counter::default(),
            verified_txs: Counter::default(),
            verify_batch: Histogram::new([1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]),
            cached_accounts: Gauge::default(),
            cached_keys: Gauge::default(),
            verified_kept: Gauge::default(),
            store_memtables: Gauge::default(),
            store_block_cache: Gauge::default(),
            store_table_readers: Gauge::default(),
            compact_asks: Counter::default(),
            bad_messages: Counter::default(),
            dropped_gossip: Counter::default(),
            refused_connections: Counter::default(),
            misbehaving_peers: Counter::default(),
            dead_links: Counter::default(),
            failed_sends: Counter::default(),
            dropped_network_events: Counter::default(),
            heard_validators: Gauge::default(),
            ready: Gauge::default(),
            syncing: Gauge::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            block_interval: Histogram::new(buckets()),
            commit_latency: Histogram::new(buckets()),
            registry: Registry::default(),
        };
        registry.register("height", "Committed block height", m.height.clone());
        registry.register("round", "Raft term or PBFT view", m.round.clone());
        registry.register(
            "role",
            "Consensus role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader",
            m.role.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register("mempool_txs", "Pending transactions", m.mempool_txs.clone());
        registry.register(
            "mempool_bytes",
            "Pending transaction bytes",
            m.mempool_bytes.clone(),
        );
        registry.register(
            "standby_txs",
            "Unverified transactions a Raft follower holds for the next leader (at most mempool.txs_max)",
            m.standby_txs.clone(),
        );
        registry.register(
            "standby_bytes",
            "Bytes of the standby's transactions (at most mempool.bytes_max)",
            m.standby_bytes.clone(),
        );
        registry.register(
            "verify_queue_txs",
            format!(
                "Transactions waiting for signature verification (at most {})",
                crate::core::admission::TO_VERIFY_MAX
            ),
            m.verify_queue.clone(),
        );
        registry.register(
            "waiters",
            format!(
                "API clients waiting for a transaction's outcome (at most {})",
                crate::core::waiters::WAITERS_MAX
            ),
            m.waiters.clone(),
        );
        registry.register("blocks", "Blocks committed", m.blocks.clone());
        registry.register(
            "committed_txs",
            "Transactions committed",
            m.committed_txs.clone(),
        );
        registry.register(
            "rejected_txs",
            "Transactions rejected, by reason",
            m.rejected_txs.clone(),
        );
        registry.register(
            "consensus_refused",
            "Messages and inputs the consensus engine refused, by reason",
            m.consensus_refused.clone(),
        );
        registry.register(
            "round_changes",
            "Elections (Raft) or view changes (PBFT)",
            m.round_changes.clone(),
        );
        registry.register(
            "verified_signatures",
            "Transaction signatures verified",
            m.verified_txs.clone(),
        );
        registry.register(
            "verification_batch_signatures",
            "Transaction signatures per verification batch (the larger, the cheaper each)",
            m.verify_batch.clone(),
        );
        registry.register(
            "cached_accounts",
            format!(
                "Committed accounts held in memory by the ledger (at most {})",
                cairn_ledger::ACCOUNTS_KEPT
            ),
            m.cached_accounts.clone(),
        );
        registry.register(
            "cached_keys",
            format!(
                "Decoded public keys kept for signature verification (at most {})",
                cairn_crypto::KEYS_KEPT
            ),
            m.cached_keys.clone(),
        );
        registry.register(
            "verified_txs_kept",
            format!(
                "Transactions remembered as verified, so a block carrying them is not verified again (at most {})",
                crate::core::admission::VERIFIED_KEPT
            ),
            m.verified_kept.clone(),
        );
        registry.register(
            "store_memtable_bytes",
            "RocksDB's memtables in bytes, all column families (at most storage.memtable_bytes when set, bar a flush in progress)",
            m.store_memtables.clone(),
        );
        registry.register(
            "store_block_cache_bytes",
            "RocksDB's block cache in bytes: data, index and filter blocks of every column family (at most storage.block_cache_bytes)",
            m.store_block_cache.clone(),
        );
        registry.register(
            "store_table_readers_bytes",
            "What RocksDB's open table files hold in memory outside the block cache, in bytes (its own estimate; grows with the number of table files)",
            m.store_table_readers.clone(),
        );
        registry.register(
            "compact_block_asks",
            "Blocks received as ids with transactions missing here, asked of their sender",
            m.compact_asks.clone(),
        );
        registry.register(
            "bad_peer_messages",
            "Undecodable messages from peers",
            m.bad_messages.clone(),
        );
        registry.register(
            "dropped_gossip_txs",
            "Gossiped transactions dropped because the verification queue was full",
            m.dropped_gossip.clone(),
        );
        registry.register(
            "p2p_refused_connections",
            "Inbound connections refused because the key is not allow-listed",
            m.refused_connections.clone(),
        );
        registry.register(
            "p2p_misbehaving_peers",
            "Peers disconnected for oversized or undecodable data",
            m.misbehaving_peers.clone(),
        );
        registry.register(
            "p2p_dead_links",
            "Links disconnected because their pings failed",
            m.dead_links.clone(),
        );
        registry.register(
            "p2p_failed_sends",
            "Direct (consensus) messages dropped: peer not connected, its queue full, or the write failed",
            m.failed_sends.clone(),
        );
        registry.register(
            "p2p_dropped_events",
            "Network events (messages, peer changes) dropped because the node's queue was full",
            m.dropped_network_events.clone(),
        );
        registry.register(
            "heard_validators",
            "Validators heard from in the last few seconds, this node included",
            m.heard_validators.clone(),
        );
        registry.register(
            "ready",
            "1 when the node is ready (synced, quorum heard, not stalled)",
            m.ready.clone(),
        );
        registry.register(
            "syncing",
            "1 while the node catches up by block sync",
            m.syncing.clone(),
        );
        registry.register(
            "build",
            "The software: version and the commit it was built from",
            Info::new(vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("commit".to_string(), env!("CAIRN_GIT_COMMIT").to_string()),
            ]),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (the event stream: to open it), by route and method",
            m.http_duration.clone(),
        );
        registry.register(
            "block_interval_seconds",
            "Time between consecutive committed blocks",
            m.block_interval.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "From admission on this node to commit",
            m.commit_latency.clone(),
        );
        Metrics {
            registry: root,
            ..m
        }
    }

    /// Counts an answered HTTP request.
    pub fn http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let label = |k: &str, v: &str| (k.to_string(), v.to_string());
        self.http_requests
            .get_or_create(&vec![
                label("route", route),
                label("method", method),
                label("status", &status.to_string()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&vec![label("route", route), label("method", method)])
            .observe(seconds);
    }

    /// Counts a verification batch by its results: the signatures checked are those of the
    /// transactions that passed the cheap checks before it (accepted, or refused for the
    /// signature itself).
    pub fn verified(
        &self,
        results: &[Result<cairn_ledger::VerifiedTransaction, cairn_ledger::TxRejection>],
    ) {
        let checked = results
            .iter()
            .filter(|r| matches!(r, Ok(_) | Err(cairn_ledger::TxRejection::BadSignature)))
            .count();
        if checked > 0 {
            self.verified_txs.inc_by(checked as u64);
            self.verify_batch.observe(checked as f64);
        }
    }

    /// Counts a rejection.
    pub fn rejected(&self, reason: &str) {
        self.rejected_txs
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// Every metric, in OpenMetrics or (by default) Prometheus' text format.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut s, &self.registry);
        if openmetrics {
            let _ = encode_eof(&mut s);
            s
        } else {
            exposition::to_text_format(&s)
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::TxRejection;

    #[test]
    fn a_batch_counts_only_the_signatures_it_checked() {
        let m = Metrics::new();
        m.verified(&[Err(TxRejection::BadSignature), Err(TxRejection::ZeroAmount)]);
        m.verified(&[Err(TxRejection::ZeroAmount)]);
        assert_eq!(m.verified_txs.get(), 1);
        let text = m.render(false);
        assert!(
            text.contains("cairn_verification_batch_signatures_count 1"),
            "{text}"
        );
    }
}
