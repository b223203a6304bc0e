//! Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
    /// Committed blocks.
    pub blocks: Counter,
    /// Committed transactions.
    pub committed_txs: Counter,
    /// Rejected transactions by reason.
    pub rejected_txs: Family<Vec<(String, String)>, Counter>,
    /// Elections (Raft) or view changes (PBFT) seen.
    pub round_changes: Counter,
    /// Transaction signatures verified.
    pub verified_txs: Counter,
    /// Undecodable messages from peers.
    pub bad_messages: Counter,
    /// Gossiped transactions dropped because the verification queue was full.
    pub dropped_gossip: Counter,
    /// Inbound connections refused (key not allow-listed), from the network.
    pub refused_connections: Gauge,
    /// Peers disconnected for sending oversized or undecodable data.
    pub misbehaving_peers: Gauge,
    /// Links disconnected because their pings failed.
    pub dead_links: Gauge,
    /// Validators heard from in the last few seconds (this node included).
    pub heard_validators: Gauge,
    /// 1 when the node is ready, 0 when not.
    pub ready: Gauge,
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

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            role: Gauge::default(),
            peers: Gauge::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            blocks: Counter::default(),
            committed_txs: Counter::default(),
            rejected_txs: Family::default(),
            round_changes: Counter::default(),
            verified_txs: Counter::default(),
            bad_messages: Counter::default(),
            dropped_gossip: Counter::default(),
            refused_connections: Gauge::default(),
            misbehaving_peers: Gauge::default(),
            dead_links: Gauge::default(),
            heard_validators: Gauge::default(),
            ready: Gauge::default(),
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
            "block_interval_seconds",
            "Time between consecutive committed blocks",
            m.block_interval.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "From admission on this node to commit",
            m.commit_latency.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a rejection.
    pub fn rejected(&self, reason: &str) {
        self.rejected_txs
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
