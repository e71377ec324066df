//! Named listeners (as the apache/kafka image's compose examples use them):
//! every broker listener is bound, the controller listener is not, and a
//! client is told the advertised address of the listener it came in through.

use kafka_protocol::messages::*;
use protocol_tests::*;

/// Two broker listeners advertised under different host names, plus a
/// controller listener; ports are ephemeral, so advertised port 0 means "the
/// port bound".
async fn two_listener_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        for (key, value) in [
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "CONTROLLER://127.0.0.1:0,EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            ),
            (
                "advertised.listeners",
                "INTERNAL://127.0.0.1:0,EXTERNAL://localhost:0",
            ),
            ("offsets.topic.num.partitions", "2"),
        ] {
            c.set(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_advertises_itself() {
    let b = two_listener_broker().await;
    let addrs = b.handle().local_addrs().to_vec();
    assert_eq!(addrs.len(), 2, "controller listener must not be bound");
    assert_ne!(addrs[0].port(), addrs[1].port());
    // `listeners` order: EXTERNAL first, then INTERNAL.
    let expect = [
        ("localhost".to_owned(), addrs[0].port() as i32),
        ("127.0.0.1".to_owned(), addrs[1].port() as i32),
    ];
    for (addr, (host, port)) in addrs.iter().zip(&expect) {
        let mut c = Client::connect(*addr).await;
        let (node, got_host, got_port) = c.advertised().await;
        assert_eq!(node, b.handle().broker.node_id());
        assert_eq!((&got_host, got_port), (host, *port), "Metadata via {addr}");

        for v in [3, 4] {
            let req = if v <= 3 {
                FindCoordinatorRequest::default().with_key(str_bytes("g"))
            } else {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes("g")])
            };
            let resp = c.call(v, &req).await;
            let (code, got_host, got_port) = if v <= 3 {
                (resp.error_code, resp.host.to_string(), resp.port)
            } else {
                let co = &resp.coordinators[0];
                (co.error_code, co.host.to_string(), co.port)
            };
            assert_eq!(code, 0, "FindCoordinator v{v} via {addr}");
            assert_eq!(
                (&got_host, got_port),
                (host, *port),
                "FindCoordinator v{v} via {addr}"
            );
        }
    }
}
