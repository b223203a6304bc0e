//! Client submissions between the handlers and the core: verified here, in batches, on the
//! blocking threads, then admitted by the core in one request per batch.
//!
//! Handlers only read and decode bodies. Each hands its transactions (one from `POST /txs`,
//! up to [`BATCH_TXS_MAX`] from `POST /txs/batch`) to the intake's queue, after taking its
//! share of [`INTAKE_TXS_MAX`]. The intake takes what is queued until it holds at least
//! [`INTAKE_BATCH_MAX`] transactions (one more submission may pass it), verifies the signatures in one
//! batch (ZIP-215: the same answer as one by one, at a fraction of the cost), and sends what
//! passed to the core as one `Request::Admit`. At most [`INTAKE_JOBS`] batches are in
//! flight; what arrives meanwhile waits and joins the next one, so the busier the node, the
//! larger and cheaper its batches. The queue is bounded: a full queue is a 503 at once.
//!
//! So the core sees one event per batch, not one per transaction, and no signature is
//! checked on the consensus task or on the async threads.

use std::sync::Arc;

use cairn_api::BATCH_TXS_MAX;
use cairn_ledger::{SignedTransaction, verify_transactions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::core::{Admit, Request};
use crate::metrics::Metrics;
use crate::views::ApiError;

/// Batches verified and admitted at once (the machine has few cores; the core needs one).
pub const INTAKE_JOBS: usize = 2;
/// Most transactions verified in one batch.
pub const INTAKE_BATCH_MAX: usize = 2 * BATCH_TXS_MAX;
/// Submissions (requests, not transactions) queued for the intake.
pub const INTAKE_QUEUE: usize = 1024;
/// Transactions the intake holds at once, queued or being verified and admitted. A
/// submission takes its share before it is queued and gives it back once answered, even if
/// its client has gone: so what clients send, or abandon, cannot grow the node's memory.
pub const INTAKE_TXS_MAX: usize = 16 * BATCH_TXS_MAX;
/// How long a submission waits for that share before it is told 503.
const INTAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a submission gets back: one answer per transaction, in order.
pub type Answers = Vec<Result<Admit, ApiError>>;

struct Job {
    txs: Vec<SignedTransaction>,
    wait: bool,
    reply: oneshot::Sender<Answers>,
    /// Its share of [`INTAKE_TXS_MAX`], given back when the job is dropped.
    _slots: OwnedSemaphorePermit,
}

/// The handlers' side of the intake.
#[derive(Clone)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
    slots: Arc<Semaphore>,
}

impl Intake {
    /// Starts the intake task; it ends when every handle is dropped.
    pub fn start(
        requests: mpsc::Sender<Request>,
        chain_id: String,
        metrics: Arc<Metrics>,
    ) -> Intake {
        let (jobs, rx) = mpsc::channel(INTAKE_QUEUE);
        tokio::spawn(run(rx, requests, chain_id.into(), metrics));
        Intake {
            jobs,
            slots: Arc::new(Semaphore::new(INTAKE_TXS_MAX)),
        }
    }

    /// Verifies and admits `txs`; with `wait`, each admitted one comes with a receiver of its
    /// final outcome.
    pub async fn submit(
        &self,
        txs: Vec<SignedTransaction>,
        wait: bool,
    ) -> Result<Answers, ApiError> {
        let busy = || {
            ApiError::unavailable("the node is verifying as many submissions as it can hold; retry")
        };
        let n = u32::try_from(txs.len().clamp(1, BATCH_TXS_MAX)).map_err(|_| busy())?;
        let slots = tokio::time::timeout(INTAKE_WAIT, self.slots.clone().acquire_many_owned(n))
            .await
            .map_err(|_| busy())?
            .map_err(|_| ApiError::unavailable("the node is shutting down"))?;
        let (reply, rx) = oneshot::channel();
        self.jobs
            .try_send(Job {
                txs,
                wait,
                reply,
                _slots: slots,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => busy(),
                mpsc::error::TrySendError::Closed(_) => {
                    ApiError::unavailable("the node is shutting down")
                }
            })?;
        rx.await
            .map_err(|_| ApiError::unavailable("the node is shutting down"))
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    requests: mpsc::Sender<Request>,
    chain_id: Arc<str>,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(INTAKE_JOBS));
    loop {
        // A free slot first, then everything that queued while none was free.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut count = first.txs.len();
        let mut jobs = vec![first];
        while count < INTAKE_BATCH_MAX {
            match rx.try_recv() {
                Ok(j) => {
                    count += j.txs.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let (requests, chain_id, metrics) = (requests.clone(), chain_id.clone(), metrics.clone());
        tokio::spawn(async move {
            verify_and_admit(jobs, &requests, chain_id, &metrics).await;
            drop(slot);
        });
    }
}

async fn verify_and_admit(
    mut jobs: Vec<Job>,
    requests: &mpsc::Sender<Request>,
    chain_id: Arc<str>,
    metrics: &Metrics,
) {
    let mut all = Vec::new();
    let mut shape = Vec::with_capacity(jobs.len());
    for j in &mut jobs {
        shape.push(j.txs.len());
        all.append(&mut j.txs);
    }
    let n = all.len();
    let verified =
        match tokio::task::spawn_blocking(move || verify_transactions(all, &chain_id)).await {
            Ok(v) => v,
            Err(e) => {
                let err = ApiError::internal(format!("signature verification failed: {e}"));
                let fill = (0..n).map(|_| Err(err.clone())).collect();
                deliver(jobs, &shape, fill);
                return;
            }
        };
    metrics.verified(&verified);
    // What passed goes to the core in one request, each with its job's wait flag.
    let mut to_admit = Vec::new();
    let mut answers: Vec<Option<Result<Admit, ApiError>>> = Vec::with_capacity(n);
    let mut results = verified.into_iter();
    for (j, len) in jobs.iter().zip(&shape) {
        for r in results.by_ref().take(*len) {
            match r {
                Ok(tx) => {
                    to_admit.push((tx, j.wait));
                    answers.push(None);
                }
                Err(reason) => {
                    metrics.rejected(reason.code());
                    answers.push(Some(Err(ApiError::rejected(&reason))));
                }
            }
        }
    }
    let admitted = if to_admit.is_empty() {
        Ok(Vec::new())
    } else {
        let (reply, rx) = oneshot::channel();
        match requests
            .send(Request::Admit {
                txs: to_admit,
                reply,
            })
            .await
        {
            Ok(()) => rx
                .await
                .map_err(|_| ApiError::unavailable("the node is shutting down")),
            Err(_) => Err(ApiError::unavailable("the node is shutting down")),
        }
    };
    let mut admitted = match admitted {
        Ok(a) => a.into_iter(),
        Err(e) => {
            // The core is gone: every transaction that passed gets the same answer.
            let fill: Vec<_> = answers
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Err(e.clone())))
                .collect();
            deliver(jobs, &shape, fill);
            return;
        }
    };
    let fill: Vec<_> = answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                admitted
                    .next()
                    .unwrap_or_else(|| Err(ApiError::internal("the core answered too few")))
            })
        })
        .collect();
    deliver(jobs, &shape, fill);
}

/// Hands each job its slice of the answers.
fn deliver(jobs: Vec<Job>, shape: &[usize], answers: Vec<Result<Admit, ApiError>>) {
    let mut answers = answers.into_iter();
    for (j, len) in jobs.into_iter().zip(shape) {
        let mine: Answers = answers.by_ref().take(*len).collect();
        let _ = j.reply.send(mine);
    }
}
