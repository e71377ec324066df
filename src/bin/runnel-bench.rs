//! `runnel-bench`: throughput, latency and footprint of the real broker binary,
//! driven by librdkafka clients. `make bench` (scripts/bench.sh) builds the
//! release binaries and runs this; it prints a Markdown report for the README.
//!
//! Every run starts a fresh `runnel` child process on an empty data directory
//! and a free port, then, in order: idle RSS after 1 s; for 100 B and 1 KiB
//! records on 1 and 6 partitions, produce with acks=1 and with acks=all (each
//! into its own topic), then consume the acks=1 topic from the beginning; a
//! consumer group of 3 reading the 6-partition acks=1 topics (formation,
//! throughput, a 4th member joining mid-stream); an end-to-end latency phase
//! at a fixed rate; peak RSS and total CPU; SIGTERM. Then group formation
//! alone on a second broker with Kafka's default initial rebalance delay.
//! Transactions: a transactional producer committing 100- and 1,000-record
//! transactions of 100 B records on 1 and 6 partitions (on the same broker,
//! after the latency phase).
//! Numbers are reported, never asserted (a failed group or transaction case
//! is reported and makes the exit status 1).

#[path = "runnel-bench/broker.rs"]
mod broker;
#[path = "runnel-bench/report.rs"]
mod report;
#[path = "runnel-bench/workload.rs"]
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use broker::{BrokerProcess, Machine};
use report::{ConsumeCase, GroupCase, ProduceCase, Report, RunResult, TxnCase};

/// Benchmarks a runnel broker binary with librdkafka clients.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Repeat every measurement K times, each on a fresh broker, and report
    /// the median (default 3; 1 with --quick).
    #[arg(long, value_name = "K")]
    runs: Option<usize>,
    /// A short smoke run: a tenth of the records, 1 s of latency, one run.
    #[arg(long)]
    quick: bool,
    /// Also measure acks=all produce with an fsync before every
    /// acknowledgement (`log.flush.interval.messages=1`).
    #[arg(long)]
    flush: bool,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The broker binary (default: `runnel` next to this executable).
    #[arg(long, value_name = "PATH")]
    broker: Option<PathBuf>,
    /// Where the per-run data directories go (default: the system temp dir).
    /// Put it on the disk you want to measure.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Records per produce run at 100 B.
    #[arg(long, value_name = "N")]
    small_records: Option<u64>,
    /// Records per produce run at 1 KiB.
    #[arg(long, value_name = "N")]
    large_records: Option<u64>,
    /// Producer instances (one thread each) sharing every produce run.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Records per transactional produce run (default 200,000; a tenth with
    /// --quick); 0 skips the transaction cases.
    #[arg(long, value_name = "N")]
    txn_records: Option<u64>,
    /// Records per second in the latency phase.
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,
    /// Seconds of the latency phase (default 5; 1 with --quick).
    #[arg(long, value_name = "SECS")]
    latency_secs: Option<f64>,
    /// Extra broker properties for every run, as `key=value`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Extra librdkafka producer property (all producers), as `key=value`.
    #[arg(long = "producer-config", value_name = "KEY=VALUE", value_parser = key_value)]
    producer_config: Vec<(String, String)>,
    /// Extra librdkafka consumer property (all consumers), as `key=value`.
    #[arg(long = "consumer-config", value_name = "KEY=VALUE", value_parser = key_value)]
    consumer_config: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

const SMALL: usize = 100;
const LARGE: usize = 1024;
const LATENCY_RECORD: usize = 100;
/// About 3–5 s of work each on the 2-core machine the defaults were sized on.
const DEFAULT_SMALL_RECORDS: u64 = 3_000_000;
const DEFAULT_LARGE_RECORDS: u64 = 1_000_000;
/// Consumers that form the group, and the partitions of the topic they read.
const GROUP_MEMBERS: usize = 3;
const GROUP_PARTITIONS: i32 = 6;
/// Records/s written into the topic while a member joins the formed group.
const GROUP_FLOW_RATE: u64 = 20_000;
/// The broker setting that holds back the first rebalance of a new group.
const INITIAL_DELAY: &str = "group.initial.rebalance.delay.ms";
/// Records per transactional produce run.
const DEFAULT_TXN_RECORDS: u64 = 200_000;
/// Records per transaction in the transaction cases.
const TXN_SIZES: [u64; 2] = [100, 1000];

struct Plan {
    binary: PathBuf,
    data_dir: PathBuf,
    overrides: Vec<String>,
    producer_config: Vec<(String, String)>,
    consumer_config: Vec<(String, String)>,
    small_records: u64,
    large_records: u64,
    producers: usize,
    latency_rate: u64,
    latency_secs: f64,
    produce_cases: Vec<ProduceCase>,
    consume_cases: Vec<ConsumeCase>,
    group_cases: Vec<GroupCase>,
    txn_cases: Vec<TxnCase>,
    txn_records: u64,
    /// Also measure formation with Kafka's built-in initial rebalance delay.
    group_default_delay: bool,
}

impl Plan {
    fn clients(&self, broker: &BrokerProcess) -> workload::Clients {
        workload::Clients {
            bootstrap: broker.bootstrap(),
            producer_extra: self.producer_config.clone(),
            consumer_extra: self.consumer_config.clone(),
        }
    }

    fn records_for(&self, size: usize) -> u64 {
        if size == SMALL {
            self.small_records
        } else {
            self.large_records
        }
    }
}

/// When the bench started: the zero of log timestamps.
fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

fn main() -> std::process::ExitCode {
    started();
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let binary = match args.broker {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .join("runnel"),
    };
    if !binary.is_file() {
        bail!(
            "no broker binary at {} (build it with `cargo build --release --bins` or pass --broker)",
            binary.display()
        );
    }
    let scale = if args.quick { 10 } else { 1 };
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut produce_cases = Vec::new();
    let mut consume_cases = Vec::new();
    for size in [SMALL, LARGE] {
        for partitions in [1, 6] {
            for acks in ["1", "all"] {
                produce_cases.push(ProduceCase {
                    size,
                    partitions,
                    acks,
                });
            }
            consume_cases.push(ConsumeCase { size, partitions });
        }
    }
    // Each group case reads the topic its size's acks=1 produce case filled.
    let group_cases: Vec<GroupCase> = [SMALL, LARGE]
        .into_iter()
        .map(|size| GroupCase {
            size,
            partitions: GROUP_PARTITIONS,
            members: GROUP_MEMBERS,
            join: true,
        })
        .collect();
    let txn_records = args.txn_records.unwrap_or(DEFAULT_TXN_RECORDS / scale);
    let txn_cases: Vec<TxnCase> = if txn_records == 0 {
        Vec::new()
    } else {
        [1, 6]
            .into_iter()
            .flat_map(|partitions| {
                TXN_SIZES.into_iter().map(move |per_txn| TxnCase {
                    size: SMALL,
                    partitions,
                    per_txn,
                })
            })
            .collect()
    };
    // Kafka's shipped server.properties sets the initial rebalance delay to 0
    // for development; the built-in default is 3000. An --override wins.
    let overrides: Vec<String> = std::iter::once(format!("{INITIAL_DELAY}=0"))
        .chain(args.overrides)
        .collect();
    let group_delay_ms = overrides
        .iter()
        .rev()
        .find_map(|o| {
            let (k, v) = o.split_once('=')?;
            (k.trim() == INITIAL_DELAY).then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let plan = Plan {
        binary,
        data_dir: args.data_dir.unwrap_or_else(std::env::temp_dir),
        overrides,
        producer_config: args.producer_config,
        consumer_config: args.consumer_config,
        small_records: args.small_records.unwrap_or(DEFAULT_SMALL_RECORDS / scale),
        large_records: args.large_records.unwrap_or(DEFAULT_LARGE_RECORDS / scale),
        producers: args.producers.max(1),
        latency_rate: args.latency_rate,
        latency_secs: args
            .latency_secs
            .unwrap_or(if args.quick { 1.0 } else { 5.0 }),
        produce_cases,
        consume_cases,
        group_cases,
        txn_cases,
        txn_records,
        group_default_delay: !args.quick,
    };

    let fsync_probe_ms = broker::fsync_probe(&plan.data_dir)?.as_secs_f64() * 1e3;
    let load_before = broker::load_average();
    let mut results = Vec::new();
    for r in 0..runs {
        eprintln!("runnel-bench: run {}/{runs}", r + 1);
        results.push(one_run(&plan, r)?);
    }
    let flush_cases: Vec<ProduceCase> = if args.flush {
        plan.produce_cases
            .iter()
            .copied()
            .filter(|c| c.acks == "all")
            .collect()
    } else {
        Vec::new()
    };
    let mut flush_results = Vec::new();
    if args.flush {
        for r in 0..runs {
            eprintln!("runnel-bench: fsync-per-ack run {}/{runs}", r + 1);
            flush_results.push(flush_run(&plan, &flush_cases, r)?);
        }
    }

    let settings = |s: &[(&str, &str)], extra: &[(String, String)]| {
        s.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(extra.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let report = Report {
        date: report::utc_now(),
        revision: std::env::var("RUNNEL_BENCH_REVISION")
            .ok()
            .filter(|s| !s.is_empty()),
        machine: Machine::detect(),
        load_before,
        load_after: broker::load_average(),
        fsync_probe_ms,
        librdkafka: rdkafka::util::get_rdkafka_version().1,
        runs,
        quick: args.quick,
        produce_cases: plan.produce_cases.clone(),
        consume_cases: plan.consume_cases.clone(),
        group_cases: plan.group_cases.clone(),
        group_delay_ms,
        group_flow_rate: GROUP_FLOW_RATE,
        group_settings: settings(workload::GROUP_CONSUMER_SETTINGS, &[]),
        txn_cases: plan.txn_cases.clone(),
        txn_records: plan.txn_records,
        txn_settings: settings(workload::TXN_PRODUCER_SETTINGS, &plan.producer_config),
        latency_rate: plan.latency_rate,
        latency_size: LATENCY_RECORD,
        latency_secs: plan.latency_secs,
        results,
        flush_cases,
        flush_results,
        producer_settings: settings(workload::PRODUCER_SETTINGS, &plan.producer_config),
        producers: plan.producers,
        broker_overrides: plan.overrides.clone(),
        consumer_settings: settings(workload::CONSUMER_SETTINGS, &plan.consumer_config),
        latency_settings: settings(workload::LATENCY_PRODUCER_SETTINGS, &plan.producer_config),
    };
    print!("{}", report.markdown());
    if let Some(path) = args.json {
        std::fs::write(&path, report.json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("runnel-bench: wrote {}", path.display());
    }
    let group_errors: usize = report.results.iter().map(|r| r.group_errors.len()).sum();
    if group_errors > 0 {
        bail!("{group_errors} consumer-group measurements failed (listed in the report)");
    }
    let txn_errors: usize = report.results.iter().map(|r| r.txn_errors.len()).sum();
    if txn_errors > 0 {
        bail!("{txn_errors} transaction measurements failed (listed in the report)");
    }
    Ok(())
}

fn progress(t: &workload::Throughput) -> String {
    format!(
        "{:>10.0} rec/s {:>7.1} MB/s  broker {:.2} cores, client {:.2} cores",
        t.records_per_sec(),
        t.mb_per_sec(),
        t.broker_cpu_secs / t.secs,
        t.client_cpu_secs / t.secs
    )
}

fn topic_name(kind: &str, c: &ProduceCase) -> String {
    format!("bench-{kind}-{}b-{}p-acks{}", c.size, c.partitions, c.acks)
}

fn one_run(plan: &Plan, run: usize) -> Result<RunResult> {
    let broker = BrokerProcess::start(
        &plan.binary,
        &plan.data_dir,
        &format!("run{run}"),
        &plan.overrides,
    )?;
    eprintln!("  broker pid {}, {}", broker.pid(), broker.bootstrap());
    // Idle footprint: nothing connected but the readiness probe, already closed.
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_bytes = broker.rss_bytes()?;
    let clients = plan.clients(&broker);
    let bootstrap = &clients.bootstrap;
    let cpu = || broker.cpu_secs();
    let mut result = RunResult {
        idle_rss_bytes,
        ..RunResult::default()
    };

    for c in &plan.produce_cases {
        let topic = topic_name("produce", c);
        workload::create_topic(bootstrap, &topic, c.partitions)?;
        let t = workload::produce(
            &clients,
            &topic,
            c.size,
            plan.records_for(c.size),
            c.acks,
            plan.producers,
            &cpu,
        )
        .with_context(|| format!("produce {c:?}"))?;
        eprintln!(
            "  produce {:>4} B x{} acks={:<3}: {}",
            c.size,
            c.partitions,
            c.acks,
            progress(&t)
        );
        result.produce.push(t);
    }
    result.produce_peak_rss_bytes = broker.peak_rss_bytes()?;
    for c in &plan.consume_cases {
        let filled = ProduceCase {
            size: c.size,
            partitions: c.partitions,
            acks: "1",
        };
        let t = workload::consume(
            &clients,
            &topic_name("produce", &filled),
            c.partitions,
            plan.records_for(c.size),
            &cpu,
        )
        .with_context(|| format!("consume {c:?}"))?;
        eprintln!(
            "  consume {:>4} B x{}         : {}",
            c.size,
            c.partitions,
            progress(&t)
        );
        result.consume.push(t);
    }
    for c in &plan.group_cases {
        let phase = std::time::Instant::now();
        let filled = ProduceCase {
            size: c.size,
            partitions: c.partitions,
            acks: "1",
        };
        let g = workload::group(
            &clients,
            &format!("bench-group-{}b", c.size),
            &topic_name("produce", &filled),
            c.size,
            c.members,
            c.join.then_some(GROUP_FLOW_RATE),
            &cpu,
        );
        match g {
            Ok(g) => {
                eprintln!(
                    "  group   {:>4} B x{} {} members: formed in {:.0} ms ({} assignments, {} records read before), {}",
                    c.size,
                    c.partitions,
                    c.members,
                    g.formation_secs * 1e3,
                    g.formation_assignments,
                    g.before_formation,
                    progress(&g.consume)
                );
                if let Some(j) = &g.join {
                    eprintln!(
                        "          member {} joins at {} rec/s: rebalance {:.0} ms, last revoke {:.0} ms (re-join {:.1} ms), all resumed {:.0} ms, assignment {:?}, redelivered {}+{}, gaps {}+{}",
                        c.members + 1,
                        j.flow_rate,
                        j.rebalance_secs * 1e3,
                        j.revoke_secs * 1e3,
                        (j.rebalance_secs - j.revoke_secs) * 1e3,
                        j.resume_secs * 1e3,
                        j.assignment,
                        g.redelivered,
                        j.redelivered,
                        g.skipped,
                        j.skipped
                    );
                }
                eprintln!("          ({:.1} s in all)", phase.elapsed().as_secs_f64());
                result.group.push(Some(g));
            }
            Err(e) => {
                eprintln!("  group   {:>4} B x{}: FAILED: {e:#}", c.size, c.partitions);
                result
                    .group_errors
                    .push(format!("run {}, {} B records: {e:#}", run + 1, c.size));
                result.group.push(None);
            }
        }
    }
    if plan.latency_secs > 0.0 && plan.latency_rate > 0 {
        let topic = "bench-latency";
        workload::create_topic(bootstrap, topic, 1)?;
        let l = workload::latency(
            &clients,
            topic,
            LATENCY_RECORD,
            plan.latency_rate,
            Duration::from_secs_f64(plan.latency_secs),
            &cpu,
        )
        .context("latency")?;
        eprintln!(
            "  latency {} rec/s: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            plan.latency_rate,
            l.percentile_ms(50.0),
            l.percentile_ms(99.0),
            l.percentile_ms(100.0)
        );
        result.latency = Some(l);
    }
    for c in &plan.txn_cases {
        let name = format!("bench-txn-{}b-{}p-{}", c.size, c.partitions, c.per_txn);
        let t = workload::create_topic(bootstrap, &name, c.partitions).and_then(|()| {
            workload::transactions(
                &clients,
                &name,
                c.partitions,
                c.size,
                plan.txn_records,
                c.per_txn,
                &name,
                &cpu,
            )
        });
        match t {
            Ok(t) => {
                eprintln!(
                    "  txn     {:>4} B x{} {:>4}/txn: {}, {:.0} txn/s, commit p50 {:.2} ms p99 {:.2} ms (init {:.0} ms)",
                    c.size,
                    c.partitions,
                    c.per_txn,
                    progress(&t.produce),
                    t.txns_per_sec(),
                    t.commits.percentile_ms(50.0),
                    t.commits.percentile_ms(99.0),
                    t.init_secs * 1e3
                );
                result.txn.push(Some(t));
            }
            Err(e) => {
                eprintln!(
                    "  txn     {:>4} B x{} {:>4}/txn: FAILED: {e:#}",
                    c.size, c.partitions, c.per_txn
                );
                result.txn_errors.push(format!(
                    "run {}, {} B x{} partitions, {} records/txn: {e:#}",
                    run + 1,
                    c.size,
                    c.partitions,
                    c.per_txn
                ));
                result.txn.push(None);
            }
        }
    }
    result.peak_rss_bytes = broker.peak_rss_bytes()?;
    result.broker_cpu_secs = broker.cpu_secs()?;
    result.shutdown_secs = broker.stop()?.as_secs_f64();
    eprintln!(
        "  idle RSS {:.1} MiB, peak RSS {:.1} MiB after produce, {:.1} MiB at the end, broker CPU {:.1} s",
        result.idle_rss_bytes as f64 / 1048576.0,
        result.produce_peak_rss_bytes as f64 / 1048576.0,
        result.peak_rss_bytes as f64 / 1048576.0,
        result.broker_cpu_secs
    );
    if plan.group_default_delay && !plan.group_cases.is_empty() {
        match default_delay_formation(plan, run) {
            Ok(secs) => {
                eprintln!(
                    "  group formation with {INITIAL_DELAY}=3000: {:.0} ms",
                    secs * 1e3
                );
                result.group_default_delay_formation_secs = Some(secs);
            }
            Err(e) => {
                eprintln!("  group formation with {INITIAL_DELAY}=3000: FAILED: {e:#}");
                result.group_errors.push(format!(
                    "run {}, formation with {INITIAL_DELAY}=3000: {e:#}",
                    run + 1
                ));
            }
        }
    }
    Ok(result)
}

/// Group formation on a fresh broker with Kafka's built-in initial
/// rebalance delay (3000 ms), on an empty topic: only the join matters.
fn default_delay_formation(plan: &Plan, run: usize) -> Result<f64> {
    let mut overrides = plan.overrides.clone();
    overrides.push(format!("{INITIAL_DELAY}=3000"));
    let broker = BrokerProcess::start(
        &plan.binary,
        &plan.data_dir,
        &format!("group-delay{run}"),
        &overrides,
    )?;
    let clients = plan.clients(&broker);
    let topic = "bench-group-formation";
    workload::create_topic(&clients.bootstrap, topic, GROUP_PARTITIONS)?;
    let secs = workload::group_formation(&clients, "bench-group-formation", topic, GROUP_MEMBERS)?;
    broker.stop()?;
    Ok(secs)
}

fn flush_run(plan: &Plan, cases: &[ProduceCase], run: usize) -> Result<Vec<workload::Throughput>> {
    let mut overrides = plan.overrides.clone();
    overrides.push("log.flush.interval.messages=1".into());
    let broker = BrokerProcess::start(
        &plan.binary,
        &plan.data_dir,
        &format!("flush{run}"),
        &overrides,
    )?;
    let clients = plan.clients(&broker);
    let bootstrap = &clients.bootstrap;
    let cpu = || broker.cpu_secs();
    let mut out = Vec::new();
    for c in cases {
        let topic = topic_name("fsync", c);
        workload::create_topic(bootstrap, &topic, c.partitions)?;
        let t = workload::produce(
            &clients,
            &topic,
            c.size,
            plan.records_for(c.size),
            c.acks,
            plan.producers,
            &cpu,
        )
        .with_context(|| format!("fsync produce {c:?}"))?;
        eprintln!(
            "  fsync produce {:>4} B x{}: {}",
            c.size,
            c.partitions,
            progress(&t)
        );
        out.push(t);
    }
    broker.stop()?;
    Ok(out)
}
