//! The `runnel` binary as a user runs it: start-up defaults, configuration
//! errors, graceful shutdown on SIGTERM, and the connection limit.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free now and not handed to another test of this binary (they run
/// in parallel: two brokers told the same port would serve each other's
/// clients).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until the broker answers an ApiVersions on `port`: a bare connect
/// can also succeed on a socket that connected to itself (the probe's own
/// ephemeral port equal to `port`) before the broker listens.
fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if served(port) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("broker exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("broker did not listen on {port}");
}

/// One ApiVersions v0 exchange that tells a broker's answer from anything
/// else, without panicking.
fn served(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let body = [0u8, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut len = [0u8; 4];
    let answered = stream.write_all(&(body.len() as i32).to_be_bytes()).is_ok()
        && stream.write_all(&body).is_ok()
        && stream.read_exact(&mut len).is_ok();
    let mut corr = [0u8; 4];
    answered
        && i32::from_be_bytes(len) > 4
        && stream.read_exact(&mut corr).is_ok()
        && corr == [0, 0, 0, 9]
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "broker did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runnel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runnel"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// ApiVersions v0 round trip: proves the connection is served.
fn api_versions(stream: &mut TcpStream) -> std::io::Result<i16> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = [0u8, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    stream.write_all(&(body.len() as i32).to_be_bytes())?;
    stream.write_all(&body)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut resp)?;
    assert_eq!(&resp[..4], &[0, 0, 0, 7], "correlation id");
    Ok(i16::from_be_bytes([resp[4], resp[5]]))
}

/// The broker with no configuration but a loopback listener, in `cwd`.
fn start_in(cwd: &std::path::Path, port: u16) -> Child {
    let mut child = runnel()
        .current_dir(cwd)
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    child
}

#[test]
fn default_data_dir_sigterm_and_clean_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start_in(cwd.path(), port);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(api_versions(&mut conn).unwrap(), 0);
    let data = cwd.path().join("runnel-data");
    let meta = std::fs::read_to_string(data.join("meta.properties")).unwrap();
    assert!(
        meta.contains("node.id=1") && meta.contains("cluster.id="),
        "{meta}"
    );

    let started = Instant::now();
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        data.join(".runnel_cleanshutdown").exists(),
        "clean shutdown is recorded"
    );

    // Restart: same cluster id, the marker is consumed.
    let mut child = start_in(cwd.path(), port);
    assert!(!data.join(".runnel_cleanshutdown").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("meta.properties")).unwrap(),
        meta
    );
    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0),
        "SIGINT exits 0"
    );
}

#[test]
fn bad_configuration_stops_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    type Case = (Vec<String>, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec!["--override".into(), "log.segment.bytes=abc".into()],
            vec![],
            "log.segment.bytes",
        ),
        (
            vec![],
            vec![("KAFKA_NUM_PARTITIONS", "0")],
            "num.partitions",
        ),
        (
            vec!["--override".into(), "listeners=SSL://127.0.0.1:0".into()],
            vec![],
            "listeners",
        ),
        (
            vec!["--override".into(), "no-equals-sign".into()],
            vec![],
            "no-equals-sign",
        ),
    ];
    for (args, env, key) in cases {
        let out = runnel()
            .current_dir(dir.path())
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(key), "names {key}: {stderr}");
    }
    // A properties file, overridden by env, overridden by a flag.
    let file = dir.path().join("server.properties");
    std::fs::write(&file, "log.segment.bytes=bogus\nnum.partitions=zero\n").unwrap();
    let out = runnel()
        .current_dir(dir.path())
        .arg(&file)
        .env("KAFKA_NUM_PARTITIONS", "3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("log.segment.bytes") && !stderr.contains("num.partitions"),
        "{stderr}"
    );
}

#[test]
fn max_connections_is_enforced_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = runnel()
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().display()))
        .arg("--override")
        .arg("max.connections=2")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    // wait_for_port's probe connection may still be counted until the broker
    // notices it closed; give each probe a bounded number of tries.
    let connect_served = || -> Option<TcpStream> {
        for _ in 0..50 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            if api_versions(&mut s).is_ok() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    };
    let a = connect_served().expect("first connection served");
    let _b = connect_served().expect("second connection (= the limit) served");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(api_versions(&mut c).is_err(), "third connection is closed");
    drop(a);
    assert!(
        connect_served().is_some(),
        "a slot freed by a close is reused"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
