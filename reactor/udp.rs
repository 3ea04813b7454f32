//! UDP sockets: datagrams in, datagrams out, with a bounded send queue.
//!
//! ```
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! // An echo service: every datagram goes back to its sender.
//! let server = lp.udp_bind("127.0.0.1:0".parse().unwrap(), |core, me, data, peer| {
//!     let _ = core.udp_send_to(me, data, peer);
//! })?;
//! let server_addr = lp.local_addr(server)?;
//! // A client that sends one datagram and stops the loop when the answer comes back.
//! let client = lp.udp_bind("127.0.0.1:0".parse().unwrap(), |core, _, data, _| {
//!     assert_eq!(data, b"ping");
//!     core.stop();
//! })?;
//! lp.udp_send_to(client, b"ping", server_addr)?;
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract
//!
//! - The receive callback gets each datagram (borrowed from the loop's read buffer, so at most
//!   64 KiB, the largest UDP payload) and its sender's address. At most [`RECV_BUDGET`]
//!   datagrams are taken per iteration; the rest wait for the next one.
//! - [`Core::udp_send_to`] sends at once when it can. When the socket's buffer is full the
//!   datagram is queued and sent when the socket is writable, in order; the queue holds at most
//!   [`SEND_QUEUE_LIMIT`] bytes, beyond which sending fails with [`Error::QueueFull`].
//!   Immediate errors (a datagram too large, an unreachable network) are returned; a queued
//!   datagram that fails later is dropped, as the network itself may drop any datagram.
//! - [`Core::udp_connect`] fixes the peer: [`Core::udp_send`] needs no address, and datagrams
//!   from other addresses are filtered out by the kernel. An ICMP "port unreachable" for a
//!   connected socket is ignored by the receive path.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::Location;

use crate::dispatch::{self, Callback, Event};
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, State, Udp};
use crate::stream::READ_BUFFER_SIZE;
use crate::{Error, Result};

/// How many datagrams one socket receives per iteration before other handles get their turn.
/// A datagram is one system call; 64 of them take tens of microseconds.
pub const RECV_BUDGET: usize = 64;

/// The most bytes a UDP socket queues while its send buffer is full.
pub const SEND_QUEUE_LIMIT: usize = 1024 * 1024;

/// A UDP socket's receive callback: its id, the datagram, the sender.
pub(crate) type UdpFn = Box<dyn FnMut(&mut Core, Udp, &[u8], SocketAddr)>;

/// What the loop keeps for a UDP socket besides its callback.
pub(crate) struct UdpState {
    socket: mio::net::UdpSocket,
    /// Datagrams waiting for the socket to be writable; `None` when there are none.
    queue: Option<Box<SendQueue>>,
}

#[derive(Default)]
struct SendQueue {
    /// Payload and destination (`None`: the connected peer).
    datagrams: VecDeque<(Box<[u8]>, Option<SocketAddr>)>,
    bytes: usize,
}

impl UdpState {
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

fn send(socket: &mio::net::UdpSocket, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
    match to {
        Some(addr) => socket.send_to(data, addr),
        None => socket.send(data),
    }
}

impl Core {
    /// Binds a UDP socket to `addr` (port 0: any free port) and starts receiving: `on_recv`
    /// runs for every datagram with the socket's id, the payload and the sender.
    #[track_caller]
    pub fn udp_bind(
        &mut self,
        addr: SocketAddr,
        on_recv: impl FnMut(&mut Core, Udp, &[u8], SocketAddr) + 'static,
    ) -> Result<Udp> {
        let socket = mio::net::UdpSocket::bind(addr)?;
        let state = State::Udp(UdpState { socket, queue: None });
        let callback = Callback::Udp(Box::new(on_recv));
        let id = self.add_handle(Handle::new(state, callback, Location::caller()));
        let Some(State::Udp(state)) = self.handles.get_mut(id).map(|h| &mut h.state) else {
            unreachable!("just inserted")
        };
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        if let Err(err) = self.poll.registry().register(&mut state.socket, id.token(), interest) {
            self.handles.remove(id);
            return Err(err.into());
        }
        self.set_active(id, true);
        Ok(Udp(id))
    }

    /// Sends `data` to `addr`, or queues it if the socket's buffer is full. See the
    /// [module docs](self) for errors.
    pub fn udp_send_to(&mut self, udp: Udp, data: &[u8], addr: SocketAddr) -> Result<()> {
        self.send_datagram(udp, data, Some(addr))
    }

    /// Sends `data` to the connected peer (see [`Core::udp_connect`]).
    pub fn udp_send(&mut self, udp: Udp, data: &[u8]) -> Result<()> {
        self.send_datagram(udp, data, None)
    }

    fn send_datagram(&mut self, udp: Udp, data: &[u8], to: Option<SocketAddr>) -> Result<()> {
        let state = self.open_udp_mut(udp)?;
        if state.queue.is_none() {
            match send(&state.socket, data, to) {
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err.into()),
            }
        }
        let queue = state.queue.get_or_insert_with(Box::default);
        if queue.bytes + data.len() > SEND_QUEUE_LIMIT {
            return Err(Error::QueueFull(udp.0));
        }
        queue.bytes += data.len();
        queue.datagrams.push_back((data.into(), to));
        Ok(())
    }

    /// Connects the socket to `addr`: [`Core::udp_send`] goes there, and only datagrams from
    /// there are received.
    pub fn udp_connect(&mut self, udp: Udp, addr: SocketAddr) -> Result<()> {
        Ok(self.open_udp_mut(udp)?.socket.connect(addr)?)
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`).
    pub fn udp_set_broadcast(&mut self, udp: Udp, on: bool) -> Result<()> {
        Ok(self.open_udp_mut(udp)?.socket.set_broadcast(on)?)
    }

    /// Joins the IPv4 multicast group `group` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the default one).
    pub fn udp_join_multicast_v4(
        &mut self,
        udp: Udp,
        group: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> Result<()> {
        Ok(self.open_udp_mut(udp)?.socket.join_multicast_v4(&group, &interface)?)
    }

    /// Leaves a group joined with [`Core::udp_join_multicast_v4`].
    pub fn udp_leave_multicast_v4(
        &mut self,
        udp: Udp,
        group: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> Result<()> {
        Ok(self.open_udp_mut(udp)?.socket.leave_multicast_v4(&group, &interface)?)
    }

    /// Whether multicast datagrams this socket sends are looped back to the local host.
    pub fn udp_set_multicast_loop_v4(&mut self, udp: Udp, on: bool) -> Result<()> {
        Ok(self.open_udp_mut(udp)?.socket.set_multicast_loop_v4(on)?)
    }

    /// The time-to-live of outgoing multicast datagrams (default 1: the local network).
    pub fn udp_set_multicast_ttl_v4(&mut self, udp: Udp, ttl: u32) -> Result<()> {
        Ok(self.open_udp_mut(udp)?.socket.set_multicast_ttl_v4(ttl)?)
    }

    /// Bytes of datagrams queued and not sent yet.
    pub fn udp_queued_bytes(&self, udp: Udp) -> Result<usize> {
        match self.handles.get(udp.0) {
            Some(Handle { state: State::Udp(state), closing: false, .. }) => {
                Ok(state.queue.as_ref().map_or(0, |queue| queue.bytes))
            }
            _ => Err(Error::Closed(udp.0)),
        }
    }

    fn udp_mut(&mut self, id: HandleId) -> Option<&mut UdpState> {
        match self.handles.get_mut(id) {
            Some(Handle { state: State::Udp(state), closing: false, .. }) => Some(state),
            _ => None,
        }
    }

    fn open_udp_mut(&mut self, udp: Udp) -> Result<&mut UdpState> {
        self.udp_mut(udp.0).ok_or(Error::Closed(udp.0))
    }

    /// A readiness event for UDP socket `id`.
    pub(crate) fn udp_ready(&mut self, id: HandleId, event: &mio::event::Event) {
        if event.is_writable() {
            self.flush_datagrams(id);
        }
        if event.is_readable() {
            self.receive(id);
        }
    }

    /// The receive path: up to [`RECV_BUDGET`] datagrams, each handed to the callback. Also
    /// called from the pending phase for a socket that spent its budget.
    pub(crate) fn receive(&mut self, id: HandleId) {
        let mut buf = std::mem::take(&mut self.read_buf);
        if buf.is_empty() {
            buf = vec![0; READ_BUFFER_SIZE];
        }
        let mut emptied = false;
        for _ in 0..RECV_BUDGET {
            let Some(state) = self.udp_mut(id) else {
                emptied = true;
                break;
            };
            match state.socket.recv_from(&mut buf) {
                Ok((n, peer)) => dispatch::run_handle(self, id, Event::Datagram(&buf[..n], peer)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    emptied = true;
                    break;
                }
                // An ICMP error reported for an earlier send; the next datagram may be fine.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(_) => {
                    emptied = true;
                    break;
                }
            }
        }
        self.read_buf = buf;
        if !emptied {
            self.pending.push_handle(id);
        }
    }

    fn flush_datagrams(&mut self, id: HandleId) {
        let Some(state) = self.udp_mut(id) else { return };
        let Some(queue) = state.queue.as_mut() else { return };
        while let Some((data, to)) = queue.datagrams.front() {
            match send(&state.socket, data, *to) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Sent, or failed for good: either way it leaves the queue.
                _ => {}
            }
            queue.bytes -= data.len();
            queue.datagrams.pop_front();
        }
        state.queue = None;
    }
}
