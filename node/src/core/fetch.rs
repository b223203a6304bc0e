//! Block sync as the core runs it: asking peers (what to ask and whom is [`super::sync`]'s
//! call), applying their answers through the one commit path, and serving their requests from
//! the store on the reader threads, never on the consensus task.

use std::collections::VecDeque;

use cairn_consensus::Input;
use cairn_crypto::{PublicKey, codec};
use cairn_p2p::RequestId;

use super::work::Work;
use crate::fatal::Fatal;
use crate::wire;

impl Work {
    pub(super) fn request_sync(&mut self) {
        let tip = self.chain.tip().height;
        let connected = self.net.connected();
        let Some((peer, req)) = self.sync.next_request(tip, &connected, self.clock.at) else {
            return;
        };
        if self.sync.start_run(tip, self.clock.at) {
            tracing::info!(
                height = tip,
                known = self.sync.known(),
                peer = %self.peer_name(&peer),
                "syncing: behind the peers, fetching blocks"
            );
        }
        match self.net.request(peer, codec::encode(&req)) {
            Ok(id) => self.sync.sent(id, peer, self.clock.at),
            Err(e) => tracing::debug!(error = %e, "cannot send a sync request"),
        }
    }

    /// A new connection: learn the peer's height (and catch up if behind) with a sync request.
    pub(super) fn probe(&mut self, peer: PublicKey) {
        if self.sync.in_flight() {
            return;
        }
        let req = wire::SyncRequest {
            from: self.chain.tip().height + 1,
            max_blocks: wire::SYNC_BLOCKS_MAX,
        };
        if let Ok(id) = self.net.request(peer, codec::encode(&req)) {
            self.sync.sent(id, peer, self.clock.at);
        }
    }

    pub(super) fn peer_name(&self, key: &PublicKey) -> String {
        match self.validators.iter().position(|k| k == key) {
            Some(i) => self.health.name(i).to_string(),
            None => key.to_string()[..12].to_string(),
        }
    }

    /// Answers a sync request from the store, on the reader threads.
    pub(super) fn serve_sync(&self, from: PublicKey, id: RequestId, bytes: &[u8]) {
        let req = match wire::decode_sync_request(bytes) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.net.report(from, format!("bad sync request: {e}"));
                return;
            }
        };
        // Busy: the asker times out and asks someone else.
        let Ok(permit) = self.serving.clone().try_acquire_owned() else {
            return;
        };
        let reader = self.reader.clone();
        let net = self.net.clone();
        // A full reader queue: the asker gets no answer and asks someone else.
        let _ = self.reads.try_spawn(move || {
            let _permit = permit;
            match crate::reads::sync_response(&reader, req) {
                Ok(resp) => {
                    let _ = net.respond(id, codec::encode(&resp));
                }
                Err(e) => tracing::warn!(error = %e, "cannot read blocks for a peer"),
            }
        });
    }

    /// Applies what a peer sent; returns the `Synced` inputs for the engine (PBFT signs the
    /// checkpoints it syncs through).
    pub(super) fn on_sync_response<M>(
        &mut self,
        from: PublicKey,
        request: u64,
        result: Result<Vec<u8>, String>,
    ) -> Result<Vec<Input<M>>, Fatal> {
        let now = self.clock.at;
        if !self.sync.answered(request) {
            return Ok(Vec::new());
        }
        let resp = match result.and_then(|b| {
            wire::decode_sync_response(&b).map_err(|e| {
                let _ = self.net.report(from, format!("bad sync response: {e}"));
                e.to_string()
            })
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(peer = %self.peer_name(&from), error = %e, "sync request failed");
                self.sync.failed();
                return Ok(Vec::new());
            }
        };
        let tip = self.chain.tip().height;
        self.sync
            .on_answer(from, resp.tip, resp.blocks.len(), tip, now);
        let mut inputs = Vec::new();
        let mut applied = 0;
        if resp.blocks.iter().any(|(b, _)| b.header.height > tip) && self.sync.start_run(tip, now) {
            tracing::info!(height = tip, peer_tip = resp.tip, peer = %self.peer_name(&from), "syncing: behind the peers, fetching blocks");
        }
        for (block, cert) in resp.blocks {
            if block.header.height <= self.chain.tip().height {
                continue;
            }
            match self.chain.apply_synced(block, cert, &mut self.admission)? {
                Ok(c) => {
                    applied += 1;
                    self.after_commit(c)?;
                    let t = self.chain.tip();
                    inputs.push(Input::Synced {
                        height: t.height,
                        tip: t.hash,
                    });
                }
                Err(why) => {
                    tracing::warn!(peer = %self.peer_name(&from), %why, "refused a synced block");
                    let _ = self
                        .net
                        .report(from, format!("bad block in sync response: {why}"));
                    self.sync.failed();
                    break;
                }
            }
        }
        if applied > 0 {
            if !self.sync.is_behind(self.chain.tip().height) {
                self.sync.engine_answered();
            }
            // More right away only if this answer helped; otherwise the next tick retries
            // (no tight loop against peers with nothing to give).
            self.request_sync();
        }
        Ok(inputs)
    }

    /// After sync: commits consensus held above the old tip, and validations it waited on.
    pub(super) fn after_sync<M>(&mut self) -> Result<Vec<Input<M>>, Fatal> {
        for c in self.chain.apply_held(&mut self.admission)? {
            self.after_commit(c)?;
        }
        let mut q = VecDeque::new();
        self.ready_validations(&mut q)?;
        Ok(q.into_iter().collect())
    }
}
