//! Bounded state: no honest replica retains more than its engine's stated bound
//! ([`Protocol::footprint_bound`](cairn_consensus::Protocol::footprint_bound)), whatever up to
//! f Byzantine validators and the network send. Also keeps the peak seen, for the report.

use cairn_consensus::Footprint;

use crate::sim::Peak;

/// Honest node `node` retains `now`; its engine states `bound`.
pub(crate) fn check(
    node: usize,
    now: Footprint,
    bound: Footprint,
    peak: &mut Peak,
) -> Result<(), String> {
    peak.absorb(Peak {
        messages: (now.messages, bound.messages),
        entries: (now.entries, bound.entries),
    });
    if now.within(&bound) {
        Ok(())
    } else {
        Err(format!(
            "bounds: node {node} retains {} messages and {} entries, above its bound of {} and {}",
            now.messages, now.entries, bound.messages, bound.entries
        ))
    }
}
