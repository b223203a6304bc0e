//! Bounded state: no store of an honest replica holds more than its engine's stated bound
//! ([`Protocol::footprint`](cairn_consensus::Protocol::footprint)), whatever up to f Byzantine
//! validators and the network send. Also keeps the peak seen, for the report.

use cairn_consensus::Held;

use crate::sim::Peak;

/// Honest node `node`'s stores hold `held`.
pub(crate) fn check(node: usize, held: &[Held], peak: &mut Peak) -> Result<(), String> {
    let sum = |entries: bool| {
        held.iter()
            .filter(|h| h.entries == entries)
            .fold((0, 0), |(c, b), h| (c + h.count, b + h.bound))
    };
    peak.absorb(Peak {
        messages: sum(false),
        entries: sum(true),
    });
    match held.iter().find(|h| h.count > h.bound) {
        None => Ok(()),
        Some(h) => Err(format!(
            "bounds: node {node} holds {} {}, above its bound of {}",
            h.count, h.what, h.bound
        )),
    }
}
