//! The `/metrics` page: the counters of [`Metrics`] plus gauges read from
//! live state at scrape time (partitions, log sizes and offsets, replica
//! health, coordinators).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::exposition::{Kind, Page};
use super::{ListenerConnections, Metrics, TopicCounters, LATENCY_BOUNDS_MS};
use crate::broker::Broker;
use crate::coordinator::group::state::GroupState;
use crate::log::PartitionLog;

/// How long a scrape waits for a coordinator shard busy with other work.
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn render(broker: &Arc<Broker>, shutting_down: bool) -> String {
    let groups = tokio::time::timeout(COORDINATOR_TIMEOUT, broker.groups.count_by_state()).await;
    let txns = tokio::time::timeout(COORDINATOR_TIMEOUT, broker.txns.count_by_state()).await;
    let m = &broker.metrics;
    let mut page = Page::default();

    page.family(
        "kafka_server_kafkaserver_brokerstate",
        Kind::Gauge,
        "Broker state as Kafka numbers it: 3 running, 7 shutting down.",
    );
    page.sample(
        "kafka_server_kafkaserver_brokerstate",
        &[],
        if shutting_down { 7 } else { 3 },
    );

    topic_metrics(&mut page, broker, m);
    request_metrics(&mut page, m);

    let purgatory = "kafka_server_delayedoperationpurgatory_purgatorysize";
    page.family(
        purgatory,
        Kind::Gauge,
        "Requests waiting: Produce for its flush (acks), Fetch for min_bytes (long poll).",
    );
    for (op, gauge) in [
        ("Produce", &m.produce_purgatory),
        ("Fetch", &m.fetch_purgatory),
    ] {
        page.sample(
            purgatory,
            &[("delayedOperation", op)],
            gauge.load(Relaxed).max(0) as f64,
        );
    }

    partition_metrics(&mut page, broker);
    cleaner_metrics(&mut page, broker);

    type Read = fn(&ListenerConnections) -> f64;
    let per_listener: [(&str, Kind, &str, Read); 2] = [
        (
            "kafka_server_socket_server_metrics_connection_count",
            Kind::Gauge,
            "Open client connections per listener.",
            |l| l.open.load(Relaxed).max(0) as f64,
        ),
        (
            "kafka_server_socket_server_metrics_connection_creation_total",
            Kind::Counter,
            "Client connections accepted per listener.",
            |l| l.created.load(Relaxed) as f64,
        ),
    ];
    for (family, kind, help, read) in per_listener {
        page.family(family, kind, help);
        for (name, l) in m.listener_names.iter().zip(m.listeners.iter()) {
            page.sample(family, &[("listener", name)], read(l));
        }
    }

    match groups {
        Ok(Ok(counts)) => group_metrics(&mut page, &counts),
        Ok(Err(code)) => tracing::debug!(code, "metrics: group counts unavailable"),
        Err(_) => tracing::warn!("metrics: group coordinator did not answer in time"),
    }
    match txns {
        Ok(Ok(counts)) => {
            let name = "runnel_transactions";
            page.family(
                name,
                Kind::Gauge,
                "Transactional ids known to the transaction coordinator, by transaction state.",
            );
            for (state, n) in counts {
                page.sample(name, &[("state", state.name())], n as f64);
            }
        }
        Ok(Err(code)) => tracing::debug!(code, "metrics: transaction counts unavailable"),
        Err(_) => tracing::warn!("metrics: transaction coordinator did not answer in time"),
    }
    page.finish()
}

fn topic_metrics(page: &mut Page, broker: &Broker, m: &Metrics) {
    let image = broker.metadata.image();
    let topics: Vec<(String, Arc<TopicCounters>)> = {
        let live =
            |id: &uuid::Uuid, name: &str| image.topic_by_id(id).is_some_and(|t| t.name == name);
        let map = m.topics.read();
        let stale = map.iter().any(|(id, (name, _))| !live(id, name));
        drop(map);
        if stale {
            // Kafka removes a deleted topic's meters.
            m.topics.write().retain(|id, (name, _)| live(id, name));
        }
        let mut v: Vec<_> = m
            .topics
            .read()
            .values()
            .map(|(name, c)| (name.clone(), c.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    type Field = fn(&TopicCounters) -> &std::sync::atomic::AtomicU64;
    let families: [(&str, &str, Field); 7] = [
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Bytes of record batches appended by Produce (Kafka BytesInPerSec).",
            |c| &c.bytes_in,
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Bytes of record batches returned by Fetch (Kafka BytesOutPerSec).",
            |c| &c.bytes_out,
        ),
        (
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records appended by Produce (Kafka MessagesInPerSec).",
            |c| &c.messages_in,
        ),
        (
            "kafka_server_brokertopicmetrics_totalproducerequests_total",
            "Partitions of Produce requests that reached the log.",
            |c| &c.produce_requests,
        ),
        (
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            "Partitions of Produce requests whose records were refused.",
            |c| &c.failed_produce_requests,
        ),
        (
            "kafka_server_brokertopicmetrics_totalfetchrequests_total",
            "Partitions of Fetch requests answered.",
            |c| &c.fetch_requests,
        ),
        (
            "kafka_server_brokertopicmetrics_failedfetchrequests_total",
            "Partitions of Fetch requests that failed unexpectedly.",
            |c| &c.failed_fetch_requests,
        ),
    ];
    for (name, help, field) in families {
        page.family(
            name,
            Kind::Counter,
            &format!("{help} Without a topic label: all topics."),
        );
        page.sample(name, &[], field(&m.all_topics).load(Relaxed) as f64);
        for (topic, c) in &topics {
            page.sample(name, &[("topic", topic)], field(c).load(Relaxed) as f64);
        }
    }
}

fn request_metrics(page: &mut Page, m: &Metrics) {
    let requests = "kafka_network_requestmetrics_requests_total";
    page.family(
        requests,
        Kind::Counter,
        "Requests answered, per API and version (Kafka RequestsPerSec).",
    );
    let mut version_text = String::new();
    for api in m.apis.iter() {
        for (v, n) in api.by_version.iter().enumerate() {
            let n = n.load(Relaxed);
            if n > 0 {
                version_text.clear();
                version_text.push_str(&v.to_string());
                page.sample(
                    requests,
                    &[("request", &api.name), ("version", &version_text)],
                    n as f64,
                );
            }
        }
    }
    let time = "kafka_network_requestmetrics_totaltimems";
    page.family(
        time,
        Kind::Histogram,
        "Time from reading a request to its response being ready, in ms, per API (Kafka TotalTimeMs; Fetch includes its long-poll wait).",
    );
    for api in m.apis.iter() {
        let counts: Vec<u64> = api
            .total_time
            .buckets
            .iter()
            .map(|b| b.load(Relaxed))
            .collect();
        if counts.iter().all(|c| *c == 0) {
            continue;
        }
        let sum_ms = api.total_time.sum_us.load(Relaxed) as f64 / 1000.0;
        page.histogram(
            time,
            &[("request", &api.name)],
            &LATENCY_BOUNDS_MS,
            &counts,
            sum_ms,
        );
    }
}

/// The replicas and in-sync replicas of a partition. One node: the
/// partition's only replica is this broker, in sync while its log is open.
fn replica_state(log: &PartitionLog) -> (usize, usize) {
    let replicas = 1;
    let in_sync = usize::from(!log.is_deleted());
    (replicas, in_sync)
}

/// A topic's `min.insync.replicas` (Kafka's default 1 unless overridden).
fn min_insync_replicas(overrides: Option<&indexmap::IndexMap<String, String>>) -> usize {
    overrides
        .and_then(|o| o.get("min.insync.replicas"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1)
}

fn partition_metrics(page: &mut Page, broker: &Broker) {
    let image = broker.metadata.image();
    let mut logs = broker.logs.all();
    logs.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let (mut under_replicated, mut under_min_isr, mut at_min_isr) = (0, 0, 0);
    for log in &logs {
        let (replicas, isr) = replica_state(log);
        let min_isr = min_insync_replicas(image.topic(&log.topic).map(|t| &t.overrides));
        under_replicated += usize::from(isr < replicas);
        under_min_isr += usize::from(isr < min_isr);
        at_min_isr += usize::from(isr == min_isr);
    }
    unlabelled(
        page,
        Kind::Gauge,
        [
            (
                "kafka_server_replicamanager_partitioncount",
                "Partitions on this broker, internal topics included.",
                logs.len() as f64,
            ),
            (
                "kafka_server_replicamanager_leadercount",
                "Partitions this broker leads.",
                logs.len() as f64,
            ),
            (
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Led partitions with fewer in-sync replicas than replicas.",
                under_replicated as f64,
            ),
            (
                "kafka_server_replicamanager_underminisrpartitioncount",
                "Led partitions with fewer in-sync replicas than min.insync.replicas.",
                under_min_isr as f64,
            ),
            (
                "kafka_server_replicamanager_atminisrpartitioncount",
                "Led partitions with exactly min.insync.replicas in-sync replicas.",
                at_min_isr as f64,
            ),
        ],
    );

    type Read = fn(&PartitionLog) -> f64;
    let per_partition: [(&str, &str, Read); 4] = [
        (
            "kafka_log_log_size",
            "Bytes of the partition's segments (Kafka Log Size).",
            |l| l.size_bytes() as f64,
        ),
        (
            "kafka_log_log_logendoffset",
            "The partition's log end offset.",
            |l| l.log_end_offset() as f64,
        ),
        (
            "kafka_log_log_logstartoffset",
            "The partition's log start offset.",
            |l| l.log_start_offset() as f64,
        ),
        (
            "kafka_log_log_numlogsegments",
            "Segments of the partition.",
            |l| l.segment_count() as f64,
        ),
    ];
    let mut partition_text = String::new();
    for (name, help, read) in per_partition {
        page.family(name, Kind::Gauge, help);
        for log in &logs {
            partition_text.clear();
            partition_text.push_str(&log.partition.to_string());
            page.sample(
                name,
                &[("topic", &log.topic), ("partition", &partition_text)],
                read(log),
            );
        }
    }
}

fn cleaner_metrics(page: &mut Page, broker: &Broker) {
    let stats = broker.logs.cleaner_stats();
    unlabelled(
        page,
        Kind::Counter,
        [
            (
                "runnel_log_cleaner_cleanings_total",
                "Partition cleanings that replaced at least one segment.",
                stats.cleanings as f64,
            ),
            (
                "runnel_log_cleaner_bytes_read_total",
                "Bytes the log cleaner read.",
                stats.bytes_read as f64,
            ),
            (
                "runnel_log_cleaner_bytes_written_total",
                "Bytes the log cleaner wrote.",
                stats.bytes_written as f64,
            ),
            (
                "runnel_log_cleaner_records_removed_total",
                "Records compaction removed (superseded values and expired tombstones).",
                stats.records_removed as f64,
            ),
            (
                "runnel_log_cleaner_failures_total",
                "Cleanings that failed with an I/O error.",
                stats.failures as f64,
            ),
        ],
    );
    let name = "kafka_log_logcleaner_max_clean_time_secs";
    page.family(
        name,
        Kind::Gauge,
        "Duration of the last cleaning, in seconds (one cleaner thread).",
    );
    page.sample(name, &[], stats.last_duration_ms as f64 / 1000.0);
    let name = "kafka_log_logcleanermanager_uncleanable_partitions_count";
    page.family(
        name,
        Kind::Gauge,
        "Partitions the log cleaner gave up on after a failed cleaning, until restart.",
    );
    let dir = broker.config.log_dir.to_string_lossy();
    page.sample(
        name,
        &[("logDirectory", &dir)],
        stats.uncleanable_partitions as f64,
    );
}

/// Families of one sample without labels each: (name, help, value).
fn unlabelled<const N: usize>(page: &mut Page, kind: Kind, families: [(&str, &str, f64); N]) {
    for (name, help, value) in families {
        page.family(name, kind, help);
        page.sample(name, &[], value);
    }
}

fn group_metrics(page: &mut Page, counts: &[(GroupState, usize)]) {
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let name = "kafka_coordinator_group_groupmetadatamanager_numgroups";
    page.family(name, Kind::Gauge, "Classic consumer groups.");
    page.sample(name, &[], total as f64);
    for state in GroupState::ALL {
        let n = counts
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .sum::<usize>();
        let name = format!(
            "kafka_coordinator_group_groupmetadatamanager_numgroups{}",
            format!("{state:?}").to_ascii_lowercase()
        );
        page.family(
            &name,
            Kind::Gauge,
            &format!("Classic consumer groups in state {state:?}."),
        );
        page.sample(&name, &[], n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_isr_comes_from_the_topic_override() {
        let mut o = indexmap::IndexMap::new();
        assert_eq!(min_insync_replicas(None), 1);
        assert_eq!(min_insync_replicas(Some(&o)), 1);
        o.insert("min.insync.replicas".to_owned(), "2".to_owned());
        assert_eq!(min_insync_replicas(Some(&o)), 2);
    }
}
