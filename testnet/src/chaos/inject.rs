//! Putting the nemesis's faults on the real processes and links, and taking them off.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use cairn_api::client::Client;

use super::load::Load;
use super::nemesis::Fault;
use crate::procs::{home_of, pid_of, signal, start, stop, wait_gone};
use crate::{State, faults};

/// Records that node `i` lost its memory (mempool, connections) now.
fn lost(load: &Load, restarts: &mut Vec<(usize, Duration)>, i: usize) {
    restarts.push((i, load.began.elapsed()));
    if let Ok(mut l) = load.lives.lock() {
        l[i] += 1;
    }
}

fn set_up(load: &Load, i: usize, up: bool) {
    if let Ok(mut u) = load.up.lock() {
        u[i] = up;
    }
}

fn kill(dir: &Path, st: &State, i: usize) -> anyhow::Result<()> {
    let node = &st.nodes[i];
    if let Some(pid) = pid_of(dir, &node.name) {
        signal(pid, "KILL")?;
        wait_gone(pid, &home_of(dir, &node.name));
        let _ = std::fs::remove_file(dir.join(&node.name).join("pid"));
    }
    Ok(())
}

fn sig(dir: &Path, st: &State, i: usize, s: &str) -> anyhow::Result<()> {
    let node = &st.nodes[i];
    let pid = pid_of(dir, &node.name).ok_or_else(|| anyhow!("{} is not running", node.name))?;
    signal(pid, s)
}

/// Puts `fault` on the network.
pub async fn inject(
    dir: &Path,
    st: &State,
    load: &Load,
    fault: &Fault,
    restarts: &mut Vec<(usize, Duration)>,
) -> anyhow::Result<()> {
    let n = st.nodes.len();
    match fault {
        Fault::Kill(v) => {
            for &i in v {
                set_up(load, i, false);
                kill(dir, st, i)?;
                lost(load, restarts, i);
            }
        }
        Fault::Pause(v) => {
            for &i in v {
                sig(dir, st, i, "STOP")?;
            }
        }
        Fault::Cut { cut, .. } => faults::apply_cut(&st.hosts, n, cut)?,
        Fault::Loss(p) => {
            let links: Vec<_> = (0..n)
                .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| ((a, b), *p)))
                .collect();
            faults::apply_loss(&st.hosts, n, &links)?;
        }
        Fault::Delay(ms) => faults::apply_delay(&st.hosts, n, *ms)?,
        Fault::Clock { node, offset_s } => {
            set_up(load, *node, false);
            stop(dir, &st.nodes[*node])?;
            lost(load, restarts, *node);
            let lib = super::faketime_lib().context("libfaketime is not installed")?;
            let env = [
                ("LD_PRELOAD", lib.display().to_string()),
                ("FAKETIME", format!("{offset_s:+}s")),
                // Timers and timeouts keep the real monotonic clock: only the wall clock lies.
                ("DONT_FAKE_MONOTONIC", "1".to_string()),
            ];
            start(dir, &st.hosts, &st.nodes[*node], &env)?;
            set_up(load, *node, true);
        }
    }
    Ok(())
}

/// Takes `fault` off the network.
pub async fn undo(
    dir: &Path,
    st: &State,
    load: &Load,
    fault: &Fault,
    restarts: &mut Vec<(usize, Duration)>,
) -> anyhow::Result<()> {
    let n = st.nodes.len();
    match fault {
        Fault::Kill(v) => {
            for &i in v {
                start(dir, &st.hosts, &st.nodes[i], &[])?;
                set_up(load, i, true);
            }
        }
        Fault::Pause(v) => {
            for &i in v {
                sig(dir, st, i, "CONT")?;
            }
        }
        Fault::Cut { .. } => faults::apply_cut(&st.hosts, n, &Default::default())?,
        Fault::Loss(_) => faults::apply_loss(&st.hosts, n, &[])?,
        Fault::Delay(_) => faults::apply_delay(&st.hosts, n, 0)?,
        Fault::Clock { node, .. } => {
            set_up(load, *node, false);
            stop(dir, &st.nodes[*node])?;
            lost(load, restarts, *node);
            start(dir, &st.hosts, &st.nodes[*node], &[])?;
            set_up(load, *node, true);
        }
    }
    Ok(())
}

/// Whatever the nemesis left: every node running on the real clock and not paused, no
/// partition, loss or delay.
pub async fn heal_all(
    dir: &Path,
    st: &State,
    load: &Load,
    restarts: &mut Vec<(usize, Duration)>,
) -> anyhow::Result<()> {
    let n = st.nodes.len();
    // Without iptables no partition or loss was put on, and there is nothing to take off.
    if st.hosts.namespace(0).is_some() && faults::iptables_available() {
        faults::apply_cut(&st.hosts, n, &Default::default())?;
        faults::apply_loss(&st.hosts, n, &[])?;
        if faults::netem_available() {
            faults::apply_delay(&st.hosts, n, 0)?;
        }
        // A partition set by hand before the run is gone too; `status` must not show it.
        faults::forget(dir);
    }
    for (i, node) in st.nodes.iter().enumerate() {
        match pid_of(dir, &node.name) {
            Some(pid) => {
                let _ = signal(pid, "CONT");
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                if environ
                    .split(|b| *b == 0)
                    .any(|v| v.starts_with(b"FAKETIME="))
                {
                    stop(dir, node)?;
                    lost(load, restarts, i);
                    start(dir, &st.hosts, node, &[])?;
                }
            }
            None => {
                // Down on its own: whatever it acknowledged may be gone, as after a kill.
                lost(load, restarts, i);
                start(dir, &st.hosts, node, &[])?;
            }
        }
        set_up(load, i, true);
    }
    Ok(())
}

/// Waits until every node answers with the same height and head and an empty mempool, twice
/// in a row; `false` if `within` passes first.
pub async fn converge(clients: &[Client], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut agreed_once = false;
    while Instant::now() < deadline {
        let mut views = Vec::new();
        for c in clients {
            match c.status().await {
                Ok(s) => views.push(s),
                Err(_) => break,
            }
        }
        let agreed = views.len() == clients.len()
            && views.iter().all(|v| {
                v.height == views[0].height
                    && v.head_hash == views[0].head_hash
                    && v.mempool_txs == 0
            });
        if agreed && agreed_once {
            return true;
        }
        agreed_once = agreed;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Waits, up to `within`, until node `i` answers and has reached the height the highest other
/// node had when it answered, so that the next fault does not land while it is still catching
/// up (which would take more nodes away than the step says). `false` if it did not.
pub async fn rejoin(st: &State, i: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let quick: Vec<Client> = st
        .nodes
        .iter()
        .filter_map(|nd| Client::new(&nd.api(), Duration::from_millis(800)).ok())
        .collect();
    let Some(me) = quick.get(i) else {
        return false;
    };
    let mut target = None;
    while Instant::now() < deadline {
        if let Ok(s) = me.status().await {
            let want = match target {
                Some(t) => t,
                None => {
                    let mut best = 0;
                    for (j, c) in quick.iter().enumerate() {
                        if j != i
                            && let Ok(o) = c.status().await
                        {
                            best = best.max(o.height);
                        }
                    }
                    *target.insert(best)
                }
            };
            if s.height >= want {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
