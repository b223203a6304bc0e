//! The threads that serve committed reads: explorer requests, event replays, and blocks for
//! peers that sync.
//!
//! Reads never run on the consensus task, and on the machines Cairn targets (two cores, shared)
//! that is not enough: a heavy read load still takes CPU time the consensus task needs. So
//! reads get their own few threads, at a lower scheduling priority (`nice` +10 on Linux, a
//! tenth or so of a normal thread's share under contention), fed by a bounded queue: when
//! consensus needs the CPU it gets it, and reads use what is left.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// How much lower than the node's other threads readers run (Linux `nice` steps).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// Why a read could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full (`try_run`) or the pool has stopped.
    #[error("the read queue is full or stopped")]
    Busy,
    /// The read panicked.
    #[error("the read failed")]
    Failed,
}

/// A handle on the read threads. Cheap to clone.
#[derive(Clone)]
pub struct ReadPool {
    jobs: mpsc::Sender<Job>,
}

impl ReadPool {
    /// Starts `threads` reader threads with a queue of `queue` reads.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<ReadPool> {
        let (jobs, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("cairn-read-{i}"))
                .spawn(move || {
                    // Per-thread on Linux: only this thread's priority changes.
                    let tid = rustix::thread::gettid();
                    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
                        tracing::debug!(error = %e, "cannot lower a reader thread's priority");
                    }
                    loop {
                        let job = match rx.lock() {
                            Ok(mut r) => r.blocking_recv(),
                            Err(_) => None,
                        };
                        match job {
                            Some(job) => job(),
                            None => return,
                        }
                    }
                })?;
        }
        Ok(ReadPool { jobs })
    }

    fn job<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> (Job, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        (job, rx)
    }

    /// Runs `f` on a reader thread, waiting for room in the queue.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (job, rx) = Self::job(f);
        self.jobs.send(job).await.map_err(|_| PoolError::Busy)?;
        rx.await.map_err(|_| PoolError::Failed)
    }

    /// Queues `f` if there is room, without waiting for it (serving peers: one that gets no
    /// answer asks another).
    pub fn try_spawn(&self, f: impl FnOnce() + Send + 'static) -> Result<(), PoolError> {
        self.jobs.try_send(Box::new(f)).map_err(|_| PoolError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_run_and_the_queue_is_bounded() {
        let pool = ReadPool::start(1, 1).expect("threads");
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
        // Hold the only thread, fill the one-slot queue: the next try is refused.
        let (hold, release) = std::sync::mpsc::channel::<()>();
        pool.try_spawn(move || {
            let _ = release.recv();
        })
        .expect("runs");
        // Wait until the thread took the holding job, then fill the queue.
        let mut queued = false;
        for _ in 0..100 {
            if pool.try_spawn(|| {}).is_ok() {
                queued = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(queued);
        assert_eq!(pool.try_spawn(|| {}), Err(PoolError::Busy));
        drop(hold);
        assert_eq!(pool.run(|| 1).await, Ok(1), "drains");
    }
}
