//! Liveness: after every fault heals, each honest node commits new blocks within a bound.

use cairn_ledger::Height;

/// Whether every honest node reached `target`; `Err` names the laggards' heights.
pub(crate) fn check(
    honest: &[usize],
    heights: &[Height],
    target: Height,
    ticks: u64,
) -> Result<(), String> {
    if heights.iter().all(|h| *h >= target) {
        Ok(())
    } else {
        Err(format!(
            "liveness: after healing, honest nodes {honest:?} reached heights {heights:?}, needed {target} within {ticks} ticks"
        ))
    }
}
