//! `cairn verify`: a block checked offline against the genesis.

use std::path::Path;

use cairn_api::BlockView;
use cairn_cli::verify::verify_block;
use cairn_ledger::Genesis;

use super::ctx::Ctx;
use super::fail::{INVALID, LOCAL, R, USAGE, fail};
use super::out::print;

/// Verifies a block given by height (fetched, with its parent) or as a file.
pub async fn run(ctx: &Ctx, which: &str, genesis_path: &Path) -> R<()> {
    let genesis = Genesis::load(genesis_path)
        .map_err(|e| fail(USAGE, format!("{}: {e}", genesis_path.display())))?;
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
            verify_block(&genesis, &p.block, &p.certificate, None)
                .map_err(|e| fail(INVALID, format!("INVALID parent block {}: {e}", h - 1)))?;
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
    let ok = verify_block(&genesis, &view.block, &view.certificate, parent)
        .map_err(|e| fail(INVALID, format!("INVALID: {e}")))?;
    let _ = LOCAL;
    print(ctx.json, &ok, |ok| {
        format!(
            "block {} {} is valid: {} transactions signed, tx root matches, {} certificate verifies against the genesis validators{}",
            ok.height,
            ok.hash,
            ok.txs,
            ok.certificate,
            if ok.parent_checked {
                ", links to its (certified) parent"
            } else {
                ""
            }
        )
    });
    Ok(())
}
