//! A clean restart keeps every record at its offset, across many segments,
//! and idempotent producers keep working afterwards.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{
    broker_runtime, consume, consumer, flush_all_ok, numbered_payload, read_frame,
    recording_producer, send_blocking, write_frame, TestBroker, TIMEOUT,
};
use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// (topic, partitions, records)
const TOPICS: [(&str, i32, usize); 3] = [("alpha", 1, 3000), ("beta", 2, 4000), ("gamma", 3, 5000)];

/// Where each record landed: (topic, id) → (partition, offset).
type Placement = HashMap<(&'static str, usize), (i32, i64)>;

fn produce_all(bootstrap: &str, tag: &str, first_id: usize) -> Placement {
    // Small batches: a segment rolls only between batches.
    let producer = recording_producer(
        bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("batch.size", "8192"),
        ],
    );
    let mut placement = Placement::new();
    for (topic, _, count) in TOPICS {
        for i in first_id..first_id + count {
            let payload = numbered_payload(&format!("{tag}-{topic}"), i);
            // Keys spread records over the partitions deterministically.
            let key = format!("k{}", i % 17);
            send_blocking(
                &producer,
                BaseRecord::with_opaque_to(topic, i)
                    .key(&key)
                    .payload(&payload),
            );
        }
        for d in flush_all_ok(&producer, count) {
            placement.insert((topic, d.id), (d.partition, d.offset));
        }
    }
    placement
}

/// Consumes every partition from offset 0 to its high watermark and checks
/// each record against where it was acknowledged. `generations` pairs each
/// producer run's payload tag with its placement.
fn check_all(bootstrap: &str, generations: &[(&str, &Placement)]) {
    // Watermark queries on a consumer that never fetches: on a fetching one
    // they would wait behind its fetch long-poll.
    let query = consumer(bootstrap, &[]);
    for (topic, partitions, _) in TOPICS {
        let mut expected: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
        for (tag, placement) in generations {
            for (&(t, id), &at) in placement.iter() {
                if t == topic {
                    let previous = expected.insert(at, numbered_payload(&format!("{tag}-{t}"), id));
                    assert!(previous.is_none(), "two records acknowledged at {at:?}");
                }
            }
        }
        let all: Vec<i32> = (0..partitions).collect();
        for &p in &all {
            let want = expected.keys().filter(|(ep, _)| *ep == p).count() as i64;
            assert_eq!(
                query
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .expect("watermarks"),
                (0, want),
                "{topic}-{p} watermarks"
            );
        }
        let reader = consumer(bootstrap, &[]);
        let got = consume(
            &reader,
            topic,
            &all,
            Offset::Offset(0),
            expected.len(),
            TIMEOUT,
        );
        let mut next_offset = vec![0i64; partitions as usize];
        for m in &got {
            let p = m.partition();
            assert_eq!(
                m.offset(),
                next_offset[p as usize],
                "{topic}-{p}: offsets contiguous"
            );
            next_offset[p as usize] += 1;
            assert_eq!(
                m.payload(),
                expected.get(&(p, m.offset())).map(Vec::as_slice),
                "{topic}-{p} offset {}",
                m.offset()
            );
        }
    }
}

#[test]
fn restart_keeps_every_record_and_producer_state() {
    let rt = broker_runtime();
    let mut broker = rt.block_on(TestBroker::start_with(|c| {
        c.set("log.segment.bytes", "16384").unwrap();
        c.set("num.partitions", "1").unwrap();
    }));
    // Partition counts come from explicit CreateTopics.
    {
        let admin = common::admin(&broker.bootstrap());
        for (topic, partitions, _) in TOPICS {
            rt.block_on(common::create_topic(&admin, topic, partitions, &[]));
        }
    }
    let before = produce_all(&broker.bootstrap(), "r", 0);
    check_all(&broker.bootstrap(), &[("r", &before)]);

    // Several segments per partition, or the test proves little.
    for (topic, partitions, _) in TOPICS {
        for p in 0..partitions {
            let dir = broker.dir.path().join(format!("{topic}-{p}"));
            let segments = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
                })
                .count();
            assert!(segments >= 5, "{topic}-{p}: only {segments} segments");
        }
    }

    rt.block_on(broker.restart());
    check_all(&broker.bootstrap(), &[("r", &before)]);

    // A new idempotent producer after the restart appends after the old data.
    let after = produce_all(&broker.bootstrap(), "r-after", 100_000);
    check_all(&broker.bootstrap(), &[("r", &before), ("r-after", &after)]);

    // And once more: both generations survive a second restart.
    rt.block_on(broker.restart());
    check_all(&broker.bootstrap(), &[("r", &before), ("r-after", &after)]);
}

// ---------------------------------------------------------------------------
// Idempotent producer state survives a clean restart: a Produce request
// captured on the wire before the restart and replayed after it is
// recognised as a duplicate (original offset back, nothing appended).

/// One Produce request seen by the recording proxy and the broker's reply.
#[derive(Clone, Default)]
struct Exchange {
    request: Vec<u8>,
    response: Option<Vec<u8>>,
}

type Exchanges = Arc<Mutex<Vec<Exchange>>>;

async fn recording_connection(client: TcpStream, upstream: SocketAddr, seen: Exchanges) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    // Correlation id → index in `seen`, for this connection's Produce requests.
    let pending: Arc<Mutex<HashMap<i32, usize>>> = Arc::default();
    let to_server = {
        let (seen, pending) = (seen.clone(), pending.clone());
        async move {
            while let Some(frame) = read_frame(&mut client_r).await {
                if i16::from_be_bytes([frame[0], frame[1]]) == 0 {
                    let id = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                    let mut seen = seen.lock().unwrap();
                    pending.lock().unwrap().insert(id, seen.len());
                    seen.push(Exchange {
                        request: frame.clone(),
                        response: None,
                    });
                }
                if write_frame(&mut server_w, &frame).await.is_err() {
                    break;
                }
            }
            let _ = server_w.shutdown().await;
        }
    };
    let to_client = async move {
        while let Some(frame) = read_frame(&mut server_r).await {
            let id = i32::from_be_bytes(frame[0..4].try_into().unwrap());
            if let Some(i) = pending.lock().unwrap().remove(&id) {
                seen.lock().unwrap()[i].response = Some(frame.clone());
            }
            if write_frame(&mut client_w, &frame).await.is_err() {
                break;
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}

/// (partition, error code, base offset) of every partition in a Produce
/// response of `version` (3–12, the versions that name topics).
fn produce_results(version: i16, frame: &[u8]) -> Vec<(i32, i16, i64)> {
    fn uvarint(b: &mut &[u8]) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn take<const N: usize>(b: &mut &[u8]) -> [u8; N] {
        let v = b[..N].try_into().unwrap();
        *b = &b[N..];
        v
    }
    assert!((3..=12).contains(&version), "Produce v{version}");
    let flexible = version >= 9;
    let mut b = &frame[4..];
    if flexible {
        assert_eq!(uvarint(&mut b), 0, "response header tagged fields");
    }
    let mut out = Vec::new();
    let topics = if flexible {
        uvarint(&mut b) - 1
    } else {
        i32::from_be_bytes(take(&mut b)) as u64
    };
    for _ in 0..topics {
        let name_len = if flexible {
            uvarint(&mut b) - 1
        } else {
            i16::from_be_bytes(take(&mut b)) as u64
        };
        b = &b[name_len as usize..];
        let partitions = if flexible {
            uvarint(&mut b) - 1
        } else {
            i32::from_be_bytes(take(&mut b)) as u64
        };
        for _ in 0..partitions {
            let index = i32::from_be_bytes(take(&mut b));
            let error = i16::from_be_bytes(take(&mut b));
            let base = i64::from_be_bytes(take(&mut b));
            out.push((index, error, base));
            // Later fields vary by version; one partition per request here.
            assert_eq!(partitions, 1, "one partition per request");
        }
        assert_eq!(topics, 1, "one topic per request");
    }
    out
}

/// Sends `request` on a fresh connection and returns the reply.
async fn replay(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect for replay");
    write_frame(&mut s, request).await.expect("replay write");
    tokio::time::timeout(TIMEOUT, read_frame(&mut s))
        .await
        .expect("replay reply timed out")
        .expect("replay reply")
}

#[test]
fn idempotent_producer_state_survives_restart() {
    let rt = broker_runtime();
    let proxy = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("proxy bind");
    let proxy_port = proxy.local_addr().unwrap().port();
    let mut broker = rt.block_on(TestBroker::start_with(|c| {
        c.set(
            "advertised.listeners",
            &format!("PLAINTEXT://127.0.0.1:{proxy_port}"),
        )
        .unwrap();
    }));
    let upstream = broker.handle.as_ref().unwrap().local_addr();
    let seen = Exchanges::default();
    let proxy_task = {
        let seen = seen.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = proxy.accept().await {
                tokio::spawn(recording_connection(client, upstream, seen.clone()));
            }
        })
    };
    let bootstrap = format!("127.0.0.1:{proxy_port}");

    // Several Produce requests, each acknowledged before the next is sent.
    const BATCHES: usize = 6;
    const PER_BATCH: usize = 50;
    let producer = recording_producer(
        &bootstrap,
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    for b in 0..BATCHES {
        for i in b * PER_BATCH..(b + 1) * PER_BATCH {
            let payload = numbered_payload("state", i);
            send_blocking(
                &producer,
                BaseRecord::<(), _, usize>::with_opaque_to("state", i).payload(&payload),
            );
        }
        producer.flush(TIMEOUT).expect("flush");
    }
    let total = (BATCHES * PER_BATCH) as i64;
    assert_eq!(producer.context().take().len(), BATCHES * PER_BATCH);
    drop(producer);

    let exchanges = seen.lock().unwrap().clone();
    assert!(
        exchanges.len() >= BATCHES,
        "only {} Produce requests seen",
        exchanges.len()
    );
    let last = exchanges.last().unwrap();
    let version = i16::from_be_bytes([last.request[2], last.request[3]]);
    let original = produce_results(version, last.response.as_ref().expect("reply recorded"));
    assert_eq!(original.len(), 1);
    assert_eq!(original[0].1, 0, "original Produce failed: {original:?}");

    // Control: the broker dedupes the replay before the restart too.
    let before = produce_results(version, &rt.block_on(replay(upstream, &last.request)));
    assert_eq!(before, original, "replay before restart");

    proxy_task.abort();
    rt.block_on(broker.restart());
    let direct = broker.handle.as_ref().unwrap().local_addr();
    let after = produce_results(version, &rt.block_on(replay(direct, &last.request)));
    assert_eq!(after, original, "replay after restart");

    let consumer = consumer(&broker.bootstrap(), &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("state", 0, TIMEOUT)
            .expect("watermarks"),
        (0, total),
        "a replayed batch was appended"
    );
    let got = consume(
        &consumer,
        "state",
        &[0],
        Offset::Offset(0),
        total as usize,
        TIMEOUT,
    );
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(&numbered_payload("state", i)[..]));
    }

    // A new idempotent producer continues the log.
    let producer = recording_producer(
        &broker.bootstrap(),
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    send_blocking(
        &producer,
        BaseRecord::<(), _, usize>::with_opaque_to("state", 0).payload("after"),
    );
    let d = flush_all_ok(&producer, 1);
    assert_eq!((d[0].partition, d[0].offset), (0, total));
}
