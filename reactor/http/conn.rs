//! One connection's state machine: a [`StreamHandler`] that parses requests out of the bytes
//! it is given, calls the server's handler, and keeps its place in the server's timeout lists.
//!
//! ```text
//!            bytes            head complete, body follows         body complete
//!   ┌──────► Head ───────────────────────────────────────► Body ─────────────────┐
//!   │         │ head complete, no body: call the handler                          │
//!   │         └───────────────────────────────┐          call the handler ◄──────┘
//!   │                                         ▼
//!   └──────────────── keep-alive ◄──── request dispatched ────► Done (no keep-alive,
//!                                                                 refused, or shutdown)
//! ```
//!
//! In `Head` the connection waits on the header timeout (or, with nothing buffered and
//! nothing owed, the idle timeout); in `Body` on the body timeout; in `Done` it reads and drops
//! what still comes until its last response is out and the client closes, or the linger
//! timeout passes. See `docs/http.md`.

use std::mem;
use std::rc::Rc;

use super::body::{BodyDecoder, Decoded};
use super::parse::{Framing, HeaderSlots, HttpError, Version, parse_head};
use super::pipeline::{MAX_PIPELINE, Wait};
use super::response::{self, Response};
use super::server::{Body, BodySink, Request, Shared};
use crate::event_loop::Core;
use crate::handle::Stream;
use crate::stream::{Conn, DEFAULT_HIGH_WATER, StreamHandler};

const NO_KEY: u32 = u32::MAX;

/// Where the connection is in its current request.
enum Phase {
    /// Between requests, or reading a head.
    Head,
    /// Reading a body.
    Body(Box<InBody>),
    /// No more requests: the last one did not keep the connection alive, or was refused.
    /// Input is dropped.
    Done,
}

/// Whether a connection may read another request, as its line of responses says.
enum Line {
    Open,
    /// [`MAX_PIPELINE`] requests in flight, or reading paused for backpressure.
    Full,
    /// Its last response is out: no more requests.
    Closing,
}

/// A request whose body is being read.
struct InBody {
    decoder: BodyDecoder,
    /// The head's bytes, parsed again when the body is complete.
    head: Vec<u8>,
    res: Option<Response>,
    /// `None`: the body is buffered in `body`.
    sink: Option<Box<dyn BodySink>>,
    body: Vec<u8>,
    keep_alive: bool,
}

pub(crate) struct HttpConn {
    shared: Rc<Shared>,
    stream: Stream,
    /// This connection's entry in the server's state (`NO_KEY` if it was turned away).
    key: u32,
    /// Bytes received and not yet parsed: part of a head, or requests waiting behind a full
    /// pipeline. Empty (and unallocated) on an idle connection.
    input: Vec<u8>,
    phase: Phase,
    requests: u32,
    /// A request completed in this read: a head now partial is a new one, with a fresh
    /// header timeout.
    new_head: bool,
}

impl HttpConn {
    pub(crate) fn new(shared: Rc<Shared>, stream: Stream) -> Self {
        HttpConn {
            shared,
            stream,
            key: NO_KEY,
            input: Vec::new(),
            phase: Phase::Head,
            requests: 0,
            new_head: false,
        }
    }

    /// Parses and dispatches what `buf` holds; returns how many bytes it used. Output of the
    /// responses given in the meantime leaves in one write at the end.
    fn process(&mut self, conn: &mut Conn<'_>, buf: &[u8]) -> usize {
        {
            let mut state = self.shared.state.borrow_mut();
            state.batching = Some(self.stream);
            // Left over only if a handler panicked mid-batch: it was that connection's.
            state.batch.clear();
        }
        let mut pos = 0;
        loop {
            if conn.core().is_closing(self.stream) {
                break;
            }
            let (used, more) = match (&self.phase, self.line()) {
                (_, Line::Closing) | (Phase::Done, _) => break,
                (Phase::Head, _) if pos == buf.len() => break,
                (Phase::Head, Line::Full) => {
                    self.block(conn);
                    break;
                }
                (Phase::Head, Line::Open) => self.read_head(conn, &buf[pos..]),
                (Phase::Body(_), _) => self.read_body(conn, &buf[pos..]),
            };
            pos += used;
            if !more {
                break;
            }
        }
        self.flush_batch(conn);
        pos
    }

    /// Writes the batch of responses in one write, then the shutdown a response asked for
    /// meanwhile.
    fn flush_batch(&mut self, conn: &mut Conn<'_>) {
        let (batch, shutdown) = {
            let mut state = self.shared.state.borrow_mut();
            state.batching = None;
            let batch = mem::take(&mut state.batch);
            let shutdown = state
                .entry(self.key, self.stream)
                .is_ok_and(|entry| mem::take(&mut entry.shutdown_owed));
            (batch, shutdown)
        };
        let mut batch = batch;
        if !batch.is_empty() && !conn.write(&batch) && !shutdown {
            // The client does not read its responses: stop reading its requests.
            self.block(conn);
        }
        batch.clear();
        let (core, stream) = conn.split();
        let mut state = self.shared.state.borrow_mut();
        state.batch = batch;
        // A response that waits for its batch to go out may write again.
        state.wake_drained(core, self.key, stream);
        drop(state);
        if shutdown {
            conn.shutdown();
        }
    }

    /// Parses a head at the start of `buf` and dispatches its request.
    fn read_head(&mut self, conn: &mut Conn<'_>, buf: &[u8]) -> (usize, bool) {
        let config = &self.shared.config;
        let (max_head, max_headers, max_body) =
            (config.max_head, config.max_headers, config.max_body);
        let max_requests = config.max_requests;
        let mut slots = HeaderSlots::new();
        let (head, len) = match parse_head(buf, &mut slots, max_head, max_headers) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return (0, false),
            Err(err) => {
                self.refuse(conn, err, None);
                return (0, false);
            }
        };
        self.requests += 1;
        self.new_head = true;
        let keep_alive = head.keep_alive() && max_requests.is_none_or(|max| self.requests < max);
        let (head_only, http10) = (head.method() == "HEAD", head.version() == Version::Http10);
        let Some(res) = self.response(head_only, http10, keep_alive) else { return (0, false) };
        let decoder = match BodyDecoder::new(head.framing(), max_body) {
            None => {
                if !keep_alive {
                    self.phase = Phase::Done;
                }
                self.call(conn.core(), &Request { head, body: &[] }, res);
                return (len, true);
            }
            Some(Err(err)) => {
                self.refuse(conn, err, Some(res));
                return (len, false);
            }
            Some(Ok(decoder)) => decoder,
        };
        let req = Request { head, body: &[] };
        let choice = self.shared.handler.borrow_mut().on_head(conn.core(), &req);
        let sink = match choice {
            Body::Buffer => None,
            Body::Stream(sink) => Some(sink),
            Body::Reject(status) => {
                self.refuse(conn, HttpError::new(status, "refused by the handler"), Some(res));
                return (len, false);
            }
        };
        if req.expects_continue() {
            self.send_continue(conn.core(), &res);
        }
        // The whole body is here already (the usual small POST): no copy.
        if let (None, Framing::Length(n)) = (&sink, req.framing()) {
            if let Some(body) = buf[len..].get(..n as usize) {
                if !keep_alive {
                    self.phase = Phase::Done;
                }
                self.call(conn.core(), &Request { head: req.head, body }, res);
                return (len + body.len(), true);
            }
        }
        let head = buf[..len].to_vec();
        let res = Some(res);
        let body = Vec::new();
        self.phase = Phase::Body(Box::new(InBody { decoder, head, res, sink, body, keep_alive }));
        (len, true)
    }

    /// Feeds `buf` to the body decoder; at the end of the body, dispatches the request.
    fn read_body(&mut self, conn: &mut Conn<'_>, buf: &[u8]) -> (usize, bool) {
        let Phase::Body(body) = &mut self.phase else { return (0, false) };
        let mut pos = 0;
        loop {
            match body.decoder.decode(&buf[pos..]) {
                Ok((used, Decoded::Data(data))) => {
                    pos += used;
                    match &mut body.sink {
                        Some(sink) => sink.on_data(conn.core(), data),
                        None => body.body.extend_from_slice(data),
                    }
                }
                Ok((used, Decoded::NeedMore)) => return (pos + used, false),
                Ok((used, Decoded::Done)) => {
                    pos += used;
                    break;
                }
                Err(err) => {
                    let Phase::Body(body) = mem::replace(&mut self.phase, Phase::Done) else {
                        unreachable!()
                    };
                    if let Some(sink) = body.sink {
                        sink.on_abort(conn.core());
                    }
                    self.refuse(conn, err, body.res);
                    return (pos, false);
                }
            }
        }
        let Phase::Body(body) = mem::replace(&mut self.phase, Phase::Head) else { unreachable!() };
        let InBody { head, res, sink, body, keep_alive, .. } = *body;
        if !keep_alive {
            self.phase = Phase::Done;
        }
        let Some(res) = res else { return (pos, true) };
        let max_headers = self.shared.config.max_headers;
        let mut slots = HeaderSlots::new();
        // It parsed before; it parses again.
        let Ok(Some((head, _))) = parse_head(&head, &mut slots, usize::MAX, max_headers) else {
            self.refuse(conn, HttpError::new(400, "head changed"), Some(res));
            return (pos, false);
        };
        let req = Request { head, body: &body };
        match sink {
            // Like `call`: the request's own context.
            Some(sink) => conn.core().with_own_context(|core| sink.on_end(core, &req, res)),
            None => self.call(conn.core(), &req, res),
        }
        (pos, true)
    }

    /// Calls the handler, with a context of the request's own: one that the handler sets
    /// must not reach the next request read in the same data callback.
    fn call(&mut self, core: &mut Core, req: &Request<'_>, res: Response) {
        let handler = &self.shared.handler;
        core.with_own_context(|core| handler.borrow_mut().on_request(core, req, res));
    }

    /// A response for the request just parsed: the next number in the line. `head_only`: a
    /// HEAD request; `http10`: an HTTP/1.0 client.
    fn response(&mut self, head_only: bool, http10: bool, keep_alive: bool) -> Option<Response> {
        let seq = {
            let mut state = self.shared.state.borrow_mut();
            let entry = state.entry(self.key, self.stream).ok()?;
            let seq = entry.next_seq;
            entry.next_seq = seq.wrapping_add(1);
            seq
        };
        let (shared, key, stream) = (self.shared.clone(), self.key, self.stream);
        Some(Response::new(shared, key, stream, seq, head_only, http10, keep_alive))
    }

    /// Answers with an error status, and reads no more requests: the connection closes
    /// after the response. `res`: the response of the request refused, if it has one.
    fn refuse(&mut self, conn: &mut Conn<'_>, err: HttpError, res: Option<Response>) {
        self.phase = Phase::Done;
        // A request that never parsed still takes its place in the line.
        let Some(res) = res.or_else(|| self.response(false, false, false)) else {
            return conn.abort();
        };
        let res = res.closing();
        let body = format!("{}\n", err.reason);
        let headers = [("Content-Type", "text/plain")];
        if res.send(conn.core(), err.status, &headers, body.as_bytes()).is_err() {
            conn.close();
        }
    }

    /// `100 Continue`, in its place in the line, before the response of the same request.
    fn send_continue(&self, core: &mut Core, res: &Response) {
        let mut state = self.shared.state.borrow_mut();
        let _ = state.emit(core, self.key, self.stream, res.seq(), |out, _| {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        });
    }

    /// What the line of responses owed allows: one lookup per request.
    fn line(&self) -> Line {
        let mut state = self.shared.state.borrow_mut();
        match state.entry(self.key, self.stream) {
            Ok(entry) if entry.closing => Line::Closing,
            Ok(entry) if entry.blocked || entry.in_flight() >= MAX_PIPELINE => Line::Full,
            _ => Line::Open,
        }
    }

    /// Stops reading until the line drains (see `unblock`).
    fn block(&mut self, conn: &mut Conn<'_>) {
        if let Ok(entry) = self.shared.state.borrow_mut().entry(self.key, self.stream) {
            entry.blocked = true;
        }
        conn.pause();
    }

    /// Reads again once fewer than [`MAX_PIPELINE`] requests are in flight and the client
    /// takes its responses; parses what waited meanwhile.
    fn unblock(&mut self, conn: &mut Conn<'_>) {
        let queued = conn.queued_bytes();
        let ready = {
            let mut state = self.shared.state.borrow_mut();
            let Ok(entry) = state.entry(self.key, self.stream) else { return };
            let ready =
                entry.blocked && entry.in_flight() < MAX_PIPELINE && queued < DEFAULT_HIGH_WATER;
            if ready {
                entry.blocked = false;
            }
            ready
        };
        if ready {
            conn.resume();
            self.take_input(conn, &[]);
        }
    }

    /// The read path proper: parse `data` after what was buffered, keep what is left.
    fn take_input(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        if matches!(self.phase, Phase::Done) {
            self.input = Vec::new();
            return;
        }
        if self.input.is_empty() {
            let used = self.process(conn, data);
            if !matches!(self.phase, Phase::Done) {
                self.input.extend_from_slice(&data[used..]);
            }
        } else {
            self.input.extend_from_slice(data);
            let input = mem::take(&mut self.input);
            let used = self.process(conn, &input);
            self.input = input;
            self.input.drain(..used);
        }
        if matches!(self.phase, Phase::Done) || self.input.is_empty() {
            // An idle connection owns no buffer.
            self.input = Vec::new();
        }
        self.retime(conn.core());
    }

    /// Puts the connection on the timeout list for what it now waits for.
    fn retime(&mut self, core: &mut Core) {
        let now = core.now();
        let new_head = mem::take(&mut self.new_head);
        let mut state = self.shared.state.borrow_mut();
        let Ok(entry) = state.entry(self.key, self.stream) else { return };
        if entry.closing {
            return;
        }
        entry.partial = !self.input.is_empty();
        let (partial, in_flight) = (entry.partial, entry.in_flight());
        match self.phase {
            Phase::Body(_) => state.wait(core, self.key, Wait::Body, true, now),
            Phase::Done => state.unlink(self.key),
            Phase::Head if in_flight > 0 => state.unlink(self.key),
            Phase::Head if partial => state.wait(core, self.key, Wait::Head, new_head, now),
            Phase::Head => state.wait(core, self.key, Wait::Idle, true, now),
        }
    }

    /// Answers the responses dropped unsent: 500, or a close if their head was out.
    fn answer_abandoned(&mut self, conn: &mut Conn<'_>) {
        let abandoned = {
            let mut state = self.shared.state.borrow_mut();
            match state.entry(self.key, self.stream) {
                // The usual case, after every read: no response was dropped.
                Ok(entry) if !entry.has_abandoned() => return,
                Ok(entry) => entry.take_abandoned(),
                Err(_) => return,
            }
        };
        for (seq, started) in abandoned {
            if started {
                return conn.abort();
            }
            let (core, stream) = conn.split();
            let mut state = self.shared.state.borrow_mut();
            let body = b"the handler dropped the response\n";
            let sent = state.emit(core, self.key, stream, seq, |out, date| {
                let framing = response::Framing::Length(body.len() as u64);
                response::head(
                    out,
                    500,
                    &[("Content-Type", "text/plain")],
                    framing,
                    true,
                    false,
                    date,
                );
                out.extend_from_slice(body);
            });
            if sent.is_err() || state.finish(core, self.key, stream, seq, true).is_err() {
                drop(state);
                return conn.close();
            }
        }
    }
}

impl StreamHandler for HttpConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let (core, stream) = conn.split();
        let now = core.now();
        let mut state = self.shared.state.borrow_mut();
        let full = self.shared.config.max_connections.is_some_and(|max| state.conns.len() >= max);
        if full || state.shutting_down {
            let date = state.date(now);
            drop(state);
            let mut out = Vec::new();
            let body = b"too many connections\n";
            let framing = response::Framing::Length(body.len() as u64);
            response::head(
                &mut out,
                503,
                &[("Content-Type", "text/plain")],
                framing,
                true,
                false,
                &date,
            );
            out.extend_from_slice(body);
            self.phase = Phase::Done;
            conn.write(&out);
            conn.close();
            return;
        }
        self.key = state.insert(stream, now);
        state.wait(core, self.key, Wait::Head, true, now);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.take_input(conn, data);
        self.answer_abandoned(conn);
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        if let Phase::Body(body) = mem::replace(&mut self.phase, Phase::Done) {
            // The body will never complete: nothing to answer.
            if let Some(sink) = body.sink {
                sink.on_abort(conn.core());
            }
            if let Some(res) = body.res {
                res.discard();
            }
            return conn.close();
        }
        let owed = {
            let mut state = self.shared.state.borrow_mut();
            match state.entry(self.key, self.stream) {
                Ok(entry) if entry.in_flight() > 0 && !entry.closing => {
                    entry.peer_eof = true;
                    true
                }
                _ => false,
            }
        };
        if !owed {
            conn.close();
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        let (core, stream) = conn.split();
        self.shared.state.borrow_mut().wake_drained(core, self.key, stream);
        self.unblock(conn);
        self.answer_abandoned(conn);
    }

    fn on_wake(&mut self, conn: &mut Conn<'_>) {
        self.answer_abandoned(conn);
        let (expired, shutting_down, idle) = {
            let mut state = self.shared.state.borrow_mut();
            let shutting_down = state.shutting_down;
            let Ok(entry) = state.entry(self.key, self.stream) else { return };
            let idle = entry.in_flight() == 0 && !entry.closing;
            (entry.expired.take(), shutting_down, idle)
        };
        match expired {
            Some(Wait::Head) if !self.input.is_empty() => {
                self.refuse(conn, HttpError::new(408, "request head timeout"), None);
                return;
            }
            Some(Wait::Body) => {
                if let Phase::Body(body) = mem::replace(&mut self.phase, Phase::Done) {
                    if let Some(sink) = body.sink {
                        sink.on_abort(conn.core());
                    }
                    self.refuse(conn, HttpError::new(408, "request body timeout"), body.res);
                }
                return;
            }
            Some(Wait::Head | Wait::Idle | Wait::Linger) => return conn.close(),
            None => {}
        }
        if shutting_down && idle && matches!(self.phase, Phase::Head) && self.input.is_empty() {
            return conn.close();
        }
        self.unblock(conn);
    }

    fn on_close(&mut self, core: &mut Core, _stream: Stream, _error: Option<std::io::Error>) {
        if let Phase::Body(body) = mem::replace(&mut self.phase, Phase::Done) {
            if let Some(sink) = body.sink {
                sink.on_abort(core);
            }
            if let Some(res) = body.res {
                res.discard();
            }
        }
        if self.key != NO_KEY {
            let waiters = self.shared.state.borrow_mut().remove(self.key);
            // Their callbacks learn that the connection is gone (`deliver` finds no entry).
            for waiter in waiters {
                core.defer(waiter.deliver);
            }
        }
    }
}

impl Drop for HttpConn {
    /// Only when the loop is dropped with the connection open (else `on_close` has removed its
    /// entry): its drain waiters hold responses, which hold the server, which holds them. Take
    /// them out so that the cycle ends, and drop them once the state is no longer borrowed.
    fn drop(&mut self) {
        let Ok(mut state) = self.shared.state.try_borrow_mut() else { return };
        let waiters = state.take_waiters(self.key, self.stream);
        drop(state);
        drop(waiters);
    }
}
