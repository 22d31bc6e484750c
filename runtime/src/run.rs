//! The main loop: one task owns the [`Daemon`] and turns it on timers and
//! signals; delivery and the operations endpoint run beside it.
//!
//! Turns: drain the ring buffer (every `drain_interval`), scan for
//! containers (every `rescan_interval`, and on the next drain turn after a
//! new cgroup appears below a kubepods root or a record comes from a
//! pending container), check the artifact for a change (every
//! `reload_check_interval`, and on SIGHUP), render the metrics (every
//! second). SIGTERM or SIGINT: a last drain, then delivery flushes what it
//! can and persists the rest to the disk queue, within the grace period.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::daemon::Daemon;
use crate::delivery::Delivery;
use crate::document::Document;
use crate::server::Shared;
use d4c_artifact::display::escape_control;

/// How long shutdown waits for delivery to flush.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Checks the artifact and configuration without touching the kernel: the
/// same [`crate::config::validate`] as [`run`], then the artifact read as
/// the daemon reads it. The error lists every configuration problem.
pub fn check(config: &Config) -> Result<String, String> {
    crate::config::validate(config)?;
    let (policy, _, _) = crate::load::load_configured(config).map_err(|e| e.to_string())?;
    Ok(format!(
        "artifact `{}`: policy {} revision {} (sha256 {}), compiled by {}, {}\nconfiguration: ok (delivery: {})",
        escape_control(&policy.path.display().to_string()),
        escape_control(&policy.name),
        policy.revision,
        policy.digest,
        escape_control(&policy.compiler),
        if policy.signed { "signature checked" } else { "unsigned" },
        crate::delivery::describe(&config.delivery),
    ))
}

/// Runs the daemon until SIGTERM or SIGINT. A configuration
/// [`crate::config::validate`] refuses is refused before anything starts.
pub fn run(config: Config) -> Result<(), String> {
    crate::config::validate(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(main_loop(config))
}

async fn main_loop(config: Config) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    shared.beat();
    let listener = crate::server::bind(config.listen).await?;
    tokio::spawn(crate::server::serve(listener, shared.clone()));
    let started = crate::facts::boot_ns();
    let delivery = Delivery::start(config.delivery.clone(), &config.state_dir).map_err(|e| e.to_string())?;
    let sender = delivery.sender();
    let description = crate::delivery::describe(&config.delivery);
    let (drain_every, scan_every, reload_every) =
        (config.drain_interval, config.rescan_interval, config.reload_check_interval);
    let mut daemon = Daemon::start(config)?;
    crate::memory::give_back();
    let to_enforcing_ms = crate::facts::boot_ns().saturating_sub(started) as f64 / 1e6;
    eprintln!("{}\n  started in  {to_enforcing_ms:.0} ms", daemon.report(&description));
    if !daemon.lsm() {
        tracing::warn!("the BPF LSM is not active: AUDIT ONLY, nothing is blocked and file operations are not seen");
    }
    shared.ready.store(true, Ordering::Relaxed);

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let mut drain_tick = tokio::time::interval(drain_every);
    let mut scan_tick = tokio::time::interval(scan_every);
    let mut reload_tick = tokio::time::interval(reload_every);
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    for tick in [&mut drain_tick, &mut scan_tick, &mut reload_tick, &mut metrics_tick] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut documents: Vec<Document> = Vec::new();
    loop {
        tokio::select! {
            _ = drain_tick.tick() => {
                daemon.drain(&mut documents);
                // A new cgroup (the watch, one non-blocking read) or a
                // pending container's record: scan now.
                if daemon.scan_due() {
                    daemon.scan();
                }
            }
            _ = scan_tick.tick() => daemon.scan(),
            _ = reload_tick.tick() => {
                if daemon.artifact_changed() {
                    let _ = daemon.reload(&mut documents);
                    crate::memory::give_back();
                }
            }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the artifact");
                let _ = daemon.reload(&mut documents);
                crate::memory::give_back();
            }
            _ = metrics_tick.tick() => {
                shared.set_metrics(crate::metrics::render(&daemon, &delivery.stats()));
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
        forward(&sender, &mut documents);
        shared.beat();
    }
    tracing::info!("shutting down: last drain, then delivery flushes");
    daemon.drain(&mut documents);
    // Execs and forks decided whose outcome has not come: reported as
    // decided (`event.outcome: unknown`), not lost.
    daemon.flush(&mut documents);
    forward(&sender, &mut documents);
    drop(sender);
    // The probes stay attached until the daemon exits: dropping them last
    // keeps enforcement for as long as possible.
    delivery.shutdown(SHUTDOWN_GRACE).await.map_err(|e| e.to_string())?;
    drop(daemon);
    Ok(())
}

/// Hands `documents` to delivery. A document it refuses (channel full, too
/// large, closed) is counted there, by class and reason, and is lost.
fn forward(sender: &crate::delivery::DocumentSender, documents: &mut Vec<Document>) {
    for document in documents.drain(..) {
        let _ = sender.try_send(document);
    }
}
