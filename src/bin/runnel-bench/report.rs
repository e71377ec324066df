//! Summaries over runs (median, min, max), the Markdown report and the JSON
//! file. JSON is written by hand: the bench adds no serialisation crate.

use std::fmt::Write as _;

use crate::broker::Machine;
use crate::workload::{GroupRun, Latency, Throughput, TxnRun};

/// Median, min and max of one measurement over the runs; runs where it
/// could not be measured (NaN) are left out.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Stat {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    fn json(&self) -> Json {
        Json::obj([
            ("median", Json::Num(self.median)),
            ("min", Json::Num(self.min)),
            ("max", Json::Num(self.max)),
        ])
    }
}

/// One produce measurement: what was sent and how.
#[derive(Clone, Copy, Debug)]
pub struct ProduceCase {
    pub size: usize,
    pub partitions: i32,
    pub acks: &'static str,
}

/// One consume measurement.
#[derive(Clone, Copy, Debug)]
pub struct ConsumeCase {
    pub size: usize,
    pub partitions: i32,
}

/// One consumer-group measurement: `members` consumers subscribe to a topic
/// of `partitions` partitions filled with records of `size` bytes; with
/// `join`, one more member joins while records flow.
#[derive(Clone, Copy, Debug)]
pub struct GroupCase {
    pub size: usize,
    pub partitions: i32,
    pub members: usize,
    pub join: bool,
}

/// One transactional produce measurement: records of `size` bytes,
/// round-robin over `partitions`, `per_txn` records per transaction.
#[derive(Clone, Copy, Debug)]
pub struct TxnCase {
    pub size: usize,
    pub partitions: i32,
    pub per_txn: u64,
}

/// Everything one run (one fresh broker) measured.
#[derive(Debug, Default)]
pub struct RunResult {
    pub produce: Vec<Throughput>,
    pub consume: Vec<Throughput>,
    /// One entry per group case; `None` where the case failed.
    pub group: Vec<Option<GroupRun>>,
    /// Group formation on a second broker with Kafka's built-in
    /// `group.initial.rebalance.delay.ms` (3000), if measured.
    pub group_default_delay_formation_secs: Option<f64>,
    /// Why group cases failed, for the report.
    pub group_errors: Vec<String>,
    /// One entry per transaction case; `None` where the case failed.
    pub txn: Vec<Option<TxnRun>>,
    /// Why transaction cases failed, for the report.
    pub txn_errors: Vec<String>,
    pub latency: Option<Latency>,
    pub idle_rss_bytes: u64,
    /// VmHWM once the produce phases are done, before any consumer ran.
    pub produce_peak_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub broker_cpu_secs: f64,
    pub shutdown_secs: f64,
}

pub struct Report {
    pub date: String,
    pub revision: Option<String>,
    pub machine: Machine,
    /// Load averages before the first run and after the last.
    pub load_before: String,
    pub load_after: String,
    /// Mean 4 KiB write + fdatasync in the data directory.
    pub fsync_probe_ms: f64,
    pub librdkafka: String,
    pub runs: usize,
    pub quick: bool,
    pub produce_cases: Vec<ProduceCase>,
    pub consume_cases: Vec<ConsumeCase>,
    pub group_cases: Vec<GroupCase>,
    /// `group.initial.rebalance.delay.ms` the group cases ran with.
    pub group_delay_ms: String,
    /// Records/s the producer writes while a member joins.
    pub group_flow_rate: u64,
    pub group_settings: String,
    pub txn_cases: Vec<TxnCase>,
    /// Records per transaction run.
    pub txn_records: u64,
    pub txn_settings: String,
    pub latency_rate: u64,
    pub latency_size: usize,
    pub latency_secs: f64,
    pub results: Vec<RunResult>,
    /// acks=all produce cases on a broker with `log.flush.interval.messages=1`.
    pub flush_cases: Vec<ProduceCase>,
    pub flush_results: Vec<Vec<Throughput>>,
    pub producer_settings: String,
    /// Producer instances (threads) per produce run.
    pub producers: usize,
    /// `--override` properties every broker ran with (beyond data dir and port).
    pub broker_overrides: Vec<String>,
    pub consumer_settings: String,
    pub latency_settings: String,
}

fn size_label(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// 1234567.8 → "1,234,568".
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Short form for ranges: 1234567 → "1.23M", 45678 → "45.7k".
fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Milliseconds from seconds, "n/a" when not measured.
fn ms(secs: f64) -> String {
    if secs.is_finite() {
        format!("{:.0}", secs * 1e3)
    } else {
        "n/a".into()
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn throughput_stats(samples: &[&Throughput]) -> [Stat; 5] {
    [
        Stat::of(samples.iter().map(|t| t.records_per_sec())),
        Stat::of(samples.iter().map(|t| t.mb_per_sec())),
        Stat::of(samples.iter().map(|t| t.broker_cpu_secs / t.secs)),
        Stat::of(samples.iter().map(|t| t.client_cpu_secs / t.secs)),
        Stat::of(
            samples
                .iter()
                .map(|t| t.broker_cpu_secs / t.records as f64 * 1e6),
        ),
    ]
}

impl Report {
    fn produce_samples(&self, i: usize) -> Vec<&Throughput> {
        self.results
            .iter()
            .filter_map(|r| r.produce.get(i))
            .collect()
    }

    fn consume_samples(&self, i: usize) -> Vec<&Throughput> {
        self.results
            .iter()
            .filter_map(|r| r.consume.get(i))
            .collect()
    }

    fn group_samples(&self, i: usize) -> Vec<&GroupRun> {
        self.results
            .iter()
            .filter_map(|r| r.group.get(i).and_then(Option::as_ref))
            .collect()
    }

    fn txn_samples(&self, i: usize) -> Vec<&TxnRun> {
        self.results
            .iter()
            .filter_map(|r| r.txn.get(i).and_then(Option::as_ref))
            .collect()
    }

    fn flush_samples(&self, i: usize) -> Vec<&Throughput> {
        self.flush_results.iter().filter_map(|r| r.get(i)).collect()
    }

    fn latencies(&self) -> Vec<&Latency> {
        self.results
            .iter()
            .filter_map(|r| r.latency.as_ref())
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(o, "## Runnel benchmark\n");
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| date | {} |", self.date);
        if let Some(rev) = &self.revision {
            let _ = writeln!(o, "| runnel | `{rev}` (release build) |");
        }
        let _ = writeln!(
            o,
            "| machine | {} CPUs ({}), {:.1} GiB RAM, Linux {} |",
            m.cpus,
            m.cpu_model,
            m.mem_total_bytes as f64 / (1u64 << 30) as f64,
            m.kernel
        );
        let _ = writeln!(
            o,
            "| load average (1/5/15 min) | {} before, {} after: other work on the machine skews the figures |",
            self.load_before, self.load_after
        );
        let _ = writeln!(
            o,
            "| disk | data in a fresh directory per run; a 4 KiB write + fdatasync there takes {:.3} ms |",
            self.fsync_probe_ms
        );
        let _ = writeln!(
            o,
            "| clients | librdkafka {} (rdkafka crate), in one bench process on the same machine: clients and broker share the CPUs |",
            self.librdkafka
        );
        let _ = writeln!(
            o,
            "| runs | {}{}, a fresh broker (release binary, empty data dir, {}) per run; figures are the median of the runs, [min–max] beside them |",
            self.runs,
            if self.quick { " (--quick: short smoke run, not for quoting)" } else { "" },
            if self.broker_overrides.is_empty() {
                "default config".to_string()
            } else {
                format!("`--override {}`", self.broker_overrides.join(" --override "))
            }
        );
        let _ = writeln!(
            o,
            "| units | MB = 10^6 bytes of record value (keys and headers null); cores = broker (or bench client) CPU seconds / wall seconds of the phase; µs/record = broker CPU per record |"
        );

        let _ = writeln!(o, "\n### Produce\n");
        let _ = writeln!(
            o,
            "{}: `{}`; time from the first send to the last acknowledgement.\n",
            if self.producers == 1 {
                "One producer".to_string()
            } else {
                format!(
                    "{} producers, one thread each, sharing the records",
                    self.producers
                )
            },
            self.producer_settings
        );
        let _ = writeln!(
            o,
            "| record | partitions | acks | records | records/s | [min–max] | MB/s | broker cores | broker µs/record | client cores |"
        );
        let _ = writeln!(o, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|");
        for (i, c) in self.produce_cases.iter().enumerate() {
            let s = self.produce_samples(i);
            if s.is_empty() {
                continue;
            }
            let [rps, mbps, bcores, ccores, us] = throughput_stats(&s);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | [{}–{}] | {:.1} | {:.2} | {:.2} | {:.2} |",
                size_label(c.size),
                c.partitions,
                c.acks,
                thousands(s[0].records as f64),
                thousands(rps.median),
                short(rps.min),
                short(rps.max),
                mbps.median,
                bcores.median,
                us.median,
                ccores.median
            );
        }

        let _ = writeln!(o, "\n### Consume\n");
        let _ = writeln!(
            o,
            "Assign-only consumer from the beginning of the topic the acks=1 produce run just filled (page cache warm): `{}`; time from assign to the last record.\n",
            self.consumer_settings
        );
        let _ = writeln!(
            o,
            "| record | partitions | records | records/s | [min–max] | MB/s | broker cores | broker µs/record | client cores |"
        );
        let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (i, c) in self.consume_cases.iter().enumerate() {
            let s = self.consume_samples(i);
            if s.is_empty() {
                continue;
            }
            let [rps, mbps, bcores, ccores, us] = throughput_stats(&s);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | [{}–{}] | {:.1} | {:.2} | {:.2} | {:.2} |",
                size_label(c.size),
                c.partitions,
                thousands(s[0].records as f64),
                thousands(rps.median),
                short(rps.min),
                short(rps.max),
                mbps.median,
                bcores.median,
                us.median,
                ccores.median
            );
        }

        self.group_markdown(&mut o);
        self.txn_markdown(&mut o);

        let lat = self.latencies();
        if !lat.is_empty() {
            let _ = writeln!(o, "\n### End-to-end latency\n");
            let _ = writeln!(
                o,
                "{} records/s of {} for {:.0} s into one partition; latency = consumer poll − producer send call, same clock. Producer `{}`; consumer as above (broker long-poll, fetch.wait.max.ms default 500).\n",
                thousands(self.latency_rate as f64),
                size_label(self.latency_size),
                self.latency_secs,
                self.latency_settings
            );
            let _ = writeln!(
                o,
                "| records | p50 ms | p99 ms | p99.9 ms | max ms | broker cores |"
            );
            let _ = writeln!(o, "|--:|--:|--:|--:|--:|--:|");
            let pct = |p: f64| Stat::of(lat.iter().map(|l| l.percentile_ms(p)));
            let (p50, p99, p999, max) = (pct(50.0), pct(99.0), pct(99.9), pct(100.0));
            let cores = Stat::of(lat.iter().map(|l| l.broker_cpu_secs / l.secs));
            let _ = writeln!(
                o,
                "| {} | {:.2} [{:.2}–{:.2}] | {:.2} [{:.2}–{:.2}] | {:.2} [{:.2}–{:.2}] | {:.2} [{:.2}–{:.2}] | {:.2} |",
                thousands(lat[0].sorted_nanos.len() as f64),
                p50.median, p50.min, p50.max,
                p99.median, p99.min, p99.max,
                p999.median, p999.min, p999.max,
                max.median, max.min, max.max,
                cores.median
            );
        }

        let _ = writeln!(o, "\n### Broker memory and CPU\n");
        let _ = writeln!(
            o,
            "| idle RSS (1 s after start, no clients) | peak RSS after the produce phases | peak RSS (VmHWM, end of run) | broker CPU s (whole run) | SIGTERM to exit |"
        );
        let _ = writeln!(o, "|--:|--:|--:|--:|--:|");
        let idle = Stat::of(self.results.iter().map(|r| r.idle_rss_bytes as f64));
        let produce_peak = Stat::of(self.results.iter().map(|r| r.produce_peak_rss_bytes as f64));
        let peak = Stat::of(self.results.iter().map(|r| r.peak_rss_bytes as f64));
        let cpu = Stat::of(self.results.iter().map(|r| r.broker_cpu_secs));
        let stop = Stat::of(self.results.iter().map(|r| r.shutdown_secs));
        let _ = writeln!(
            o,
            "| {} [{}–{}] | {} [{}–{}] | {} [{}–{}] | {:.1} [{:.1}–{:.1}] | {:.2} s [{:.2}–{:.2}] |",
            mib(idle.median),
            mib(idle.min),
            mib(idle.max),
            mib(produce_peak.median),
            mib(produce_peak.min),
            mib(produce_peak.max),
            mib(peak.median),
            mib(peak.min),
            mib(peak.max),
            cpu.median,
            cpu.min,
            cpu.max,
            stop.median,
            stop.min,
            stop.max
        );

        if !self.flush_results.is_empty() {
            let _ = writeln!(
                o,
                "\n### Power-loss durability: fsync before every acknowledgement\n"
            );
            let _ = writeln!(
                o,
                "acks=all on a broker started with `--override log.flush.interval.messages=1` (the ack waits for an fsync of the partition; concurrent produces share one fsync), against acks=all with the default policy (ack after the write to the page cache). Same producer settings. One 4 KiB write + fdatasync on this disk: {:.3} ms.\n",
                self.fsync_probe_ms
            );
            let _ = writeln!(
                o,
                "| record | partitions | default records/s | fsync records/s | [min–max] | fsync MB/s | fsync / default | broker cores |"
            );
            let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|");
            for (i, c) in self.flush_cases.iter().enumerate() {
                let s = self.flush_samples(i);
                if s.is_empty() {
                    continue;
                }
                let [rps, mbps, bcores, _, _] = throughput_stats(&s);
                let default = self
                    .produce_cases
                    .iter()
                    .position(|p| {
                        p.size == c.size && p.partitions == c.partitions && p.acks == c.acks
                    })
                    .map(|j| throughput_stats(&self.produce_samples(j))[0].median)
                    .unwrap_or(f64::NAN);
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | [{}–{}] | {:.1} | {:.0}% | {:.2} |",
                    size_label(c.size),
                    c.partitions,
                    thousands(default),
                    thousands(rps.median),
                    short(rps.min),
                    short(rps.max),
                    mbps.median,
                    rps.median / default * 100.0,
                    bcores.median
                );
            }
        }
        o
    }

    fn txn_markdown(&self, o: &mut String) {
        if self.txn_cases.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n### Transactions\n");
        let _ = writeln!(
            o,
            "One transactional producer (`transactional.id`, hence idempotent, acks=all): `{}`. Each transaction: begin_transaction, the records round-robin over the partitions (every transaction spans all of them: AddPartitionsToTxn and a COMMIT marker per partition), the wait for their acknowledgements, commit_transaction (EndTxn); one transaction after the other. Records/s: {} committed records over the time from the first begin to the last commit's return; init_transactions happens before the clock. Commit ms: the last send of a transaction to the return of its commit_transaction (the acknowledgements of its records, served by the producer's own thread and awaited before the commit, then EndTxn: rust-rdkafka's flush inside commit_transaction polls in 100 ms slices and would add up to 100 ms per transaction).\n",
            self.txn_settings,
            thousands(self.txn_records as f64)
        );
        let _ = writeln!(
            o,
            "| record | partitions | records/txn | records | records/s | [min–max] | MB/s | txns/s | commit p50 ms | commit p99 ms | broker cores | broker µs/record | client cores |"
        );
        let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        let mut failures = 0;
        for (i, c) in self.txn_cases.iter().enumerate() {
            let s = self.txn_samples(i);
            failures += self.results.len() - s.len();
            if s.is_empty() {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | failed in every run | | | | | | | | | |",
                    size_label(c.size),
                    c.partitions,
                    thousands(c.per_txn as f64)
                );
                continue;
            }
            let t: Vec<&Throughput> = s.iter().map(|r| &r.produce).collect();
            let [rps, mbps, bcores, ccores, us] = throughput_stats(&t);
            let tps = Stat::of(s.iter().map(|r| r.txns_per_sec()));
            let p50 = Stat::of(s.iter().map(|r| r.commits.percentile_ms(50.0)));
            let p99 = Stat::of(s.iter().map(|r| r.commits.percentile_ms(99.0)));
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | [{}–{}] | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                size_label(c.size),
                c.partitions,
                thousands(c.per_txn as f64),
                thousands(s[0].produce.records as f64),
                thousands(rps.median),
                short(rps.min),
                short(rps.max),
                mbps.median,
                tps.median,
                p50.median,
                p99.median,
                bcores.median,
                us.median,
                ccores.median
            );
        }
        let errors: Vec<&String> = self.results.iter().flat_map(|r| &r.txn_errors).collect();
        if !errors.is_empty() {
            let _ = writeln!(
                o,
                "\n**{} transaction measurements failed ({failures} of the rows above are missing a run):**\n",
                errors.len()
            );
            for e in errors {
                let _ = writeln!(o, "- {}", e.replace('\n', " "));
            }
        }
    }

    fn group_markdown(&self, o: &mut String) {
        if self.group_cases.is_empty() {
            return;
        }
        let members = self.group_cases[0].members;
        let _ = writeln!(
            o,
            "\n### Consumer group (broker `group.initial.rebalance.delay.ms={}`)\n",
            self.group_delay_ms
        );
        let _ = writeln!(
            o,
            "{members} librdkafka consumers, one thread each, `subscribe` together with one group.id (a new group per case) to the topic the acks=1 produce run filled: `{}`, librdkafka's defaults otherwise (eager `range,roundrobin`, so range; heartbeat.interval.ms=3000; session.timeout.ms=45000). The broker's initial rebalance delay is {} ms (Kafka's built-in default is 3000; its shipped server.properties sets 0). Formation: first subscribe until every member holds a non-empty assignment and together they hold each partition once; assignments: assign callbacks over all members until then ({members} = formed in one generation; more = a member's JoinGroup came after a generation had formed, and the others learnt of the new rebalance from a heartbeat, up to heartbeat.interval.ms later). Until formation the members pause what they are assigned, so that the throughput is that of the whole group: formation to the last of the records, counting the records first delivered in that window (records read before are listed, normally 0); the window includes librdkafka's start on partitions without a committed offset (auto.offset.reset, then ListOffsets after its offset-query timer, about 100 ms). Redelivered: deliveries beyond the distinct records (re-reads after a rebalance).\n",
            self.group_settings, self.group_delay_ms
        );
        let _ = writeln!(
            o,
            "| record | partitions | records | formation ms | [min–max] | assignments | read before formation | records/s | [min–max] | MB/s | broker cores | broker µs/record | client cores | redelivered |"
        );
        let _ = writeln!(
            o,
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        let mut failures = 0;
        for (i, c) in self.group_cases.iter().enumerate() {
            let s = self.group_samples(i);
            failures += self.results.len() - s.len();
            if s.is_empty() {
                let _ = writeln!(
                    o,
                    "| {} | {} | failed in every run | | | | | | | | | | | |",
                    size_label(c.size),
                    c.partitions
                );
                continue;
            }
            let t: Vec<&Throughput> = s.iter().map(|g| &g.consume).collect();
            let [rps, mbps, bcores, ccores, us] = throughput_stats(&t);
            let formation = Stat::of(s.iter().map(|g| g.formation_secs * 1e3));
            let assigns = Stat::of(s.iter().map(|g| g.formation_assignments as f64));
            let before = Stat::of(s.iter().map(|g| g.before_formation as f64));
            let redelivered = Stat::of(s.iter().map(|g| g.redelivered as f64));
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.0} | [{:.0}–{:.0}] | {} | {} | {} | [{}–{}] | {:.1} | {:.2} | {:.2} | {:.2} | {} |",
                size_label(c.size),
                c.partitions,
                thousands((s[0].consume.records + s[0].before_formation) as f64),
                formation.median,
                formation.min,
                formation.max,
                if assigns.min == assigns.max {
                    format!("{}", assigns.median)
                } else {
                    format!("{} [{}–{}]", assigns.median, assigns.min, assigns.max)
                },
                thousands(before.median),
                thousands(rps.median),
                short(rps.min),
                short(rps.max),
                mbps.median,
                bcores.median,
                us.median,
                ccores.median,
                thousands(redelivered.median)
            );
        }
        let default_delay: Vec<f64> = self
            .results
            .iter()
            .filter_map(|r| r.group_default_delay_formation_secs)
            .map(|s| s * 1e3)
            .collect();
        if !default_delay.is_empty() {
            let f = Stat::of(default_delay.iter().copied());
            let _ = writeln!(
                o,
                "\nWith Kafka's built-in `group.initial.rebalance.delay.ms=3000` (a second broker, same {members} consumers, empty topic of {} partitions): formation {:.0} ms [{:.0}–{:.0}]. Twice the delay is what Kafka's coordinator does too: members that join during the first delay earn the group one more (until the rebalance timeout).",
                self.group_cases[0].partitions, f.median, f.min, f.max
            );
        }

        let joins: Vec<(usize, &GroupCase)> = self
            .group_cases
            .iter()
            .enumerate()
            .filter(|(i, c)| c.join && self.group_samples(*i).iter().any(|g| g.join.is_some()))
            .collect();
        if !joins.is_empty() {
            let _ = writeln!(o, "\n#### A consumer joins mid-stream\n");
            let _ = writeln!(
                o,
                "After the backlog, a producer writes {} records/s into the topic while the {members} formed consumers read them; once they receive the flow, consumer {} subscribes with the same group.id. Rebalance: its subscribe until all {} hold assignments received after it that cover each partition once (eager range: every member revokes and re-joins). Last revoke: until the last of the {members} old members had its partitions revoked: members learn of a rebalance from their next heartbeat response, so this is up to heartbeat.interval.ms=3000 and depends on where their heartbeat cycle stands, not on the broker (the old members formed together, so their cycles are aligned). Re-join: last revoke to rebalanced, the JoinGroup/SyncGroup round that is the coordinator's own part. Resumed: until each member has received a record under its new assignment. Assignment: partitions per member afterwards.\n",
                thousands(self.group_flow_rate as f64),
                members + 1,
                members + 1
            );
            let _ = writeln!(
                o,
                "| record | records/s read | rebalance ms | [min–max] | last revoke ms | [min–max] | re-join ms | [min–max] | resumed ms | assignment | redelivered |"
            );
            let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|");
            for (i, c) in joins {
                let s: Vec<_> = self
                    .group_samples(i)
                    .into_iter()
                    .filter_map(|g| g.join.as_ref())
                    .collect();
                if s.is_empty() {
                    continue;
                }
                let rate = Stat::of(s.iter().map(|j| j.flow_rate as f64));
                let rebalance = Stat::of(s.iter().map(|j| j.rebalance_secs));
                let revoke = Stat::of(s.iter().map(|j| j.revoke_secs));
                let resume = Stat::of(s.iter().map(|j| j.resume_secs));
                let rejoin = Stat::of(s.iter().map(|j| (j.rebalance_secs - j.revoke_secs) * 1e3));
                let redelivered = Stat::of(s.iter().map(|j| j.redelivered as f64));
                let mut assignment = s[0].assignment.clone();
                assignment.sort_unstable_by(|a, b| b.cmp(a));
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | [{}–{}] | {} | [{}–{}] | {:.1} | [{:.1}–{:.1}] | {} | {} | {} |",
                    size_label(c.size),
                    thousands(rate.median),
                    ms(rebalance.median),
                    ms(rebalance.min),
                    ms(rebalance.max),
                    ms(revoke.median),
                    ms(revoke.min),
                    ms(revoke.max),
                    rejoin.median,
                    rejoin.min,
                    rejoin.max,
                    ms(resume.median),
                    assignment
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join("+"),
                    thousands(redelivered.median)
                );
            }
        }

        let skipped: u64 = self
            .results
            .iter()
            .flat_map(|r| r.group.iter().flatten())
            .map(|g| g.skipped + g.join.as_ref().map_or(0, |j| j.skipped))
            .sum();
        if skipped > 0 {
            let _ = writeln!(
                o,
                "\n**{skipped} offsets were never delivered to any member (gaps in a partition): records lost across a rebalance.**"
            );
        }
        let errors: Vec<&String> = self.results.iter().flat_map(|r| &r.group_errors).collect();
        if !errors.is_empty() {
            let _ = writeln!(
                o,
                "\n**{} group measurements failed ({failures} of the rows above are missing a run):**\n",
                errors.len()
            );
            for e in errors {
                let _ = writeln!(o, "- {}", e.replace('\n', " "));
            }
        }
    }

    pub fn json(&self) -> String {
        let m = &self.machine;
        let throughput = |t: &Throughput| {
            Json::obj([
                ("records", Json::Num(t.records as f64)),
                ("payload_bytes", Json::Num(t.payload_bytes as f64)),
                ("secs", Json::Num(t.secs)),
                ("records_per_sec", Json::Num(t.records_per_sec())),
                ("mb_per_sec", Json::Num(t.mb_per_sec())),
                ("broker_cpu_secs", Json::Num(t.broker_cpu_secs)),
                ("client_cpu_secs", Json::Num(t.client_cpu_secs)),
            ])
        };
        let summary = |s: &[&Throughput]| {
            let [rps, mbps, bcores, ccores, us] = throughput_stats(s);
            Json::obj([
                ("records_per_sec", rps.json()),
                ("mb_per_sec", mbps.json()),
                ("broker_cores", bcores.json()),
                ("client_cores", ccores.json()),
                ("broker_cpu_us_per_record", us.json()),
            ])
        };
        let produce_case = |c: &ProduceCase, s: Vec<&Throughput>| {
            Json::obj([
                ("record_bytes", Json::Num(c.size as f64)),
                ("partitions", Json::Num(c.partitions as f64)),
                ("acks", Json::Str(c.acks.into())),
                ("summary", summary(&s)),
                ("runs", Json::Arr(s.iter().map(|t| throughput(t)).collect())),
            ])
        };
        let produce = self
            .produce_cases
            .iter()
            .enumerate()
            .map(|(i, c)| produce_case(c, self.produce_samples(i)))
            .collect();
        let flush = self
            .flush_cases
            .iter()
            .enumerate()
            .map(|(i, c)| produce_case(c, self.flush_samples(i)))
            .collect();
        let consume = self
            .consume_cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = self.consume_samples(i);
                Json::obj([
                    ("record_bytes", Json::Num(c.size as f64)),
                    ("partitions", Json::Num(c.partitions as f64)),
                    ("summary", summary(&s)),
                    ("runs", Json::Arr(s.iter().map(|t| throughput(t)).collect())),
                ])
            })
            .collect();
        let group = self
            .group_cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = self.group_samples(i);
                let t: Vec<&Throughput> = s.iter().map(|g| &g.consume).collect();
                Json::obj([
                    ("record_bytes", Json::Num(c.size as f64)),
                    ("partitions", Json::Num(c.partitions as f64)),
                    ("members", Json::Num(c.members as f64)),
                    ("summary", summary(&t)),
                    (
                        "formation_ms",
                        Stat::of(s.iter().map(|g| g.formation_secs * 1e3)).json(),
                    ),
                    (
                        "runs",
                        Json::Arr(
                            s.iter()
                                .map(|g| {
                                    let join = g.join.as_ref().map_or(Json::Null, |j| {
                                        Json::obj([
                                            ("flow_records_per_sec", Json::Num(j.flow_rate as f64)),
                                            ("rebalance_secs", Json::Num(j.rebalance_secs)),
                                            ("revoke_secs", Json::Num(j.revoke_secs)),
                                            ("resume_secs", Json::Num(j.resume_secs)),
                                            (
                                                "assignment",
                                                Json::Arr(
                                                    j.assignment
                                                        .iter()
                                                        .map(|&n| Json::Num(n as f64))
                                                        .collect(),
                                                ),
                                            ),
                                            ("redelivered", Json::Num(j.redelivered as f64)),
                                            ("skipped", Json::Num(j.skipped as f64)),
                                        ])
                                    });
                                    Json::obj([
                                        ("formation_secs", Json::Num(g.formation_secs)),
                                        (
                                            "formation_assignments",
                                            Json::Num(g.formation_assignments as f64),
                                        ),
                                        ("before_formation", Json::Num(g.before_formation as f64)),
                                        ("consume", throughput(&g.consume)),
                                        ("redelivered", Json::Num(g.redelivered as f64)),
                                        ("skipped", Json::Num(g.skipped as f64)),
                                        ("join", join),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let transactions = self
            .txn_cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = self.txn_samples(i);
                let t: Vec<&Throughput> = s.iter().map(|r| &r.produce).collect();
                Json::obj([
                    ("record_bytes", Json::Num(c.size as f64)),
                    ("partitions", Json::Num(c.partitions as f64)),
                    ("records_per_txn", Json::Num(c.per_txn as f64)),
                    ("summary", summary(&t)),
                    (
                        "txns_per_sec",
                        Stat::of(s.iter().map(|r| r.txns_per_sec())).json(),
                    ),
                    (
                        "commit_p50_ms",
                        Stat::of(s.iter().map(|r| r.commits.percentile_ms(50.0))).json(),
                    ),
                    (
                        "commit_p99_ms",
                        Stat::of(s.iter().map(|r| r.commits.percentile_ms(99.0))).json(),
                    ),
                    (
                        "runs",
                        Json::Arr(
                            s.iter()
                                .map(|r| {
                                    Json::obj([
                                        ("produce", throughput(&r.produce)),
                                        ("txns", Json::Num(r.txns as f64)),
                                        ("init_secs", Json::Num(r.init_secs)),
                                        ("commit_p50_ms", Json::Num(r.commits.percentile_ms(50.0))),
                                        ("commit_p99_ms", Json::Num(r.commits.percentile_ms(99.0))),
                                        (
                                            "commit_max_ms",
                                            Json::Num(r.commits.percentile_ms(100.0)),
                                        ),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let txn_errors = Json::Arr(
            self.results
                .iter()
                .flat_map(|r| &r.txn_errors)
                .map(|e| Json::Str(e.clone()))
                .collect(),
        );
        let group_default_delay = Json::Arr(
            self.results
                .iter()
                .filter_map(|r| r.group_default_delay_formation_secs)
                .map(Json::Num)
                .collect(),
        );
        let group_errors = Json::Arr(
            self.results
                .iter()
                .flat_map(|r| &r.group_errors)
                .map(|e| Json::Str(e.clone()))
                .collect(),
        );
        let lat = self.latencies();
        let latency = Json::obj([
            ("rate", Json::Num(self.latency_rate as f64)),
            ("record_bytes", Json::Num(self.latency_size as f64)),
            ("secs", Json::Num(self.latency_secs)),
            (
                "runs",
                Json::Arr(
                    lat.iter()
                        .map(|l| {
                            Json::obj([
                                ("records", Json::Num(l.sorted_nanos.len() as f64)),
                                ("p50_ms", Json::Num(l.percentile_ms(50.0))),
                                ("p99_ms", Json::Num(l.percentile_ms(99.0))),
                                ("p999_ms", Json::Num(l.percentile_ms(99.9))),
                                ("max_ms", Json::Num(l.percentile_ms(100.0))),
                                ("broker_cpu_secs", Json::Num(l.broker_cpu_secs)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "p50_ms",
                Stat::of(lat.iter().map(|l| l.percentile_ms(50.0))).json(),
            ),
            (
                "p99_ms",
                Stat::of(lat.iter().map(|l| l.percentile_ms(99.0))).json(),
            ),
        ]);
        let broker = Json::Arr(
            self.results
                .iter()
                .map(|r| {
                    Json::obj([
                        ("idle_rss_bytes", Json::Num(r.idle_rss_bytes as f64)),
                        (
                            "produce_peak_rss_bytes",
                            Json::Num(r.produce_peak_rss_bytes as f64),
                        ),
                        ("peak_rss_bytes", Json::Num(r.peak_rss_bytes as f64)),
                        ("cpu_secs", Json::Num(r.broker_cpu_secs)),
                        ("shutdown_secs", Json::Num(r.shutdown_secs)),
                    ])
                })
                .collect(),
        );
        Json::obj([
            ("date", Json::Str(self.date.clone())),
            (
                "revision",
                self.revision.clone().map_or(Json::Null, Json::Str),
            ),
            (
                "machine",
                Json::obj([
                    ("cpus", Json::Num(m.cpus as f64)),
                    ("cpu_model", Json::Str(m.cpu_model.clone())),
                    ("mem_total_bytes", Json::Num(m.mem_total_bytes as f64)),
                    ("kernel", Json::Str(m.kernel.clone())),
                ]),
            ),
            ("fsync_probe_ms", Json::Num(self.fsync_probe_ms)),
            ("load_before", Json::Str(self.load_before.clone())),
            ("load_after", Json::Str(self.load_after.clone())),
            ("librdkafka", Json::Str(self.librdkafka.clone())),
            ("runs", Json::Num(self.runs as f64)),
            ("quick", Json::Bool(self.quick)),
            (
                "producer_settings",
                Json::Str(self.producer_settings.clone()),
            ),
            (
                "consumer_settings",
                Json::Str(self.consumer_settings.clone()),
            ),
            ("latency_settings", Json::Str(self.latency_settings.clone())),
            ("produce", Json::Arr(produce)),
            ("consume", Json::Arr(consume)),
            (
                "group_initial_rebalance_delay_ms",
                Json::Str(self.group_delay_ms.clone()),
            ),
            ("group_settings", Json::Str(self.group_settings.clone())),
            ("group", Json::Arr(group)),
            ("group_formation_default_delay_secs", group_default_delay),
            ("group_errors", group_errors),
            ("txn_settings", Json::Str(self.txn_settings.clone())),
            ("transactions", Json::Arr(transactions)),
            ("txn_errors", txn_errors),
            ("latency", latency),
            ("broker", broker),
            ("flush_every_message", Json::Arr(flush)),
        ])
        .to_string()
    }
}

/// Just enough JSON to write the results file.
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn obj<const N: usize>(fields: [(&str, Json); N]) -> Json {
        Json::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }
}

fn write_json_str(f: &mut std::fmt::Formatter<'_>, s: &str) -> std::fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            // JSON has no NaN or infinity.
            Json::Num(x) if !x.is_finite() => f.write_str("null"),
            Json::Num(x) => write!(f, "{x}"),
            Json::Str(s) => write_json_str(f, s),
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Obj(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_json_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// UTC "YYYY-MM-DD HH:MM UTC" from the system clock (no date crate: days to
/// civil date per Howard Hinnant's algorithm).
pub fn utc_now() -> String {
    utc_from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64,
    )
}

fn utc_from_unix(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Stat::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stat::of([4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Stat::of([]).median.is_nan());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency {
            sorted_nanos: (1..=100).map(|ms| ms * 1_000_000).collect(),
            ..Latency::default()
        };
        assert_eq!(l.percentile_ms(50.0), 50.0);
        assert_eq!(l.percentile_ms(99.0), 99.0);
        assert_eq!(l.percentile_ms(99.9), 100.0);
        assert_eq!(l.percentile_ms(100.0), 100.0);
        assert!(Latency::default().percentile_ms(50.0).is_nan());
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(f64::NAN), "n/a");
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(short(45_678.0), "45.7k");
        assert_eq!(size_label(100), "100 B");
        assert_eq!(size_label(1024), "1 KiB");
    }

    #[test]
    fn json_escapes_and_nulls() {
        let j = Json::obj([
            ("s", Json::Str("a\"b\\c\n".into())),
            ("nan", Json::Num(f64::NAN)),
            (
                "a",
                Json::Arr(vec![Json::Num(1.5), Json::Bool(true), Json::Null]),
            ),
        ]);
        assert_eq!(
            j.to_string(),
            r#"{"s":"a\"b\\c\u000a","nan":null,"a":[1.5,true,null]}"#
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(utc_from_unix(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
