//! `cairn verify`: a block checked against the genesis and the validator set in force at its
//! height, followed from the genesis through the epoch boundaries below it (PROTOCOL.md §8).

use std::path::Path;

use cairn_api::BlockView;
use cairn_cli::verify::{Trail, verify_block};
use cairn_ledger::Genesis;

use super::ctx::Ctx;
use super::fail::{INVALID, LOCAL, R, USAGE, fail};
use super::out::print;

/// Verifies a block given by height (fetched, with its parent) or as a file.
pub async fn run(ctx: &Ctx, which: &str, genesis_path: &Path) -> R<()> {
    let genesis = Genesis::load(genesis_path)
        .map_err(|e| fail(USAGE, format!("{}: {e}", genesis_path.display())))?;
    let mut trail = Trail::new(&genesis);
    let (view, parent) = if let Ok(h) = which.parse::<u64>() {
        let v = ctx.client.block(&h.to_string()).await?;
        if v.block.header.height != h {
            return Err(fail(
                INVALID,
                format!("INVALID: the node answered with another height than {h}"),
            ));
        }
        let parent = if h == 1 {
            Some(genesis.hash())
        } else {
            // The parent comes from the same node: it must prove itself too.
            let p = ctx.client.block(&(h - 1).to_string()).await?;
            if p.block.header.height != h - 1 {
                return Err(fail(INVALID, "INVALID: the parent has the wrong height"));
            }
            follow(ctx, &mut trail, h - 1).await?;
            let set = trail.set_at(h - 1).map_err(|e| fail(INVALID, e))?;
            verify_block(&genesis, set, &p.block, &p.certificate, None)
                .map_err(|e| fail(INVALID, format!("INVALID parent block {}: {e}", h - 1)))?;
            if trail.boundaries_below(h) == [h - 1] {
                trail
                    .follow(&p.block.header, &p.certificate)
                    .map_err(|e| fail(INVALID, format!("INVALID: {e}")))?;
            }
            Some(p.block.hash())
        };
        (v, parent)
    } else {
        let text =
            std::fs::read_to_string(which).map_err(|e| fail(USAGE, format!("{which}: {e}")))?;
        let v: BlockView = serde_json::from_str(&text).map_err(|e| {
            fail(
                INVALID,
                format!("{which}: not a block as `cairn block --json` prints it: {e}"),
            )
        })?;
        let parent = (v.block.header.height == 1).then(|| genesis.hash());
        (v, parent)
    };
    let height = view.block.header.height;
    follow(ctx, &mut trail, height).await?;
    let set = trail.set_at(height).map_err(|e| fail(INVALID, e))?;
    let ok = verify_block(&genesis, set, &view.block, &view.certificate, parent)
        .map_err(|e| fail(INVALID, format!("INVALID: {e}")))?;
    let _ = LOCAL;
    print(ctx.json, &ok, |ok| {
        let set = if ok.validators_since == 0 {
            "the genesis validators".to_string()
        } else {
            format!(
                "the {} validators in force since height {} (followed from the genesis)",
                ok.validators, ok.validators_since
            )
        };
        format!(
            "block {} {} is valid: {} transactions signed, tx root matches, {} certificate verifies against {set}{}{}",
            ok.height,
            ok.hash,
            ok.txs,
            ok.certificate,
            if ok.parent_checked {
                ", links to its (certified) parent"
            } else {
                ""
            },
            match ok.announces_validators {
                Some(n) => format!("; it announces a new set of {n} validators"),
                None => String::new(),
            }
        )
    });
    Ok(())
}

/// Fetches and follows every epoch boundary block below `height` not followed yet: each is
/// checked against the set before it, so the node serving them need not be trusted.
pub(super) async fn follow(ctx: &Ctx, trail: &mut Trail, height: u64) -> R<()> {
    for e in trail.boundaries_below(height) {
        let b = ctx.client.block(&e.to_string()).await?;
        trail
            .follow(&b.block.header, &b.certificate)
            .map_err(|why| fail(INVALID, format!("INVALID: {why}")))?;
    }
    Ok(())
}
