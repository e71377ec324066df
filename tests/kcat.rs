//! Debian's kcat (librdkafka 2.0.x, the oldest client we promise to serve)
//! against an in-process broker: metadata listing, producing with keys,
//! headers and every codec, consuming by offset and by timestamp, and
//! offset queries. kcat must be installed (`apt-get install kcat`); the
//! tests fail, not skip, without it.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    admin, broker_runtime, create_topic, flush_all_ok, recording_producer, send_blocking,
    TestBroker, TIMEOUT,
};
use rdkafka::producer::BaseRecord;

const KCAT: &str = "/usr/bin/kcat";

/// Runs kcat with `args` (and `-b bootstrap`), feeding `stdin`, bounded by
/// [`TIMEOUT`]. Returns stdout; panics on a non-zero exit.
fn kcat(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    assert!(
        Path::new(KCAT).exists(),
        "{KCAT} not found: these tests need Debian's kcat (apt-get install kcat)"
    );
    let mut child = Command::new(KCAT)
        .arg("-b")
        .arg(bootstrap)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).expect("kcat stdin");
        // Dropping the pipe closes it: kcat -P ends at EOF.
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("kcat wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kcat {args:?} still running after {TIMEOUT:?}");
        }
        // Poll interval for a child's exit (std has no wait with timeout).
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader.join().unwrap().expect("kcat stdout");
    let stderr = err_reader.join().unwrap().expect("kcat stderr");
    assert!(
        status.success(),
        "kcat {args:?} failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// `kcat -Q -t topic:partition:ts` → the offset it prints.
fn query(bootstrap: &str, topic: &str, partition: i32, ts: i64) -> i64 {
    let spec = format!("{topic}:{partition}:{ts}");
    let out = kcat(bootstrap, &["-Q", "-t", &spec], None);
    // "<topic> [<partition>] offset <offset>"
    let prefix = format!("{topic} [{partition}] offset ");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no offset line for {spec} in:\n{out}"));
    line[prefix.len()..]
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// One consumed message as printed with [`FORMAT`].
#[derive(Debug, PartialEq)]
struct Consumed {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: String,
    headers: String,
    payload: String,
}

/// Fields separated by '|' (never in keys, headers or payloads here).
const FORMAT: &str = "%p|%o|%T|%k|%h|%s\\n";

fn consume_kcat(bootstrap: &str, topic: &str, extra: &[&str]) -> Vec<Consumed> {
    let mut args = vec!["-C", "-t", topic, "-e", "-q", "-f", FORMAT];
    args.extend_from_slice(extra);
    kcat(bootstrap, &args, None)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 6, "unexpected kcat line {l:?}");
            Consumed {
                partition: f[0].parse().unwrap(),
                offset: f[1].parse().unwrap(),
                timestamp: f[2].parse().unwrap(),
                key: f[3].to_owned(),
                headers: f[4].to_owned(),
                payload: f[5].to_owned(),
            }
        })
        .collect()
}

#[test]
fn kcat_lists_metadata() {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    rt.block_on(create_topic(&admin, "listed", 3, &[]));
    rt.block_on(create_topic(&admin, "other", 1, &[]));

    let out = kcat(&bootstrap, &["-L"], None);
    let port = broker.handle.as_ref().unwrap().local_addr().port();
    assert!(out.contains(" 1 brokers:\n"), "broker count in:\n{out}");
    assert!(
        out.contains(&format!("  broker 1 at 127.0.0.1:{port} (controller)\n")),
        "broker line in:\n{out}"
    );
    assert!(out.contains(" 2 topics:\n"), "topic count in:\n{out}");
    assert!(
        out.contains("  topic \"listed\" with 3 partitions:\n"),
        "listed in:\n{out}"
    );
    assert!(
        out.contains("  topic \"other\" with 1 partitions:\n"),
        "other in:\n{out}"
    );
    for p in 0..3 {
        assert!(
            out.contains(&format!(
                "    partition {p}, leader 1, replicas: 1, isrs: 1\n"
            )),
            "partition {p} in:\n{out}"
        );
    }
    let one = kcat(&bootstrap, &["-L", "-t", "other"], None);
    assert!(
        one.contains("  topic \"other\" with 1 partitions:\n"),
        "{one}"
    );
    assert!(!one.contains("\"listed\""), "{one}");
}

#[test]
fn kcat_produces_keys_headers_with_every_codec() {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    const N: usize = 300;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("kcat-{codec}");
        let input: String = (0..N)
            .map(|i| format!("key{}:value-{codec}-{i}\n", i % 7))
            .collect();
        kcat(
            &bootstrap,
            &[
                "-P", "-t", &topic, "-K:", "-z", codec, "-H", "h1=x", "-H", "h2=y", "-H", "h1=z",
            ],
            Some(input.as_bytes()),
        );
        assert_eq!(query(&bootstrap, &topic, 0, -2), 0, "{codec} low");
        assert_eq!(query(&bootstrap, &topic, 0, -1), N as i64, "{codec} high");

        let got = consume_kcat(&bootstrap, &topic, &["-o", "beginning"]);
        assert_eq!(got.len(), N, "{codec}");
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.partition, 0);
            assert_eq!(m.offset, i as i64, "{codec}");
            assert_eq!(m.key, format!("key{}", i % 7), "{codec} key at {i}");
            assert_eq!(m.payload, format!("value-{codec}-{i}"), "{codec} at {i}");
            assert_eq!(m.headers, "h1=x,h2=y,h1=z", "{codec} headers at {i}");
        }
    }
}

#[test]
fn kcat_consumes_by_offset_and_timestamp_and_queries_offsets() {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    const TOPIC: &str = "kcat-times";
    const N: usize = 10;
    // One batch (linger): timestamp lookups must look inside a batch.
    let producer = recording_producer(&bootstrap, &[("linger.ms", "200")]);
    for i in 0..N {
        send_blocking(
            &producer,
            BaseRecord::with_opaque_to(TOPIC, i)
                .key("k")
                .payload(&format!("p{i}"))
                .timestamp(1000 * (i as i64 + 1)),
        );
    }
    flush_all_ok(&producer, N);

    let all = consume_kcat(&bootstrap, TOPIC, &["-o", "beginning"]);
    let offsets = |ms: &[Consumed]| ms.iter().map(|m| m.offset).collect::<Vec<_>>();
    assert_eq!(offsets(&all), (0..N as i64).collect::<Vec<_>>());
    for m in &all {
        assert_eq!(m.timestamp, 1000 * (m.offset + 1));
        assert_eq!(m.payload, format!("p{}", m.offset));
        assert_eq!(m.key, "k");
        assert_eq!(m.headers, "");
    }

    // By offset: absolute, relative to the end, with a count.
    assert_eq!(
        offsets(&consume_kcat(&bootstrap, TOPIC, &["-o", "3"])),
        (3..10).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&consume_kcat(&bootstrap, TOPIC, &["-o", "-2"])),
        vec![8, 9]
    );
    assert_eq!(
        offsets(&consume_kcat(&bootstrap, TOPIC, &["-o", "5", "-c", "2"])),
        vec![5, 6]
    );

    // By timestamp: start at the first record with ts >= s@, stop before e@.
    assert_eq!(
        offsets(&consume_kcat(&bootstrap, TOPIC, &["-o", "s@4500"])),
        (4..10).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&consume_kcat(&bootstrap, TOPIC, &["-o", "s@5000"])),
        (4..10).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&consume_kcat(
            &bootstrap,
            TOPIC,
            &["-o", "s@2000", "-o", "e@5000"]
        )),
        vec![1, 2, 3]
    );

    // Offset queries: earliest, latest, by time (between, exact, beyond).
    assert_eq!(query(&bootstrap, TOPIC, 0, -2), 0);
    assert_eq!(query(&bootstrap, TOPIC, 0, -1), N as i64);
    assert_eq!(query(&bootstrap, TOPIC, 0, 0), 0);
    assert_eq!(query(&bootstrap, TOPIC, 0, 2500), 2);
    assert_eq!(query(&bootstrap, TOPIC, 0, 3000), 2);
    assert_eq!(query(&bootstrap, TOPIC, 0, 10_000), 9);
    assert_eq!(query(&bootstrap, TOPIC, 0, 10_001), -1);
}
