//! Committed reads, from a [`RocksReader`] on the reader threads: the explorer's pages, account
//! histories and records, event replay, and block sync answers. None of it passes through the
//! consensus task, so read load cannot delay ticks, elections or view changes.

use cairn_crypto::PublicKey;
use cairn_ledger::{BlockHash, ChainRead, Height, RocksReader, StoreError, TxId};

use crate::views::*;
use crate::wire::{self, SyncRequest, SyncResponse};

/// A block reference from a URL.
#[derive(Debug, Clone, Copy)]
pub enum BlockRef {
    /// By height.
    Height(Height),
    /// By hash.
    Hash(BlockHash),
}

fn internal(e: StoreError) -> ApiError {
    ApiError::internal(e)
}

/// A page of blocks, newest first, below `before` (from the tip if `None`).
pub fn blocks(
    r: &RocksReader,
    before: Option<Height>,
    limit: usize,
) -> Result<BlockPage, ApiError> {
    let tip = r.tip().map_err(internal)?.height;
    let top = before.map(|b| b.saturating_sub(1)).unwrap_or(tip).min(tip);
    let mut blocks = Vec::new();
    let mut h = top;
    while h >= 1 && blocks.len() < limit {
        match r.header(h).map_err(internal)? {
            Some(header) => blocks.push(BlockSummary::of_header(&header)),
            None => break,
        }
        h -= 1;
    }
    let next = blocks.last().map(|b| b.height).filter(|h| *h > 1);
    Ok(BlockPage { blocks, next })
}

/// Block events from `from` on, oldest first, at most `limit` (event replay).
pub fn range(r: &RocksReader, from: Height, limit: usize) -> Result<Vec<ChainEvent>, ApiError> {
    let tip = r.tip().map_err(internal)?.height;
    let mut out = Vec::new();
    let mut h = from.max(1);
    while h <= tip && out.len() < limit {
        let (Some(header), Some(txs)) = (
            r.header(h).map_err(internal)?,
            r.block_tx_ids(h).map_err(internal)?,
        ) else {
            break;
        };
        out.push(ChainEvent::Block {
            block: BlockSummary::of_header(&header),
            txs,
        });
        h += 1;
    }
    Ok(out)
}

/// One block with its certificate.
pub fn block(r: &RocksReader, at: BlockRef) -> Result<BlockView, ApiError> {
    let h = match at {
        BlockRef::Height(h) => h,
        BlockRef::Hash(hash) => r
            .height_of(&hash)
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found(format!("no block with hash {hash}")))?,
    };
    if h == 0 {
        return Err(ApiError::not_found(
            "height 0 is the genesis state, not a block: see GET /api/v1/status for its hash",
        ));
    }
    let not_found = || {
        let tip = r.tip().map(|t| t.height).unwrap_or(0);
        ApiError::not_found(format!("no block at height {h} (the tip is {tip})"))
    };
    let block = r.block(h).map_err(internal)?.ok_or_else(not_found)?;
    let certificate = r.certificate(h).map_err(internal)?.ok_or_else(not_found)?;
    Ok(BlockView {
        height: h,
        hash: block.hash(),
        block,
        certificate,
    })
}

/// A committed transaction with its receipt and inclusion proof, if it is committed.
pub fn committed_tx(r: &RocksReader, id: TxId) -> Result<Option<TxView>, ApiError> {
    let Some(loc) = r.tx_location(&id).map_err(internal)? else {
        return Ok(None);
    };
    let block = r
        .block(loc.height)
        .map_err(internal)?
        .ok_or_else(|| ApiError::internal("indexed transaction's block is missing"))?;
    Ok(Some(TxView {
        id,
        status: TxStatus::Committed,
        tx: block.txs.get(loc.index as usize).cloned(),
        receipt: Some(ReceiptView {
            height: loc.height,
            index: loc.index,
            block_hash: block.hash(),
            block_time_ms: block.header.timestamp_ms,
        }),
        proof: block.inclusion_proof(loc.index as usize),
        reason: None,
    }))
}

/// An account, read at one consistent tip.
pub fn account(r: &RocksReader, id: PublicKey) -> Result<AccountView, ApiError> {
    let (a, tip) = r.account_at_tip(&id).map_err(internal)?;
    Ok(AccountView {
        id,
        exists: a.is_some(),
        balance: a.as_ref().map_or(0, |a| a.balance),
        nonce: a.as_ref().map_or(0, |a| a.nonce),
        role: a.and_then(|a| a.role),
        height: tip.height,
    })
}

/// An account's committed transactions below `before`, newest first, from the account
/// index. A page ends on a block boundary (the cursor is a height), so it may hold a few more
/// than `limit`.
pub fn account_txs(
    r: &RocksReader,
    id: PublicKey,
    before: Option<Height>,
    limit: usize,
) -> Result<AccountTxPage, ApiError> {
    let tip = r.tip().map_err(internal)?.height;
    let below = before.unwrap_or(tip + 1).min(tip + 1);
    let found = r.account_txs(&id, below, limit).map_err(internal)?;
    // Whether anything is left below the page's last block.
    let next = match found.last() {
        Some(last)
            if !r
                .account_txs(&id, last.height, 1)
                .map_err(internal)?
                .is_empty() =>
        {
            Some(last.height)
        }
        _ => None,
    };
    let txs = found
        .into_iter()
        .map(|t| AccountTx {
            id: t.tx.id(),
            height: t.height,
            index: t.index,
            tx: t.tx,
        })
        .collect();
    Ok(AccountTxPage { txs, next })
}

/// A page of an account's records after `after`, in key order.
pub fn records(
    r: &RocksReader,
    owner: PublicKey,
    after: Option<&str>,
    limit: usize,
) -> Result<RecordPage, ApiError> {
    let mut found = r.records(&owner, after, limit + 1).map_err(internal)?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next = if more {
        found.last().map(|e| e.key.clone())
    } else {
        None
    };
    Ok(RecordPage {
        records: found
            .into_iter()
            .map(|e| RecordView::of(owner, e.key, &e.value))
            .collect(),
        next,
    })
}

/// One record.
pub fn record(r: &RocksReader, owner: PublicKey, key: &str) -> Result<RecordView, ApiError> {
    use cairn_ledger::StateView;
    match r.record(&owner, key).map_err(internal)? {
        Some(v) => Ok(RecordView::of(owner, key.to_string(), &v)),
        None => Err(ApiError::not_found(format!(
            "account {owner} has no record {key:?}"
        ))),
    }
}

/// Blocks with certificates from `req.from` on, for a peer: at most `SYNC_BLOCKS_MAX`, and
/// about half the largest response, so one answer always fits.
pub fn sync_response(r: &RocksReader, req: SyncRequest) -> Result<SyncResponse, StoreError> {
    let tip = r.tip()?.height;
    let last = tip.min(
        req.from
            .saturating_add(u64::from(req.max_blocks.min(wire::SYNC_BLOCKS_MAX)))
            .saturating_sub(1),
    );
    let mut blocks = Vec::new();
    let mut size = 0usize;
    let mut h = req.from.max(1);
    while h <= last {
        let (Some(b), Some(c)) = (r.block(h)?, r.certificate(h)?) else {
            break;
        };
        size += b.encoded_len() + 1024;
        if !blocks.is_empty() && size > wire::SYNC_RESPONSE_BYTES_MAX / 2 {
            break;
        }
        blocks.push((b, c));
        h += 1;
    }
    Ok(SyncResponse { tip, blocks })
}
