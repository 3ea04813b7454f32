//! The request body: a push decoder for `Content-Length` and chunked bodies (RFC 9112 §6, §7)
//! that takes the bytes as they come, in pieces of any size, and hands back the body's data as
//! slices of its input (no copy).
//!
//! ```
//! use reactor::http::body::{BodyDecoder, Decoded};
//! use reactor::http::parse::Framing;
//!
//! // `None` would mean "no body"; `Err`, a Content-Length over the limit.
//! let mut decoder = BodyDecoder::new(Framing::Chunked, 1024).unwrap().unwrap();
//! let mut input: &[u8] = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\nGET /next";
//! let mut body = Vec::new();
//! loop {
//!     let (used, decoded) = decoder.decode(input).unwrap();
//!     input = &input[used..];
//!     match decoded {
//!         Decoded::Data(data) => body.extend_from_slice(data),
//!         Decoded::Done => break,
//!         Decoded::NeedMore => unreachable!("the whole body is here"),
//!     }
//! }
//! assert_eq!((&body[..], input), (&b"hello"[..], &b"GET /next"[..]));
//! ```
//!
//! The chunked grammar is checked byte by byte, strictly, because lenient chunk parsing is how
//! requests get smuggled past a front proxy that reads them differently:
//!
//! - chunk-size is `1*HEXDIG`, at most 16 digits (a size that overflows `u64` is refused, not
//!   wrapped);
//! - chunk extensions (`;name` or `;name=value`, value a token or a quoted string, with
//!   optional whitespace around `;` and `=`) are parsed and dropped; a chunk line is at most
//!   [`MAX_CHUNK_LINE`] bytes;
//! - every line ends in CRLF: a bare LF, or data not followed by CRLF, is refused;
//! - trailer fields must be well-formed (`token ":" value`) and are dropped; all of them
//!   together are at most [`MAX_TRAILERS`] bytes.
//!
//! Every violation is a 400, and a body over the limit a 413.

use super::parse::{Framing, HttpError, is_tchar};

/// The longest chunk-size line, extensions included. Node allows 16 KiB of extensions; real
/// clients send none.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The most bytes of trailer fields after the last chunk.
pub const MAX_TRAILERS: usize = 8192;

fn bad(reason: &'static str) -> HttpError {
    HttpError::new(400, reason)
}

fn too_large() -> HttpError {
    HttpError::new(413, "request body too large")
}

/// What one call to [`BodyDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Body bytes (a slice of the input).
    Data(&'a [u8]),
    /// The body is complete; what follows belongs to the next request.
    Done,
    /// All the input was consumed and the body is not complete.
    NeedMore,
}

/// Where the chunked decoder is in the grammar (RFC 9112 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex digits of a chunk size (`digits` so far).
    Size {
        digits: u8,
    },
    /// Whitespace after the size or an extension: only `;` may follow.
    Bws,
    /// After `;`: optional whitespace, then an extension's name.
    ExtStart,
    ExtName,
    /// Whitespace after an extension's name: `=` or `;` may follow.
    ExtAfterName,
    /// After `=`: optional whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a quoted value's closing quote.
    ExtAfterValue,
    /// Saw the CR that ends the chunk-size line.
    SizeLf,
    /// In the data of a chunk.
    Data,
    /// After a chunk's data: CR then LF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The CR of the final empty line.
    EndLf,
    Done,
}

/// A push decoder for one request body.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: Kind,
    /// Body bytes still allowed.
    allowance: u64,
}

#[derive(Debug)]
enum Kind {
    Length { remaining: u64 },
    Chunked { state: Chunk, size: u64, line: usize },
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing` (from [`parse_head`](super::parse::parse_head))
    /// that refuses, with 413, a body over `max_body` bytes: at once for a `Content-Length`
    /// over it, and as soon as the chunks pass it. `None` for [`Framing::None`].
    pub fn new(framing: Framing, max_body: u64) -> Option<Result<Self, HttpError>> {
        let kind = match framing {
            Framing::None => return None,
            Framing::Length(n) if n > max_body => return Some(Err(too_large())),
            Framing::Length(n) => Kind::Length { remaining: n },
            Framing::Chunked => {
                Kind::Chunked { state: Chunk::Size { digits: 0 }, size: 0, line: 0 }
            }
        };
        Some(Ok(BodyDecoder { kind, allowance: max_body }))
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        match self.kind {
            Kind::Length { remaining } => remaining == 0,
            Kind::Chunked { state, .. } => state == Chunk::Done,
        }
    }

    /// Decodes from the start of `input`; returns how many bytes it used and what it found.
    /// Call again with the rest of the input until it says [`Decoded::Done`] or
    /// [`Decoded::NeedMore`]. An error means the request must be refused and the connection
    /// closed.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Decoded<'a>), HttpError> {
        match &mut self.kind {
            Kind::Length { remaining } => {
                if *remaining == 0 {
                    return Ok((0, Decoded::Done));
                }
                if input.is_empty() {
                    return Ok((0, Decoded::NeedMore));
                }
                let n = input.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                Ok((n, Decoded::Data(&input[..n])))
            }
            Kind::Chunked { state: Chunk::Done, .. } => Ok((0, Decoded::Done)),
            Kind::Chunked { state, size, line } => {
                decode_chunked(state, size, line, &mut self.allowance, input)
            }
        }
    }
}

/// The chunked state machine: consumes framing bytes one at a time, and returns as soon as it
/// has data to hand out or the body ends.
fn decode_chunked<'a>(
    state: &mut Chunk,
    size: &mut u64,
    line: &mut usize,
    allowance: &mut u64,
    input: &'a [u8],
) -> Result<(usize, Decoded<'a>), HttpError> {
    let mut i = 0;
    loop {
        if *state == Chunk::Data {
            let n = (input.len() - i).min(usize::try_from(*size).unwrap_or(usize::MAX));
            if n == 0 {
                return Ok((i, Decoded::NeedMore));
            }
            *size -= n as u64;
            if *size == 0 {
                *state = Chunk::DataCr;
            }
            return Ok((i + n, Decoded::Data(&input[i..i + n])));
        }
        let Some(&b) = input.get(i) else { return Ok((i, Decoded::NeedMore)) };
        i += 1;
        *line += 1;
        let before = *state;
        *state = step(before, b, size, allowance)?;
        match *state {
            Chunk::Done => return Ok((i, Decoded::Done)),
            // A new chunk line, or the start of the trailers: count its length afresh.
            Chunk::Size { digits: 0 } | Chunk::Data => *line = 0,
            Chunk::TrailerStart if before == Chunk::SizeLf => *line = 0,
            Chunk::TrailerStart
            | Chunk::TrailerName
            | Chunk::TrailerValue
            | Chunk::TrailerLf
            | Chunk::EndLf
                if *line > MAX_TRAILERS =>
            {
                return Err(bad("trailer section too large"));
            }
            Chunk::TrailerStart
            | Chunk::TrailerName
            | Chunk::TrailerValue
            | Chunk::TrailerLf
            | Chunk::EndLf => {}
            _ if *line > MAX_CHUNK_LINE => return Err(bad("chunk line too long")),
            _ => {}
        }
    }
}

/// One byte of chunked framing.
fn step(state: Chunk, b: u8, size: &mut u64, allowance: &mut u64) -> Result<Chunk, HttpError> {
    use Chunk::*;
    let ws = b == b' ' || b == b'\t';
    let next = match (state, b) {
        (Size { digits }, _) if b.is_ascii_hexdigit() => {
            if digits == 16 {
                return Err(bad("chunk size overflows"));
            }
            *size = *size << 4 | u64::from(hex(b));
            Size { digits: digits + 1 }
        }
        (Size { digits: 0 }, _) => return Err(bad("invalid chunk size")),
        (Size { .. }, b'\r') => SizeLf,
        (Size { .. } | Bws | ExtToken | ExtAfterValue, b';') => ExtStart,
        (Size { .. } | Bws | ExtToken | ExtAfterValue, _) if ws => Bws,
        (ExtStart, _) if ws => ExtStart,
        (ExtStart | ExtName, _) if is_tchar(b) => ExtName,
        (ExtName | ExtAfterName, _) if ws => ExtAfterName,
        (ExtName | ExtAfterName, b';') => ExtStart,
        (ExtName | ExtAfterName, b'=') => ExtValueStart,
        (ExtName | ExtToken | ExtAfterValue, b'\r') => SizeLf,
        (ExtValueStart, _) if ws => ExtValueStart,
        (ExtValueStart, b'"') => ExtQuoted,
        (ExtValueStart | ExtToken, _) if is_tchar(b) => ExtToken,
        (ExtQuoted, b'"') => ExtAfterValue,
        (ExtQuoted, b'\\') => ExtQuotedEscape,
        (ExtQuoted, _) if ws || (b >= 0x21 && b != 0x7f) => ExtQuoted,
        (ExtQuotedEscape, _) if ws || (b >= 0x21 && b != 0x7f) => ExtQuoted,
        (SizeLf, b'\n') if *size == 0 => TrailerStart,
        (SizeLf, b'\n') => {
            if *size > *allowance {
                return Err(HttpError::new(413, "request body too large"));
            }
            *allowance -= *size;
            Data
        }
        (DataCr, b'\r') => DataLf,
        (DataCr, _) => return Err(bad("chunk data not followed by CRLF")),
        (DataLf, b'\n') => Size { digits: 0 },
        (TrailerStart, b'\r') => EndLf,
        (TrailerStart | TrailerName, _) if is_tchar(b) => TrailerName,
        (TrailerName, b':') => TrailerValue,
        (TrailerValue, b'\r') => TrailerLf,
        (TrailerValue, _) if ws || (b >= 0x21 && b != 0x7f) => TrailerValue,
        (TrailerLf, b'\n') => TrailerStart,
        (EndLf, b'\n') => Done,
        (Size { .. } | Bws | ExtStart | ExtName | ExtAfterName | ExtValueStart | ExtToken, _)
        | (ExtQuoted | ExtQuotedEscape | ExtAfterValue | SizeLf, _) => {
            return Err(bad("malformed chunk line"));
        }
        (TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf, _) => {
            return Err(bad("malformed trailer field"));
        }
        (DataLf, _) => return Err(bad("chunk data not followed by CRLF")),
        (Data | Done, _) => unreachable!("decode_chunked handles data and the end itself"),
    };
    Ok(next)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body and what is left.
    fn decode_in_pieces(
        framing: Framing,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), u16> {
        let mut decoder = BodyDecoder::new(framing, 1 << 20).unwrap().map_err(|e| e.status)?;
        let mut body = Vec::new();
        let mut buffered: Vec<u8> = Vec::new();
        let mut fed = 0;
        loop {
            let (used, decoded) = decoder.decode(&buffered).map_err(|e| e.status)?;
            let decoded = match decoded {
                Decoded::Data(data) => Some(data.to_vec()),
                Decoded::Done => None,
                Decoded::NeedMore => Some(Vec::new()),
            };
            buffered.drain(..used);
            match decoded {
                None => return Ok((body, input.len() - fed + buffered.len())),
                Some(data) if !data.is_empty() => body.extend(data),
                Some(_) if fed == input.len() => return Err(0),
                Some(_) => {
                    let end = (fed + step).min(input.len());
                    buffered.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let input = b"5\r\nhello\r\n1;a=b;c=\"d\\\"e\" ; f\r\n,\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (body, left) = decode_in_pieces(Framing::Chunked, input, step).unwrap();
            assert_eq!((&body[..], left), (&b"hello,0123456789"[..], 4), "pieces of {step}");
        }
        let (body, left) = decode_in_pieces(Framing::Length(3), b"abcdef", 2).unwrap();
        assert_eq!((&body[..], left), (&b"abc"[..], 3));
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let cases: &[(&[u8], u16)] = &[
            (b"zz\r\n", 400),
            (b"\r\n", 400),
            (b"ffffffffffffffffff\r\n", 400),
            (b"5\nhello\r\n0\r\n\r\n", 400),
            (b"5\r\nhelloX\r\n0\r\n\r\n", 400),
            (b"5\r\nhello\n0\r\n\r\n", 400),
            (b"5 \r\nhello\r\n0\r\n\r\n", 400),
            (b"5;\r\nhello\r\n0\r\n\r\n", 400),
            (b"5;a=\r\nhello\r\n0\r\n\r\n", 400),
            (b"5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
            (b"-5\r\nhello\r\n0\r\n\r\n", 400),
            (b"0x5\r\nhello\r\n0\r\n\r\n", 400),
            (b"0\r\nBad Trailer\r\n\r\n", 400),
            (b"0\r\n\n", 400),
            (b"200001\r\n", 413),
        ];
        for (input, status) in cases {
            let got = decode_in_pieces(Framing::Chunked, input, 1);
            assert_eq!(got, Err(*status), "{}", String::from_utf8_lossy(input));
        }
        assert_eq!(BodyDecoder::new(Framing::Length(11), 10).unwrap().unwrap_err().status, 413);
    }

    #[test]
    fn chunk_lines_are_bounded() {
        let mut long = b"5;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        assert_eq!(decode_in_pieces(Framing::Chunked, &long, 64), Err(400));
    }
}
