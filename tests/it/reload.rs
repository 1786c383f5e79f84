//! Reloads: only a fully valid snapshot is swapped in; queries never fail across a reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{
    EXAMPLE_COM, Query, Reply, TestServer, qtype, rcode, read_framed, udp_exchange, write_framed,
};

#[tokio::test]
async fn reload_swaps_in_changed_zone_data() {
    let server = TestServer::start().await;
    let zone = EXAMPLE_COM.replace(
        "www         A     192.0.2.80",
        "www         A     192.0.2.81",
    );
    std::fs::write(server.zone_path("example.com"), zone).unwrap();
    server.server.reload().expect("valid reload");
    let reply = server.udp(&Query::new("www.example.com", qtype::A)).await;
    assert_eq!(reply.answers(), ["www.example.com. 3600 IN A 192.0.2.81"]);
}

#[tokio::test]
async fn broken_zone_changes_nothing_and_names_file_and_line() {
    let server = TestServer::start().await;
    let path = server.zone_path("example.com");
    let zone = format!("{EXAMPLE_COM}bad A 999.1.2.3\n");
    std::fs::write(&path, &zone).unwrap();
    let line = zone.lines().count();
    let err = server
        .server
        .reload()
        .expect_err("broken zone is rejected")
        .to_string();
    assert!(
        err.starts_with(&format!("{}:{line}:", path.display())),
        "{err}"
    );
    assert_eq!(server.server.reload_failures(), 1);
    let reply = server.udp(&Query::new("www.example.com", qtype::A)).await;
    assert_eq!(
        reply.answers(),
        ["www.example.com. 3600 IN A 192.0.2.80"],
        "old data still served"
    );
}

#[tokio::test]
async fn broken_config_changes_nothing() {
    let server = TestServer::start().await;
    let config = server.dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\nbogus = 1\n",
    )
    .unwrap();
    let err = server
        .server
        .reload()
        .expect_err("bad config is rejected")
        .to_string();
    assert!(
        err.starts_with(&format!("{}:4: unknown field `bogus`", config.display())),
        "{err}"
    );
    let reply = server.udp(&Query::new("www.example.com", qtype::A)).await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
}

#[tokio::test]
async fn removed_zone_stops_being_served_after_reload() {
    let server = TestServer::start().await;
    std::fs::remove_file(server.zone_path("example.net")).unwrap();
    server.server.reload().expect("valid reload");
    assert_eq!(
        server
            .udp(&Query::new("www.example.net", qtype::A))
            .await
            .rcode(),
        rcode::REFUSED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_query_dropped_or_servfailed_across_reloads() {
    let server = TestServer::start().await;
    let addr = server.udp_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..4u16 {
        let stop = Arc::clone(&stop);
        let answered = Arc::clone(&answered);
        clients.push(tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) && sent < 20_000 {
                let query = Query {
                    id: client.wrapping_mul(1000).wrapping_add(sent as u16),
                    ..Query::new("www.example.com", qtype::A)
                };
                let raw = udp_exchange(addr, &query.build(), Duration::from_secs(2))
                    .await
                    .expect("no query unanswered");
                let reply = Reply::decode(raw);
                assert_eq!(reply.rcode(), rcode::NOERROR);
                assert_eq!(reply.answers().len(), 1);
                answered.fetch_add(1, Ordering::Relaxed);
                sent += 1;
            }
        }));
    }
    for round in 0..20 {
        let address = if round % 2 == 0 {
            "192.0.2.80"
        } else {
            "192.0.2.82"
        };
        let zone = EXAMPLE_COM.replace("192.0.2.80", address);
        std::fs::write(server.zone_path("example.com"), zone).unwrap();
        server.server.reload().expect("valid reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client saw only good answers");
    }
    assert!(
        answered.load(Ordering::Relaxed) > 100,
        "clients ran during the reloads"
    );
}

#[tokio::test]
async fn shutdown_finishes_the_tcp_query_in_flight_then_stops_accepting() {
    use tokio::io::AsyncWriteExt;
    let TestServer { server, dir: _dir } = TestServer::start().await;
    let addr = server.tcp_addrs()[0];
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    write_framed(&mut idle, &Query::new("www.example.com", qtype::A).build()).await;
    assert!(read_framed(&mut idle).await.is_some());

    // A query half sent when shutdown starts is still answered.
    let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
    let packet = Query::new("www.example.com", qtype::A).build();
    busy.write_u16(packet.len() as u16).await.unwrap();
    busy.write_all(&packet[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    busy.write_all(&packet[10..]).await.unwrap();
    let reply = Reply::decode(
        read_framed(&mut busy)
            .await
            .expect("in-flight query answered"),
    );
    assert_eq!(reply.answers(), ["www.example.com. 3600 IN A 192.0.2.80"]);
    assert!(
        read_framed(&mut busy).await.is_none(),
        "then the connection closes"
    );
    // The idle connection is closed without waiting for its idle timeout.
    assert!(read_framed(&mut idle).await.is_none());
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
