//! The Prometheus metrics: the kernel's counters and per-program run time,
//! the userspace pipeline's counters, delivery's, and the mode the node
//! runs in (enforcing, or audit because the BPF LSM is off).

use d4c_kernel_probes::abi::COUNTER_NAMES;

use crate::daemon::Daemon;
use crate::delivery::stats::{DeliveryStatsSnapshot, DropReason};
use crate::document::Class;
use crate::server::Exposition;

/// The metrics text for `daemon` and delivery's `stats`.
pub fn render(daemon: &Daemon, stats: &DeliveryStatsSnapshot) -> String {
    let mut e = Exposition::default();
    let policy = daemon.policy();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    e.family(
        "d4c_bpf_lsm_active",
        "gauge",
        "1 when the BPF LSM runs on this kernel; 0: audit mode, nothing is blocked.",
    )
    .sample("d4c_bpf_lsm_active", &[], flag(daemon.lsm()));
    e.family("d4c_enforcing", "gauge", "1 when blocking responses refuse operations.").sample(
        "d4c_enforcing",
        &[],
        flag(daemon.lsm() && daemon.config().enforce),
    );
    e.family(
        "d4c_kubernetes_synced",
        "gauge",
        "1 when the Kubernetes API's pod list is in sync; 0 when off or not yet.",
    )
    .sample("d4c_kubernetes_synced", &[], flag(daemon.control_plane().kube_synced()));
    let revision = policy.revision.to_string();
    e.family("d4c_policy_info", "gauge", "The policy in force (labels), always 1.").sample(
        "d4c_policy_info",
        &[("name", &policy.name), ("revision", &revision), ("digest", &policy.digest)],
        1.0,
    );

    e.family(
        "d4c_kernel_events_total",
        "counter",
        "The probes' counters, by name (decisions, denied, events, dropped, truncated, pending, errors, internal).",
    );
    match daemon.kernel_counters() {
        Ok(values) => {
            for (name, value) in COUNTER_NAMES.iter().zip(values) {
                e.sample("d4c_kernel_events_total", &[("counter", name)], value as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read the probes' counters"),
    }
    e.family(
        "d4c_program_run_seconds_total",
        "counter",
        "Time each BPF program ran (needs kernel.bpf_stats_enabled=1).",
    );
    let stats_kernel = daemon.program_stats();
    for program in &stats_kernel {
        e.sample("d4c_program_run_seconds_total", &[("program", &program.name)], program.run_time_ns as f64 / 1e9);
    }
    e.family("d4c_program_runs_total", "counter", "Times each BPF program ran (needs kernel.bpf_stats_enabled=1).");
    for program in &stats_kernel {
        e.sample("d4c_program_runs_total", &[("program", &program.name)], program.run_count as f64);
    }

    let c = daemon.counters();
    let tallies = &daemon.pipeline().tallies;
    e.family("d4c_records_total", "counter", "Ring buffer records read, by event.");
    for (kind, n) in &tallies.records {
        e.sample("d4c_records_total", &[("kind", kind)], *n as f64);
    }
    e.family("d4c_documents_total", "counter", "ECS documents made, by dataset.");
    for (dataset, n) in &tallies.documents {
        e.sample("d4c_documents_total", &[("dataset", dataset)], *n as f64);
    }
    e.family("d4c_blocked_total", "counter", "Operations the kernel refused.").sample(
        "d4c_blocked_total",
        &[],
        tallies.blocked as f64,
    );
    e.family("d4c_inflight_decisions", "gauge", "Execs and forks decided and waiting for what became of them.").sample(
        "d4c_inflight_decisions",
        &[],
        daemon.pipeline().inflight.len() as f64,
    );
    e.family("d4c_containers", "gauge", "Containers registered with the kernel.").sample(
        "d4c_containers",
        &[],
        daemon.containers().len() as f64,
    );
    e.family(
        "d4c_containers_pending",
        "gauge",
        "Container cgroups found whose metadata is not yet known (fail closed).",
    )
    .sample("d4c_containers_pending", &[], daemon.control_plane().pending() as f64);
    e.family(
        "d4c_registration_window_seconds",
        "gauge",
        "From a container's cgroup (or its first pending event) to its registration: last and worst.",
    )
    .sample("d4c_registration_window_seconds", &[("which", "last")], c.registration_window_ns.0 as f64 / 1e9)
    .sample("d4c_registration_window_seconds", &[("which", "max")], c.registration_window_ns.1 as f64 / 1e9);
    e.family("d4c_processes_cached", "gauge", "Processes in the process cache.").sample(
        "d4c_processes_cached",
        &[],
        daemon.pipeline().processes.len() as f64,
    );
    e.family("d4c_reloads_total", "counter", "Artifact reloads, by outcome.")
        .sample("d4c_reloads_total", &[("outcome", "done")], c.reloads as f64)
        .sample("d4c_reloads_total", &[("outcome", "refused")], c.reloads_refused as f64)
        .sample("d4c_reloads_total", &[("outcome", "failed")], c.reloads_failed as f64);
    e.family(
        "d4c_bundle_errors_total",
        "counter",
        "Container bundles that could not be read or do not describe the container (it stays pending).",
    )
    .sample("d4c_bundle_errors_total", &[], c.bundle_errors as f64);
    e.family(
        "d4c_container_scan_failures_total",
        "counter",
        "Container scans that could not read the cgroup tree (the containers known were kept).",
    )
    .sample("d4c_container_scan_failures_total", &[], c.scan_failures as f64);
    e.family(
        "d4c_container_registration_failures_total",
        "counter",
        "Containers whose row could not be made, e.g. max_rows exhausted (they stay pending).",
    )
    .sample("d4c_container_registration_failures_total", &[], c.registration_failures as f64);
    e.family("d4c_log_suppressed_total", "counter", "Repeated log lines held back by the per-key rate limit.").sample(
        "d4c_log_suppressed_total",
        &[],
        daemon.control_plane().suppressed_logs() as f64,
    );

    e.family("d4c_delivery_documents_total", "counter", "Documents through delivery, by class and outcome.");
    for class in Class::ALL {
        for (outcome, counts) in
            [("accepted", stats.accepted), ("delivered", stats.delivered), ("dead_lettered", stats.dead_lettered)]
        {
            e.sample(
                "d4c_delivery_documents_total",
                &[("class", class.label()), ("outcome", outcome)],
                counts.get(class) as f64,
            );
        }
    }
    e.family("d4c_delivery_dropped_total", "counter", "Documents lost, by class and reason (userspace drops).");
    for reason in DropReason::ALL {
        let counts = stats.dropped(reason);
        for class in Class::ALL {
            e.sample(
                "d4c_delivery_dropped_total",
                &[("class", class.label()), ("reason", reason.label())],
                counts.get(class) as f64,
            );
        }
    }
    e.family("d4c_delivery_queue_records", "gauge", "Records in the disk queue not yet acknowledged.");
    for class in Class::ALL {
        e.sample("d4c_delivery_queue_records", &[("class", class.label())], stats.queue_records.get(class) as f64);
    }
    e.family("d4c_delivery_queue_bytes", "gauge", "Bytes of the disk queue.");
    for class in Class::ALL {
        e.sample("d4c_delivery_queue_bytes", &[("class", class.label())], stats.queue_bytes.get(class) as f64);
    }
    e.family("d4c_delivery_retries_total", "counter", "Documents sent again after a failed attempt.").sample(
        "d4c_delivery_retries_total",
        &[],
        stats.retried as f64,
    );
    e.family("d4c_bulk_request_duration_seconds", "histogram", "Elasticsearch bulk request latency.");
    for (le, count) in &stats.bulk_latency.buckets {
        let le = le.to_string();
        e.sample("d4c_bulk_request_duration_seconds_bucket", &[("le", &le)], *count as f64);
    }
    e.sample("d4c_bulk_request_duration_seconds_bucket", &[("le", "+Inf")], stats.bulk_latency.count as f64)
        .sample("d4c_bulk_request_duration_seconds_sum", &[], stats.bulk_latency.sum_seconds)
        .sample("d4c_bulk_request_duration_seconds_count", &[], stats.bulk_latency.count as f64);
    e.finish()
}
