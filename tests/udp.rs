//! UDP sockets on a real loop: round trips, sender addresses, connected sockets, errors.

mod util;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use reactor::{Error, EventLoop};
use util::Watchdog;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An echo service on the loop, a plain std client on another thread: 100 datagrams of sizes up
/// to the largest IPv4 UDP payload come back byte for byte, each reported with the client's
/// address.
#[test]
fn datagrams_round_trip_with_their_sender() {
    let _watchdog = Watchdog::arm(Duration::from_secs(20));
    let mut lp = EventLoop::new().unwrap();
    let senders = Rc::new(RefCell::new(Vec::new()));
    let seen = senders.clone();
    let server = lp
        .udp_bind(any_port(), move |core, me, data, peer| {
            seen.borrow_mut().push(peer);
            core.udp_send_to(me, data, peer).unwrap();
            if data == b"stop" {
                core.close(me).unwrap();
            }
        })
        .unwrap();
    let server_addr = lp.local_addr(server).unwrap();
    assert_ne!(server_addr.port(), 0);

    let client = std::thread::spawn(move || {
        let socket = UdpSocket::bind(any_port()).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0; 65536];
        for i in 0..100usize {
            let size = [0, 1, 64, 1400, 9000, 65507][i % 6];
            let payload: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
            socket.send_to(&payload, server_addr).unwrap();
            let (n, from) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(from, server_addr);
            assert_eq!(&buf[..n], &payload[..], "datagram {i} of {size} bytes");
        }
        socket.send_to(b"stop", server_addr).unwrap();
        socket.local_addr().unwrap()
    });
    lp.run().unwrap();
    let client_addr = client.join().unwrap();
    assert_eq!(senders.borrow().len(), 101);
    assert!(senders.borrow().iter().all(|&peer| peer == client_addr));
}

/// Two loop sockets talk to each other with `udp_connect` + `udp_send`; a datagram from a third
/// socket is filtered out by the kernel and never reaches the connected one.
#[test]
fn a_connected_socket_sends_without_an_address_and_hears_only_its_peer() {
    let _watchdog = Watchdog::arm(Duration::from_secs(10));
    let mut lp = EventLoop::new().unwrap();
    let heard = Rc::new(RefCell::new(Vec::new()));
    let log = heard.clone();
    let a = lp
        .udp_bind(any_port(), move |core, me, data, _| {
            log.borrow_mut().push(data.to_vec());
            if data == b"pong" {
                core.close(me).unwrap();
            }
        })
        .unwrap();
    let b = lp
        .udp_bind(any_port(), |core, me, data, _| {
            assert_eq!(data, b"ping");
            core.udp_send(me, b"pong").unwrap();
            core.close(me).unwrap();
        })
        .unwrap();
    let (a_addr, b_addr) = (lp.local_addr(a).unwrap(), lp.local_addr(b).unwrap());
    lp.udp_connect(a, b_addr).unwrap();
    lp.udp_connect(b, a_addr).unwrap();

    // A stranger's datagram, sent before the ping, must not be delivered to `a`.
    let stranger = UdpSocket::bind(any_port()).unwrap();
    stranger.send_to(b"intruder", a_addr).unwrap();
    lp.udp_send(a, b"ping").unwrap();
    lp.run().unwrap();
    assert_eq!(*heard.borrow(), [b"pong".to_vec()]);
}

/// Sending on an unconnected socket without an address is an immediate error, not a callback.
#[test]
fn send_without_a_peer_fails_at_once() {
    let mut lp = EventLoop::new().unwrap();
    let udp = lp.udp_bind(any_port(), |_, _, _, _| {}).unwrap();
    match lp.udp_send(udp, b"where to?") {
        Err(Error::Io(err)) => assert_eq!(err.raw_os_error(), Some(libc::EDESTADDRREQ)),
        other => panic!("expected EDESTADDRREQ, got {other:?}"),
    }
    assert_eq!(lp.udp_queued_bytes(udp).unwrap(), 0);
}

/// Options reach the socket, and a closed socket's id answers `Error::Closed` everywhere.
#[test]
fn options_apply_and_a_closed_socket_is_stale() {
    let mut lp = EventLoop::new().unwrap();
    let udp = lp.udp_bind(any_port(), |_, _, _, _| {}).unwrap();
    lp.udp_set_broadcast(udp, true).unwrap();
    lp.udp_set_multicast_ttl_v4(udp, 4).unwrap();
    lp.udp_set_multicast_loop_v4(udp, false).unwrap();
    let peer = lp.local_addr(udp).unwrap();
    lp.close(udp).unwrap();
    assert!(matches!(lp.udp_send_to(udp, b"x", peer), Err(Error::Closed(_))));
    assert!(matches!(lp.udp_set_broadcast(udp, false), Err(Error::Closed(_))));
    lp.run().unwrap();
    assert!(matches!(lp.local_addr(udp), Err(Error::Closed(_))));
}

/// An open UDP socket keeps the loop alive, like a Node dgram socket; unreferenced, it does not.
#[test]
fn an_unreferenced_socket_does_not_keep_the_loop_alive() {
    let mut lp = EventLoop::new().unwrap();
    let udp = lp.udp_bind(any_port(), |_, _, _, _| {}).unwrap();
    assert!(lp.alive());
    lp.unref(udp).unwrap();
    assert!(!lp.alive());
    lp.run().unwrap(); // returns at once
    assert!(lp.is_active(udp));
}
