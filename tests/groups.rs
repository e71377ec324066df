//! Consumer groups through librdkafka (the `rdkafka` crate) against an
//! in-process broker: partition sharing, leaving and expiring members, the
//! client-side assignors, committed offsets across restarts (clean and
//! kill -9), resuming from commits, assign-only commits, DeleteGroups and
//! ListGroups/DescribeGroups.
//!
//! Group members run in threads of their own (a `BaseConsumer` must be
//! polled for its rebalances to run); what they see (assignment, rebalance
//! callbacks, records) is shared with the test thread, which waits on it
//! with bounded waits. A watchdog aborts a test whose client call or close
//! hangs, instead of hanging `cargo test`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    admin, broker_runtime, close_bounded, create_topic, flush_all_ok, free_port, member_config,
    partitions_tpl, recording_producer, send_blocking, wait_for, watchdog, BrokerProcess,
    TestBroker, TIMEOUT,
};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::BaseRecord;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

// ---------------------------------------------------------------------------
// Harness: group members in threads (the watchdog, bounded waits and
// consumer settings are in common).

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

fn protocol_name(p: RebalanceProtocol) -> &'static str {
    match p {
        RebalanceProtocol::None => "none",
        RebalanceProtocol::Eager => "eager",
        RebalanceProtocol::Cooperative => "cooperative",
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Assign(BTreeSet<i32>),
    Revoke(BTreeSet<i32>),
    Error(String),
}

#[derive(Debug, Clone, Copy)]
struct Received {
    partition: i32,
    offset: i64,
    id: usize,
}

#[derive(Default)]
struct Membership {
    assignment: BTreeSet<i32>,
    events: Vec<Event>,
    protocol: &'static str,
}

/// What one member has seen; written by its consumer thread.
#[derive(Default)]
struct MemberState {
    membership: Mutex<Membership>,
    received: Mutex<Vec<Received>>,
    errors: Mutex<Vec<String>>,
    /// Where the member's thread is: "" (running), "closing", "closed".
    phase: Mutex<&'static str>,
}

/// Records every rebalance callback and the assignment after it.
struct GroupContext {
    state: Arc<MemberState>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(tpl) => Event::Assign(partitions_of(tpl)),
            Rebalance::Revoke(tpl) => Event::Revoke(partitions_of(tpl)),
            Rebalance::Error(e) => Event::Error(e.to_string()),
        };
        // assignment() and rebalance_protocol() are requests to librdkafka's
        // group thread, which does not answer them while the consumer
        // closes (they would block forever): only the event then.
        let closing = !self.state.phase.lock().unwrap().is_empty();
        let now = (!closing).then(|| {
            let assignment = consumer
                .assignment()
                .map(|t| partitions_of(&t))
                .unwrap_or_default();
            (assignment, protocol_name(consumer.rebalance_protocol()))
        });
        let mut m = self.state.membership.lock().unwrap();
        match now {
            Some((assignment, protocol)) => {
                m.assignment = assignment;
                m.protocol = protocol;
            }
            None => {
                if let Event::Revoke(r) = &event {
                    m.assignment.retain(|p| !r.contains(p));
                }
            }
        }
        m.events.push(event);
    }
}

fn parse_id(payload: Option<&[u8]>) -> Option<usize> {
    std::str::from_utf8(payload?).ok()?.parse().ok()
}

/// A subscribed group member polling in a thread of its own.
struct Member {
    name: String,
    state: Arc<MemberState>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Result<(), String>>>,
}

impl Member {
    fn start(name: &str, cfg: ClientConfig, topic: &str) -> Member {
        let state = Arc::new(MemberState::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, topic) = (state.clone(), stop.clone(), topic.to_owned());
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let consumer: BaseConsumer<GroupContext> = cfg
                    .create_with_context(GroupContext { state: st.clone() })
                    .map_err(|e| format!("create consumer: {e}"))?;
                consumer
                    .subscribe(&[&topic])
                    .map_err(|e| format!("subscribe: {e}"))?;
                while !sp.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(100)) {
                        None => {}
                        Some(Ok(m)) => {
                            let r = Received {
                                partition: m.partition(),
                                offset: m.offset(),
                                id: parse_id(m.payload()).unwrap_or(usize::MAX),
                            };
                            st.received.lock().unwrap().push(r);
                        }
                        Some(Err(e)) => st.errors.lock().unwrap().push(e.to_string()),
                    }
                }
                *st.phase.lock().unwrap() = "closing";
                let closed = close_bounded(consumer, TIMEOUT);
                *st.phase.lock().unwrap() = "closed";
                closed
            })
            .expect("spawn member thread");
        Member {
            name: name.to_owned(),
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.state.membership.lock().unwrap().assignment.clone()
    }

    /// The assignment and the number of rebalance events so far, read
    /// together.
    fn snapshot(&self) -> (BTreeSet<i32>, usize) {
        let m = self.state.membership.lock().unwrap();
        (m.assignment.clone(), m.events.len())
    }

    fn events(&self) -> Vec<Event> {
        self.state.membership.lock().unwrap().events.clone()
    }

    fn protocol(&self) -> &'static str {
        self.state.membership.lock().unwrap().protocol
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn received_len(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    fn errors(&self) -> Vec<String> {
        self.state.errors.lock().unwrap().clone()
    }

    fn describe(&self) -> String {
        let m = self.state.membership.lock().unwrap();
        format!(
            "{}: assignment {:?}, {} records, events {:?}, errors {:?}",
            self.name,
            m.assignment,
            self.received_len(),
            m.events,
            self.errors()
        )
    }

    /// Stops polling and closes the consumer (LeaveGroup); panics if the
    /// close does not finish in time.
    fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("running");
        let deadline = Instant::now() + TIMEOUT + Duration::from_secs(5);
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "member {} did not stop within {:?} (phase: {}): {}",
                self.name,
                TIMEOUT,
                self.state.phase.lock().unwrap(),
                self.describe()
            );
            thread::sleep(Duration::from_millis(20));
        }
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("member {}: {e}", self.name),
            Err(_) => panic!("member {} thread panicked", self.name),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

fn describe_all(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.describe())
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// True if the sets are disjoint, `per_member` each, and cover
/// `0..partitions`.
fn balanced(sets: &[BTreeSet<i32>], partitions: i32, per_member: usize) -> bool {
    let mut union = BTreeSet::new();
    for s in sets {
        if s.len() != per_member {
            return false;
        }
        union.extend(s.iter().copied());
    }
    union.len() == sets.len() * per_member && union == (0..partitions).collect()
}

/// Waits until the members' assignments are disjoint, `per_member` each, and
/// cover all partitions; returns each member's assignment and event count
/// at that point.
fn wait_balanced(
    members: &[&Member],
    partitions: i32,
    per_member: usize,
    limit: Duration,
) -> Vec<(BTreeSet<i32>, usize)> {
    wait_for(
        limit,
        || {
            format!(
                "no balanced assignment ({per_member} of {partitions} partitions each):\n  {}",
                describe_all(members)
            )
        },
        || {
            let snaps: Vec<_> = members.iter().map(|m| m.snapshot()).collect();
            let sets: Vec<_> = snaps.iter().map(|(a, _)| a.clone()).collect();
            balanced(&sets, partitions, per_member).then_some(snaps)
        },
    )
}

/// Produces records `ids` (payload = the id, key `k<id>`), to `partition_of`
/// if given, and returns where each landed.
fn produce(
    bootstrap: &str,
    topic: &str,
    ids: Range<usize>,
    partition_of: Option<&dyn Fn(usize) -> i32>,
) -> HashMap<usize, (i32, i64)> {
    produce_with(bootstrap, topic, ids, partition_of, &[])
}

fn produce_with(
    bootstrap: &str,
    topic: &str,
    ids: Range<usize>,
    partition_of: Option<&dyn Fn(usize) -> i32>,
    settings: &[(&str, &str)],
) -> HashMap<usize, (i32, i64)> {
    let mut all = vec![("linger.ms", "5")];
    all.extend_from_slice(settings);
    let producer = recording_producer(bootstrap, &all);
    let count = ids.len();
    for i in ids {
        let payload = i.to_string();
        let key = format!("k{i}");
        let mut record = BaseRecord::with_opaque_to(topic, i)
            .key(&key)
            .payload(&payload);
        if let Some(f) = partition_of {
            record = record.partition(f(i));
        }
        send_blocking(&producer, record);
    }
    flush_all_ok(&producer, count)
        .into_iter()
        .map(|d| (d.id, (d.partition, d.offset)))
        .collect()
}

/// A group consumer driven from the test thread (assign-only or subscribed).
fn group_consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    member_config(bootstrap, group, "runnel-groups-test", extra)
        .create()
        .expect("consumer")
}

fn offsets_tpl(topic: &str, offsets: &[(i32, i64, &str)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for &(p, o, meta) in offsets {
        let mut e = tpl.add_partition(topic, p);
        e.set_offset(Offset::Offset(o)).expect("offset");
        if !meta.is_empty() {
            e.set_metadata(meta);
        }
    }
    tpl
}

/// (partition, offset, metadata) of each element, sorted by partition.
fn committed_triples(tpl: &TopicPartitionList) -> Vec<(i32, Offset, String)> {
    let mut v: Vec<_> = tpl
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset(), e.metadata().to_owned()))
        .collect();
    v.sort_by_key(|t| t.0);
    v
}

fn expected_triples(offsets: &[(i32, i64, &str)]) -> Vec<(i32, Offset, String)> {
    let mut v: Vec<_> = offsets
        .iter()
        .map(|&(p, o, m)| (p, Offset::Offset(o), m.to_owned()))
        .collect();
    v.sort_by_key(|t| t.0);
    v
}

fn commit_sync(consumer: &BaseConsumer, tpl: &TopicPartitionList) {
    consumer
        .commit(tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("sync commit of {tpl:?}: {e}"));
}

fn fetch_committed(consumer: &BaseConsumer, topic: &str, partitions: &[i32]) -> TopicPartitionList {
    consumer
        .committed_offsets(partitions_tpl(topic, partitions), TIMEOUT)
        .unwrap_or_else(|e| panic!("committed offsets of {topic} {partitions:?}: {e}"))
}

fn delete_groups(
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient<DefaultClientContext>,
    groups: &[&str],
) -> Vec<Result<String, (String, RDKafkaErrorCode)>> {
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, admin.delete_groups(groups, &opts))
            .await
            .expect("DeleteGroups timed out")
            .expect("DeleteGroups request")
    })
}

// ---------------------------------------------------------------------------
// 1. Three members share six partitions; every record arrives exactly once.

#[test]
fn three_consumers_share_six_partitions_exactly_once() {
    let _wd = watchdog(
        "three_consumers_share_six_partitions_exactly_once",
        Duration::from_secs(150),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "shared6";
    const N: usize = 30_000;
    rt.block_on(create_topic(&admin, TOPIC, 6, &[]));

    let t0 = Instant::now();
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let name = format!("share-{i}");
            Member::start(
                &name,
                member_config(&bootstrap, "g-share", &name, &[]),
                TOPIC,
            )
        })
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    // Default strategy "range,roundrobin": range on 6 partitions / 3 members.
    let stable = wait_balanced(&refs, 6, 2, Duration::from_secs(30));
    eprintln!("three members balanced after {:?}", t0.elapsed());

    let placement = produce(&bootstrap, TOPIC, 0..N, None);
    let partitions_used: BTreeSet<i32> = placement.values().map(|&(p, _)| p).collect();
    assert_eq!(partitions_used.len(), 6, "keys spread over all partitions");

    wait_for(
        Duration::from_secs(60),
        || {
            format!(
                "the group received {} of {N} records:\n  {}",
                members.iter().map(|m| m.received_len()).sum::<usize>(),
                describe_all(&refs)
            )
        },
        || (members.iter().map(|m| m.received_len()).sum::<usize>() >= N).then_some(()),
    );

    let mut seen: HashMap<usize, &str> = HashMap::new();
    for (m, (assigned, events_at_stable)) in members.iter().zip(&stable) {
        let (now, events_now) = m.snapshot();
        assert_eq!(
            (&now, events_now),
            (assigned, *events_at_stable),
            "{}: a rebalance after the group was stable: {:?}",
            m.name,
            m.events()
        );
        for r in m.received() {
            assert_eq!(
                placement.get(&r.id),
                Some(&(r.partition, r.offset)),
                "{}: record {r:?} is not where it was acknowledged",
                m.name
            );
            assert!(
                assigned.contains(&r.partition),
                "{}: record {r:?} from a partition outside its assignment {assigned:?}",
                m.name
            );
            if let Some(other) = seen.insert(r.id, &m.name) {
                panic!("record {r:?} delivered twice: to {other} and to {}", m.name);
            }
        }
    }
    assert_eq!(seen.len(), N, "distinct records received");
    eprintln!(
        "{N} records consumed exactly once by 3 members ({:?}) in {:?}",
        members.iter().map(|m| m.received_len()).collect::<Vec<_>>(),
        t0.elapsed()
    );
    for m in members {
        m.close();
    }
}

// ---------------------------------------------------------------------------
// 2. A member that leaves (LeaveGroup on close) hands its partitions over at
// once, not after its session timeout.

#[test]
fn member_leaving_moves_its_partitions() {
    let _wd = watchdog(
        "member_leaving_moves_its_partitions",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "leave4";
    rt.block_on(create_topic(&admin, TOPIC, 4, &[]));

    // A 30 s session: partitions moving within 10 s can only come from the
    // LeaveGroup, not from the session expiring.
    let settings = [
        ("session.timeout.ms", "30000"),
        ("max.poll.interval.ms", "60000"),
    ];
    let a = Member::start(
        "stay",
        member_config(&bootstrap, "g-leave", "stay", &settings),
        TOPIC,
    );
    let b = Member::start(
        "leave",
        member_config(&bootstrap, "g-leave", "leave", &settings),
        TOPIC,
    );
    wait_balanced(&[&a, &b], 4, 2, Duration::from_secs(30));

    let t = Instant::now();
    b.close();
    let closed = t.elapsed();
    let all: BTreeSet<i32> = (0..4).collect();
    wait_for(
        Duration::from_secs(10),
        || format!("after the other member left: {}", a.describe()),
        || (a.assignment() == all).then_some(()),
    );
    eprintln!(
        "leaver closed in {closed:?}; survivor owned all 4 partitions {:?} after the close began",
        t.elapsed()
    );

    const N: usize = 400;
    let placement = produce(&bootstrap, TOPIC, 0..N, Some(&|i| (i % 4) as i32));
    let got = wait_for(
        Duration::from_secs(30),
        || format!("records produced after the leave: {}", a.describe()),
        || {
            let got = a.received();
            (got.len() >= N).then_some(got)
        },
    );
    let mut ids = HashSet::new();
    for r in &got {
        assert_eq!(
            placement.get(&r.id),
            Some(&(r.partition, r.offset)),
            "{r:?}"
        );
        assert!(ids.insert(r.id), "record {r:?} delivered twice");
    }
    assert_eq!(ids.len(), N);
    a.close();
}

// ---------------------------------------------------------------------------
// 3. A member that stops heartbeating (its process SIGKILLed) is expired after
// its session timeout and its partitions move to the survivor.

const CHILD_ENV: &str = "RUNNEL_GROUPS_CHILD_MEMBER";
const CHILD_MARK: &str = "CHILD-ASSIGNMENT";
const EXPIRY_SETTINGS: [(&str, &str); 3] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("max.poll.interval.ms", "30000"),
];

/// Helper, not a test of its own: the group member that
/// `member_that_stops_heartbeating_is_expired` runs in a child process (this
/// test binary re-executed) and SIGKILLs. Prints its assignment on stdout
/// whenever it changes.
#[test]
#[ignore = "helper run in a child process by member_that_stops_heartbeating_is_expired"]
fn group_member_child_process() {
    let spec = std::env::var(CHILD_ENV)
        .expect("only run as the child of member_that_stops_heartbeating_is_expired");
    let parts: Vec<&str> = spec.split('|').collect();
    let [bootstrap, group, topic] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let state = Arc::new(MemberState::default());
    let consumer: BaseConsumer<GroupContext> =
        member_config(bootstrap, group, "doomed", &EXPIRY_SETTINGS)
            .create_with_context(GroupContext {
                state: state.clone(),
            })
            .expect("child consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut reported: Option<BTreeSet<i32>> = None;
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
        let now = state.membership.lock().unwrap().assignment.clone();
        if reported.as_ref() != Some(&now) {
            let list: Vec<String> = now.iter().map(|p| p.to_string()).collect();
            let mut out = std::io::stdout().lock();
            writeln!(out, "\n{CHILD_MARK} [{}]", list.join(",")).expect("stdout");
            out.flush().expect("stdout");
            reported = Some(now);
        }
    }
    // Never leave the group: the parent kills this process long before.
    std::mem::forget(consumer);
}

/// Kills the child process if the test ends without doing so.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn member_that_stops_heartbeating_is_expired() {
    let _wd = watchdog(
        "member_that_stops_heartbeating_is_expired",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "expiry4";
    rt.block_on(create_topic(&admin, TOPIC, 4, &[]));

    let survivor = Member::start(
        "survivor",
        member_config(&bootstrap, "g-expiry", "survivor", &EXPIRY_SETTINGS),
        TOPIC,
    );
    wait_balanced(&[&survivor], 4, 4, Duration::from_secs(30));

    let child = Command::new(std::env::current_exe().expect("current test binary"))
        .args([
            "--ignored",
            "--exact",
            "group_member_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{bootstrap}|g-expiry|{TOPIC}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child member");
    let mut child = ChildGuard(child);
    let child_assignment: Arc<Mutex<Option<BTreeSet<i32>>>> = Arc::default();
    let stdout = child.0.stdout.take().expect("child stdout");
    let seen = child_assignment.clone();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find(CHILD_MARK) {
                let list = line[at + CHILD_MARK.len()..]
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let set: BTreeSet<i32> = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("partition number"))
                    .collect();
                *seen.lock().unwrap() = Some(set);
            }
        }
    });

    wait_for(
        Duration::from_secs(30),
        || {
            format!(
                "no 2+2 split with the child member: child {:?}; {}",
                child_assignment.lock().unwrap(),
                survivor.describe()
            )
        },
        || {
            let theirs = child_assignment.lock().unwrap().clone()?;
            balanced(&[survivor.assignment(), theirs], 4, 2).then_some(())
        },
    );

    // SIGKILL: no LeaveGroup, no more heartbeats.
    child.0.kill().expect("SIGKILL the child member");
    child.0.wait().expect("reap the child member");
    let killed = Instant::now();
    let all: BTreeSet<i32> = (0..4).collect();
    wait_for(
        Duration::from_secs(20),
        || {
            format!(
                "the killed member's partitions did not move (session.timeout.ms=6000): {}",
                survivor.describe()
            )
        },
        || (survivor.assignment() == all).then_some(()),
    );
    let moved = killed.elapsed();
    eprintln!("survivor owned all partitions {moved:?} after the SIGKILL");
    // Its last heartbeat was at most 1 s before the kill, so Kafka expires the
    // member no earlier than ~5 s after it; a connection close is not a leave.
    assert!(
        moved >= Duration::from_secs(4),
        "partitions moved {moved:?} after the kill, before the 6 s session could expire: \
         does the broker drop members when their connection closes? Kafka waits for the \
         session timeout"
    );
    survivor.close();
}

// ---------------------------------------------------------------------------
// 4. The client-side assignors: 1, 2, then 3 members on 6 partitions.

fn assignor_joins(strategy: &str) {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let topic = format!("assignor-{strategy}");
    let group = format!("g-{strategy}");
    rt.block_on(create_topic(&admin, &topic, 6, &[]));
    let cooperative = strategy == "cooperative-sticky";
    let t0 = Instant::now();

    let start = |name: &str| {
        Member::start(
            name,
            member_config(
                &bootstrap,
                &group,
                name,
                &[("partition.assignment.strategy", strategy)],
            ),
            &topic,
        )
    };
    let mut members = vec![start("first")];
    let mut previous = wait_balanced(&[&members[0]], 6, 6, Duration::from_secs(30));
    for (joiner, per_member) in [("second", 3), ("third", 2)] {
        members.push(start(joiner));
        let refs: Vec<&Member> = members.iter().collect();
        let now = wait_balanced(&refs, 6, per_member, Duration::from_secs(30));
        eprintln!(
            "{strategy}: {} members balanced {:?} after {:?}",
            members.len(),
            now.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            t0.elapsed()
        );
        if cooperative {
            // Existing members keep a subset of what they had, and only the
            // partitions they give up are revoked (incrementally).
            for (i, (before, events_before)) in previous.iter().enumerate() {
                let m = &members[i];
                let (after, _) = &now[i];
                assert_eq!(m.protocol(), "cooperative", "{}", m.describe());
                assert!(
                    after.is_subset(before),
                    "{}: sticky assignment lost partitions it kept: {before:?} -> {after:?}",
                    m.name
                );
                for e in &m.events()[*events_before..] {
                    match e {
                        Event::Revoke(r) => assert!(
                            r.is_disjoint(after) && r.is_subset(before),
                            "{}: revoked {r:?} going from {before:?} to {after:?}: \
                             a cooperative rebalance revokes only what moves",
                            m.name
                        ),
                        Event::Assign(a) => assert!(
                            a.is_subset(after) && a.is_disjoint(before),
                            "{}: assigned {a:?} going from {before:?} to {after:?}",
                            m.name
                        ),
                        Event::Error(err) => panic!("{}: rebalance error {err}", m.name),
                    }
                }
            }
        } else {
            for m in &members {
                assert_eq!(m.protocol(), "eager", "{}", m.describe());
            }
        }
        previous = now;
    }
    for m in members {
        m.close();
    }
}

#[test]
fn assignor_range_spreads_partitions_on_each_join() {
    let _wd = watchdog("assignor_range", Duration::from_secs(120));
    assignor_joins("range");
}

#[test]
fn assignor_roundrobin_spreads_partitions_on_each_join() {
    let _wd = watchdog("assignor_roundrobin", Duration::from_secs(120));
    assignor_joins("roundrobin");
}

#[test]
fn assignor_cooperative_sticky_revokes_only_moved_partitions() {
    let _wd = watchdog("assignor_cooperative_sticky", Duration::from_secs(120));
    assignor_joins("cooperative-sticky");
}

// ---------------------------------------------------------------------------
// 5. Committed offsets (and their metadata) survive a clean restart and a
// kill -9 of the real binary.

const COMMITTED: [(i32, i64, &str); 3] = [
    (0, 11, "meta-zero"),
    (1, 22, ""),
    (2, 33, "meta-two: {\"k\": 1}"),
];

fn commit_and_check(bootstrap: &str, group: &str, topic: &str) {
    let c = group_consumer(bootstrap, group, &[]);
    commit_sync(&c, &offsets_tpl(topic, &COMMITTED));
    assert_eq!(
        committed_triples(&fetch_committed(&c, topic, &[0, 1, 2])),
        expected_triples(&COMMITTED),
        "committed offsets right after the commit"
    );
    close_bounded(c, TIMEOUT).expect("close");
}

fn check_committed(bootstrap: &str, group: &str, topic: &str, when: &str) {
    let c = group_consumer(bootstrap, group, &[]);
    assert_eq!(
        committed_triples(&fetch_committed(&c, topic, &[0, 1, 2])),
        expected_triples(&COMMITTED),
        "committed offsets {when}"
    );
    close_bounded(c, TIMEOUT).expect("close");
}

#[test]
fn committed_offsets_survive_restart_and_kill9() {
    let _wd = watchdog(
        "committed_offsets_survive_restart_and_kill9",
        Duration::from_secs(120),
    );
    const TOPIC: &str = "durable-commits";
    let rt = broker_runtime();

    // Clean restart of the in-process broker.
    let t0 = Instant::now();
    let mut broker = rt.block_on(TestBroker::start());
    {
        let admin = admin(&broker.bootstrap());
        rt.block_on(create_topic(&admin, TOPIC, 3, &[]));
    }
    produce(
        &broker.bootstrap(),
        TOPIC,
        0..300,
        Some(&|i| (i % 3) as i32),
    );
    commit_and_check(&broker.bootstrap(), "g-durable", TOPIC);
    rt.block_on(broker.restart());
    check_committed(
        &broker.bootstrap(),
        "g-durable",
        TOPIC,
        "after a clean restart",
    );
    eprintln!("clean restart variant: {:?}", t0.elapsed());

    // kill -9 of the real binary, restarted on the same data dir and port.
    let t1 = Instant::now();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = data.path().join("broker.log");
    let store = data.path().join("data");
    let bootstrap = format!("127.0.0.1:{port}");
    let process = BrokerProcess::start(&store, port, log.clone());
    {
        let admin = admin(&bootstrap);
        rt.block_on(create_topic(&admin, TOPIC, 3, &[]));
    }
    produce(&bootstrap, TOPIC, 0..300, Some(&|i| (i % 3) as i32));
    commit_and_check(&bootstrap, "g-killed", TOPIC);
    process.kill9();
    let process = BrokerProcess::start(&store, port, log);
    check_committed(&bootstrap, "g-killed", TOPIC, "after kill -9 and restart");
    drop(process);
    eprintln!("kill -9 variant: {:?}", t1.elapsed());
}

// ---------------------------------------------------------------------------
// 6. A new consumer in the group resumes exactly at the committed offsets.

#[test]
fn restarted_consumer_resumes_from_commit() {
    let _wd = watchdog(
        "restarted_consumer_resumes_from_commit",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "resume3";
    const N: usize = 3000;
    const FIRST: usize = 1000;
    rt.block_on(create_topic(&admin, TOPIC, 3, &[]));
    // Small batches and one batch per partition per fetch: the first
    // consumer's records (and so its commits) are spread over partitions.
    let placement = produce_with(
        &bootstrap,
        TOPIC,
        0..N,
        None,
        &[("batch.num.messages", "50")],
    );
    let mut per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for &(p, _) in placement.values() {
        *per_partition.entry(p).or_default() += 1;
    }

    // First consumer: exactly FIRST records, committing as it goes.
    let c1 = group_consumer(
        &bootstrap,
        "g-resume",
        &[("max.partition.fetch.bytes", "1024")],
    );
    c1.subscribe(&[TOPIC]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first: Vec<Received> = Vec::new();
    while first.len() < FIRST {
        assert!(
            Instant::now() < deadline,
            "first consumer got {} of {FIRST} records",
            first.len()
        );
        match c1.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                first.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    id: parse_id(m.payload()).expect("numbered payload"),
                });
                if first.len().is_multiple_of(250) {
                    c1.commit_consumer_state(CommitMode::Sync)
                        .expect("sync commit");
                }
            }
            Some(Err(e)) => panic!("first consumer: {e}"),
        }
    }
    // Next offset per partition after what the first consumer got; each
    // partition was read from 0 without gaps.
    let mut next: BTreeMap<i32, i64> = (0..3).map(|p| (p, 0)).collect();
    for r in &first {
        assert_eq!(
            placement.get(&r.id),
            Some(&(r.partition, r.offset)),
            "{r:?}"
        );
        let n = next.get_mut(&r.partition).expect("partition");
        assert_eq!(
            r.offset, *n,
            "first consumer read partition {} out of order",
            r.partition
        );
        *n += 1;
    }
    let committed = c1.committed(TIMEOUT).expect("committed");
    for e in committed.elements() {
        let want = next[&e.partition()];
        let got = e.offset();
        if want == 0 {
            assert!(
                matches!(got, Offset::Invalid | Offset::Offset(0)),
                "partition {} never consumed but committed {got:?}",
                e.partition()
            );
        } else {
            assert_eq!(
                got,
                Offset::Offset(want),
                "committed offset of partition {}",
                e.partition()
            );
        }
    }
    // A list from committed() holds references into the client (toppars,
    // hence broker handles): librdkafka's destroy would wait for it forever.
    drop(committed);
    close_bounded(c1, TIMEOUT).expect("close the first consumer");
    eprintln!("first consumer stopped at {next:?} of {per_partition:?}");
    let midway = next
        .iter()
        .filter(|&(p, &n)| n > 0 && n < per_partition.get(p).copied().unwrap_or(0))
        .count();
    assert!(
        midway >= 2,
        "test setup: the first consumer should stop in the middle of at least two \
         partitions: {next:?} of {per_partition:?}"
    );

    // Second consumer, same group: exactly the rest.
    let first_ids: HashSet<usize> = first.iter().map(|r| r.id).collect();
    let c2 = group_consumer(&bootstrap, "g-resume", &[]);
    c2.subscribe(&[TOPIC]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rest: HashSet<usize> = HashSet::new();
    let mut expect_next = next.clone();
    while rest.len() < N - FIRST {
        assert!(
            Instant::now() < deadline,
            "second consumer got {} of {} records",
            rest.len(),
            N - FIRST
        );
        match c2.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let id = parse_id(m.payload()).expect("numbered payload");
                assert!(
                    !first_ids.contains(&id),
                    "record {id} (partition {} offset {}) delivered again after its commit",
                    m.partition(),
                    m.offset()
                );
                let n = expect_next.get_mut(&m.partition()).expect("partition");
                assert_eq!(
                    m.offset(),
                    *n,
                    "second consumer on partition {}: expected offset {n} (committed {:?})",
                    m.partition(),
                    next.get(&m.partition())
                );
                *n += 1;
                assert!(rest.insert(id), "record {id} delivered twice");
            }
            Some(Err(e)) => panic!("second consumer: {e}"),
        }
    }
    assert_eq!(first_ids.len() + rest.len(), N);
    close_bounded(c2, TIMEOUT).expect("close the second consumer");
}

// ---------------------------------------------------------------------------
// 7. An assign-only consumer (group id, no subscribe) commits; another one in
// the same group sees the commits and starts from them.

#[test]
fn assign_only_consumer_commits_and_fetches() {
    let _wd = watchdog(
        "assign_only_consumer_commits_and_fetches",
        Duration::from_secs(90),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "assigned2";
    rt.block_on(create_topic(&admin, TOPIC, 2, &[]));
    let placement = produce(&bootstrap, TOPIC, 0..100, Some(&|i| (i % 2) as i32));
    let offsets = [(0, 20, "first"), (1, 35, "second")];

    let c1 = group_consumer(&bootstrap, "g-assign-only", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset(TOPIC, 1, Offset::Beginning)
        .unwrap();
    c1.assign(&tpl).expect("assign");
    commit_sync(&c1, &offsets_tpl(TOPIC, &offsets));
    assert_eq!(
        committed_triples(&c1.committed(TIMEOUT).expect("committed")),
        expected_triples(&offsets),
        "committed() of the committing consumer"
    );
    close_bounded(c1, TIMEOUT).expect("close");

    let c2 = group_consumer(&bootstrap, "g-assign-only", &[]);
    assert_eq!(
        committed_triples(&fetch_committed(&c2, TOPIC, &[0, 1])),
        expected_triples(&offsets),
        "committed offsets seen by a second consumer"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Stored).unwrap();
    tpl.add_partition_offset(TOPIC, 1, Offset::Stored).unwrap();
    c2.assign(&tpl).expect("assign");
    let want = (50 - 20) + (50 - 35);
    let mut next: BTreeMap<i32, i64> = [(0, 20), (1, 35)].into();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = 0;
    while got < want {
        assert!(
            Instant::now() < deadline,
            "consumed {got} of {want} records from the committed offsets"
        );
        match c2.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let n = next.get_mut(&m.partition()).expect("partition");
                assert_eq!(
                    m.offset(),
                    *n,
                    "partition {} from Offset::Stored",
                    m.partition()
                );
                *n += 1;
                let id = parse_id(m.payload()).expect("numbered payload");
                assert_eq!(placement[&id], (m.partition(), m.offset()));
                got += 1;
            }
            Some(Err(e)) => panic!("second consumer: {e}"),
        }
    }
    close_bounded(c2, TIMEOUT).expect("close");
}

// ---------------------------------------------------------------------------
// 8. DeleteGroups: an empty group goes with its offsets; an unknown group is
// GROUP_ID_NOT_FOUND; a group with a member is NON_EMPTY_GROUP.

#[test]
fn admin_deletes_empty_groups_only() {
    let _wd = watchdog("admin_deletes_empty_groups_only", Duration::from_secs(90));
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "deleted2";
    rt.block_on(create_topic(&admin, TOPIC, 2, &[]));
    let offsets = [(0, 5, "five"), (1, 7, "seven")];

    let c = group_consumer(&bootstrap, "g-del-empty", &[]);
    commit_sync(&c, &offsets_tpl(TOPIC, &offsets));
    assert_eq!(
        committed_triples(&fetch_committed(&c, TOPIC, &[0, 1])),
        expected_triples(&offsets)
    );
    close_bounded(c, TIMEOUT).expect("close");

    assert_eq!(
        delete_groups(&rt, &admin, &["g-del-empty"]),
        vec![Ok("g-del-empty".to_owned())],
        "deleting a group with offsets and no members"
    );
    let c = group_consumer(&bootstrap, "g-del-empty", &[]);
    let after: Vec<(i32, Offset)> = committed_triples(&fetch_committed(&c, TOPIC, &[0, 1]))
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect();
    assert_eq!(
        after,
        vec![(0, Offset::Invalid), (1, Offset::Invalid)],
        "committed offsets after DeleteGroups"
    );
    close_bounded(c, TIMEOUT).expect("close");

    assert_eq!(
        delete_groups(&rt, &admin, &["g-never-existed"]),
        vec![Err((
            "g-never-existed".to_owned(),
            RDKafkaErrorCode::GroupIdNotFound
        ))],
        "deleting an unknown group"
    );

    let m = Member::start(
        "active",
        member_config(&bootstrap, "g-del-active", "active", &[]),
        TOPIC,
    );
    wait_balanced(&[&m], 2, 2, Duration::from_secs(30));
    assert_eq!(
        delete_groups(&rt, &admin, &["g-del-active"]),
        vec![Err((
            "g-del-active".to_owned(),
            RDKafkaErrorCode::NonEmptyGroup
        ))],
        "deleting a group with an active member"
    );
    m.close();
    assert_eq!(
        delete_groups(&rt, &admin, &["g-del-active"]),
        vec![Ok("g-del-active".to_owned())],
        "deleting the group once its member left"
    );
}

// ---------------------------------------------------------------------------
// 9. ListGroups + DescribeGroups (librdkafka's rd_kafka_list_groups).

/// Decodes a ConsumerProtocolAssignment (any version: the fields read here
/// lead every version) into its partitions of `topic`.
fn decode_assignment(bytes: &[u8], topic: &str) -> BTreeSet<i32> {
    let mut at = 0usize;
    let mut take = |n: usize| -> &[u8] {
        let s = &bytes[at..at + n];
        at += n;
        s
    };
    let _version = i16::from_be_bytes(take(2).try_into().unwrap());
    let topics = i32::from_be_bytes(take(4).try_into().unwrap());
    let mut out = BTreeSet::new();
    for _ in 0..topics {
        let len = i16::from_be_bytes(take(2).try_into().unwrap()) as usize;
        let name = String::from_utf8(take(len).to_vec()).expect("topic name");
        let n = i32::from_be_bytes(take(4).try_into().unwrap());
        for _ in 0..n {
            let p = i32::from_be_bytes(take(4).try_into().unwrap());
            if name == topic {
                out.insert(p);
            }
        }
    }
    out
}

#[test]
fn group_listing_describes_members() {
    let _wd = watchdog("group_listing_describes_members", Duration::from_secs(90));
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    const TOPIC: &str = "listed2";
    const GROUP: &str = "g-listed";
    rt.block_on(create_topic(&admin, TOPIC, 2, &[]));

    let start = |name: &str| {
        Member::start(
            name,
            member_config(
                &bootstrap,
                GROUP,
                name,
                &[("partition.assignment.strategy", "range")],
            ),
            TOPIC,
        )
    };
    let a = start("lister-a");
    let b = start("lister-b");
    wait_balanced(&[&a, &b], 2, 1, Duration::from_secs(30));

    let q = group_consumer(&bootstrap, "g-observer", &[]);
    let list = q
        .fetch_group_list(Some(GROUP), TIMEOUT)
        .expect("ListGroups/DescribeGroups");
    assert_eq!(list.groups().len(), 1, "{:?}", list.groups());
    let g = &list.groups()[0];
    assert_eq!(g.name(), GROUP);
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.protocol(), "range");
    let mut clients: Vec<&str> = g.members().iter().map(|m| m.client_id()).collect();
    clients.sort();
    let described: Vec<(&str, &str, &str)> = g
        .members()
        .iter()
        .map(|m| (m.id(), m.client_id(), m.client_host()))
        .collect();
    assert_eq!(clients, ["lister-a", "lister-b"], "{described:?}");
    let ids: HashSet<&str> = g.members().iter().map(|m| m.id()).collect();
    assert_eq!(ids.len(), 2, "distinct member ids: {described:?}");
    for m in g.members() {
        assert!(!m.id().is_empty(), "member id of {}", m.client_id());
        assert!(
            !m.client_host().is_empty(),
            "client host of {}",
            m.client_id()
        );
        assert!(
            m.metadata().is_some_and(|md| !md.is_empty()),
            "subscription metadata of {}",
            m.client_id()
        );
        let owner = if m.client_id() == "lister-a" { &a } else { &b };
        let assignment = m.assignment().expect("member assignment");
        assert_eq!(
            decode_assignment(assignment, TOPIC),
            owner.assignment(),
            "DescribeGroups assignment of {} vs what it was given",
            m.client_id()
        );
    }

    let all = q.fetch_group_list(None, TIMEOUT).expect("ListGroups");
    assert!(
        all.groups().iter().any(|g| g.name() == GROUP),
        "{GROUP} missing from the full listing: {:?}",
        all.groups().iter().map(|g| g.name()).collect::<Vec<_>>()
    );

    a.close();
    b.close();
    let list = q
        .fetch_group_list(Some(GROUP), TIMEOUT)
        .expect("DescribeGroups after the members left");
    let g = &list.groups()[0];
    assert_eq!(
        (g.state(), g.members().len()),
        ("Empty", 0),
        "group after every member left"
    );
    close_bounded(q, TIMEOUT).expect("close");
}
