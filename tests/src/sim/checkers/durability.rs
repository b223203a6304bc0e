//! Durability (DESIGN §9.3): what a node persisted gives back exactly the state its engine
//! built, and an honest engine restarts at exactly the height its own ledger holds (a ledger
//! never shrinks: a crash loses no committed block).

use std::fmt::Debug;

use cairn_consensus::DurableError;
use cairn_ledger::Height;

/// Node `node`'s keys loaded as `loaded`; the persisted ops built `model`.
pub(crate) fn layout<D: PartialEq + Debug>(
    node: usize,
    loaded: Result<D, DurableError>,
    model: &D,
) -> Result<D, String> {
    match loaded {
        Ok(d) if d == *model => Ok(d),
        Ok(d) => Err(format!(
            "durable layout: node {node} loaded {d:?}, persisted {model:?}"
        )),
        Err(e) => Err(format!(
            "durable layout: node {node}'s keys do not load: {e}"
        )),
    }
}

/// Node `node` restarted at height `resumed`; its ledger holds `held`.
pub(crate) fn resume(node: usize, resumed: Height, held: Height) -> Result<(), String> {
    if resumed == held {
        Ok(())
    } else {
        Err(format!(
            "durability: node {node} restarted at height {resumed}, its ledger holds {held}"
        ))
    }
}
