//! Connecting to one of several addresses: the first that accepts wins, tried in turn (the
//! order `getaddrinfo` gave, as Node does without `autoSelectFamily`). [`dns`](crate::dns)
//! uses it to connect by host name.
//!
//! The stream exists from the first call, so that its handler, its queued writes and a
//! `close` all work while the addresses are being looked up or tried. The addresses still to
//! try live in a map beside the slab, keyed by stream: only streams connecting this way pay
//! for them, and an idle connection stays as small as before.

use std::io;
use std::net::SocketAddr;
use std::panic::Location;

use super::Socket;
use crate::dispatch::Callback;
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, State, Stream};
use crate::stream::StreamHandler;
use crate::{Error, Result};

impl Core {
    /// Connects to the first of `addrs` that accepts, trying them in order: a refused or
    /// unreachable address moves on to the next. `on_open` runs once one is connected; if all
    /// fail, `on_close` gets the last address's error.
    ///
    /// Errors: `InvalidInput` for an empty list (nothing to report a failure for).
    #[track_caller]
    pub fn connect_any(
        &mut self,
        addrs: Vec<SocketAddr>,
        handler: impl StreamHandler,
    ) -> Result<Stream> {
        if addrs.is_empty() {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
            return Err(err.into());
        }
        let stream = self.stream_awaiting_addresses(Box::new(handler), Location::caller())?;
        self.addresses_found(stream, Ok(addrs));
        Ok(stream)
    }

    /// A stream whose addresses are not known yet: connecting, with no socket. Writes are
    /// queued; a close waits for them as for any connect.
    pub(crate) fn stream_awaiting_addresses(
        &mut self,
        handler: Box<dyn StreamHandler>,
        site: &'static Location<'static>,
    ) -> Result<Stream> {
        let id = self.insert_stream(Socket::Resolving, true, Callback::Stream(handler), site)?;
        Ok(Stream(id))
    }

    /// The addresses for `stream` are known (or could not be found): start trying them.
    pub(crate) fn addresses_found(&mut self, stream: Stream, addrs: io::Result<Vec<SocketAddr>>) {
        let id = stream.0;
        if self.stream_mut(id).is_none_or(|state| state.finished) {
            return; // closed while the lookup ran
        }
        match addrs {
            Ok(mut addrs) => {
                addrs.reverse(); // so that `pop` takes them in order
                self.addresses_left.insert(id, addrs);
                let err = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
                self.connect_next(id, err);
            }
            Err(err) => self.finish_stream(id, Some(err), None),
        }
    }

    /// A connect of stream `id` failed with `err`: try its next address, or end the stream
    /// with `err` if none is left. Every failed connect goes through here.
    pub(crate) fn connect_next(&mut self, id: HandleId, mut err: io::Error) {
        while let Some(addr) = self.addresses_left.get_mut(&id).and_then(Vec::pop) {
            match self.reconnect(id, addr) {
                Ok(()) => return,
                Err(next_err) => err = next_err,
            }
        }
        self.finish_stream(id, Some(err), None);
    }

    /// Replaces stream `id`'s socket with a new connect to `addr`, registered with the same
    /// token. (No event of the old socket can arrive under that token afterwards: it is
    /// deregistered before it closes, and the event being handled was its last in this
    /// batch, since epoll reports a descriptor once per wait.)
    fn reconnect(&mut self, id: HandleId, addr: SocketAddr) -> io::Result<()> {
        let mut tcp = mio::net::TcpStream::connect(addr)?;
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        self.poll.registry().register(&mut tcp, id.token(), interest)?;
        let Some(Handle { state: State::Stream(state), .. }) = self.handles.get_mut(id) else {
            return Err(Error::Closed(id).into());
        };
        let mut old = std::mem::replace(&mut state.socket, Socket::Tcp(tcp));
        if let Some(source) = old.source() {
            let _ = self.poll.registry().deregister(source);
        }
        Ok(())
    }
}
