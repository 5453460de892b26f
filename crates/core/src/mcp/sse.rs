//! An incremental parser for `text/event-stream` (Server-Sent Events), as
//! MCP's Streamable HTTP transport uses it: bytes arrive in chunks split
//! anywhere (inside a line, inside a CRLF, inside a UTF-8 sequence); events
//! end at a blank line; `data:` lines of one event are joined with `\n`;
//! `event:`, `id:` and `retry:` are kept; comment lines (`:`) are ignored.
//!
//! Memory is bounded: an event larger than `max_event_bytes` is reported
//! as an error and the parser stops (the caller fails closed).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u64>,
    pub data: String,
}

/// A block of the stream up to and including the blank line that ends it,
/// byte for byte as received, with the event it dispatches (`None` for a
/// block without `data:` — comments such as keep-alives, a lone `retry:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub event: Option<Event>,
    pub raw: Vec<u8>,
}

/// Why the event stream cannot be read further (the parser then stays
/// failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// An event larger than the bound (`max`, in bytes).
    TooLarge { max: usize },
    /// A line that is not UTF-8.
    NotUtf8,
    /// Fed again after an error.
    Failed,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::TooLarge { max } => write!(f, "an SSE event exceeds {max} bytes"),
            SseError::NotUtf8 => write!(f, "an SSE line is not UTF-8"),
            SseError::Failed => write!(f, "event stream already failed"),
        }
    }
}

impl std::error::Error for SseError {}

#[derive(Debug)]
pub struct Parser {
    /// The raw bytes of the block being read.
    raw: Vec<u8>,
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` at the start of the next
    /// one belongs to the same line ending.
    after_cr: bool,
    current: Event,
    has_data: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    failed: bool,
}

impl Parser {
    pub fn new(max_event_bytes: usize) -> Parser {
        Parser {
            raw: Vec::new(),
            line: Vec::new(),
            after_cr: false,
            current: Event::default(),
            has_data: false,
            event_bytes: 0,
            max_event_bytes,
            failed: false,
        }
    }

    /// Feed a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        Ok(self
            .feed_blocks(chunk)?
            .into_iter()
            .filter_map(|b| b.event)
            .collect())
    }

    /// Feed a chunk; returns the blocks it completed, with their raw bytes
    /// (an incomplete trailing block is kept until its end arrives).
    pub fn feed_blocks(&mut self, chunk: &[u8]) -> Result<Vec<Block>, SseError> {
        if self.failed {
            return Err(SseError::Failed);
        }
        let mut out: Vec<Block> = Vec::new();
        for &b in chunk {
            self.raw.push(b);
            if self.raw.len() > self.max_event_bytes.saturating_add(64) {
                self.failed = true;
                return Err(SseError::TooLarge {
                    max: self.max_event_bytes,
                });
            }
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    // The CRLF's LF: part of the line ending just handled
                    // (and of the block it ended, if it ended one).
                    if self.raw.len() == 1 {
                        match out.last_mut() {
                            Some(last) => last.raw.push(b),
                            None => out.push(Block {
                                event: None,
                                raw: vec![b],
                            }),
                        }
                        self.raw.clear();
                    }
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out)?;
                }
                b'\n' => self.end_line(&mut out)?,
                _ => {
                    self.line.push(b);
                    self.event_bytes += 1;
                    if self.event_bytes > self.max_event_bytes {
                        self.failed = true;
                        return Err(SseError::TooLarge {
                            max: self.max_event_bytes,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Bytes of an incomplete block held back.
    pub fn pending(&self) -> usize {
        self.raw.len()
    }

    fn end_line(&mut self, out: &mut Vec<Block>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            let raw = std::mem::take(&mut self.raw);
            if self.has_data {
                out.push(Block {
                    event: Some(std::mem::take(&mut self.current)),
                    raw,
                });
            } else {
                self.current = Event::default();
                out.push(Block { event: None, raw });
            }
            self.has_data = false;
            self.event_bytes = 0;
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(());
        }
        let text = String::from_utf8(line).map_err(|_| {
            self.failed = true;
            SseError::NotUtf8
        })?;
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_string()),
            "retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all_at_once(s: &str) -> Vec<Event> {
        Parser::new(1 << 20).feed(s.as_bytes()).unwrap()
    }

    #[test]
    fn events_fields_and_multiline_data() {
        let e = all_at_once("event: message\r\nid: 7\r\nretry: 1500\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: x\n\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].event.as_deref(), Some("message"));
        assert_eq!(e[0].id.as_deref(), Some("7"));
        assert_eq!(e[0].retry, Some(1500));
        assert_eq!(e[0].data, "{\"a\":\n1}");
        assert_eq!(e[1].data, "x");
    }

    #[test]
    fn split_anywhere_gives_the_same_events() {
        let stream = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"t\":\"é\"}}\r\n\r\ndata: second\n\n";
        let whole = all_at_once(stream);
        let bytes = stream.as_bytes();
        for split in 0..bytes.len() {
            let mut p = Parser::new(1 << 20);
            let mut got = p.feed(&bytes[..split]).unwrap();
            got.extend(p.feed(&bytes[split..]).unwrap());
            assert_eq!(got, whole, "split at {split}");
        }
        // One byte at a time.
        let mut p = Parser::new(1 << 20);
        let mut got = Vec::new();
        for b in bytes {
            got.extend(p.feed(&[*b]).unwrap());
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn blocks_keep_every_byte_across_splits() {
        let stream =
            ": ping\r\n\r\nevent: message\r\nid: 9\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: x\n\n";
        let bytes = stream.as_bytes();
        for split in 0..bytes.len() {
            let mut p = Parser::new(1 << 20);
            let mut got = p.feed_blocks(&bytes[..split]).unwrap();
            got.extend(p.feed_blocks(&bytes[split..]).unwrap());
            let raw: Vec<u8> = got.iter().flat_map(|b| b.raw.clone()).collect();
            assert_eq!(raw, bytes, "split at {split}");
            let events: Vec<_> = got.iter().filter_map(|b| b.event.clone()).collect();
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0].id.as_deref(), Some("9"));
            assert_eq!(p.pending(), 0);
        }
    }

    #[test]
    fn oversized_events_fail_closed() {
        let mut p = Parser::new(10);
        assert!(p.feed(b"data: 0123456789abcdef\n\n").is_err());
        assert!(p.feed(b"data: x\n\n").is_err());
    }
}
