//! The DATA phase's byte decoder: finds the end of the message (`CRLF . CRLF`), undoes dot
//! stuffing, and notes what makes a message unsafe to pass on, byte by byte, so a message can
//! arrive in chunks of any size.
//!
//! Only `CRLF . CRLF` ends a message. A bare LF or bare CR anywhere is noted (the message is
//! then refused): differing ideas of where a message ends between two servers are what SMTP
//! smuggling exploits (`LF . LF`, `CR . CR`), so the gateway neither ends on them nor passes
//! them on. Bytes past the size limit are counted but not kept.

/// Decoder state between chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Mid,
    Cr,
    Dot,
    DotCr,
}

/// What the decoder saw, and the message so far.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    /// The message, dot-unstuffed, up to the limit.
    pub message: Vec<u8>,
    limit: usize,
    max_line: usize,
    line_len: usize,
    /// Bytes of message content seen (kept or not).
    pub seen: u64,
    pub bare_lf: bool,
    pub bare_cr: bool,
    pub nul: bool,
    pub long_line: bool,
    pub eight_bit: bool,
}

impl DataDecoder {
    pub fn new(limit: usize, max_line: usize) -> Self {
        Self {
            state: State::LineStart,
            message: Vec::new(),
            limit,
            max_line,
            line_len: 0,
            seen: 0,
            bare_lf: false,
            bare_cr: false,
            nul: false,
            long_line: false,
            eight_bit: false,
        }
    }

    /// True when more than the limit arrived.
    pub fn too_big(&self) -> bool {
        self.seen > self.limit as u64
    }

    fn emit(&mut self, b: u8) {
        self.seen += 1;
        if b == b'\n' {
            self.line_len = 0;
        } else {
            self.line_len += 1;
            if self.line_len > self.max_line {
                self.long_line = true;
            }
        }
        if b == 0 {
            self.nul = true;
        }
        if b >= 0x80 {
            self.eight_bit = true;
        }
        if self.message.len() < self.limit {
            self.message.push(b);
        }
    }

    /// Feeds a chunk. Returns `Some(n)` when the end of data was found after `n` bytes of the
    /// chunk (the rest belongs to the commands that follow), `None` when more is needed.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<usize> {
        for (i, &b) in chunk.iter().enumerate() {
            self.state = match self.state {
                State::LineStart => match b {
                    b'.' => State::Dot,
                    _ => self.mid(b),
                },
                State::Mid => self.mid(b),
                State::Cr => {
                    if b == b'\n' {
                        self.emit(b'\r');
                        self.emit(b'\n');
                        State::LineStart
                    } else {
                        self.bare_cr = true;
                        self.emit(b'\r');
                        self.mid(b)
                    }
                }
                // A leading dot is dropped (RFC 5321 4.5.2); what follows is the line.
                State::Dot => match b {
                    b'\r' => State::DotCr,
                    _ => self.mid(b),
                },
                State::DotCr => {
                    if b == b'\n' {
                        return Some(i + 1);
                    }
                    self.bare_cr = true;
                    self.emit(b'\r');
                    self.mid(b)
                }
            };
        }
        None
    }

    fn mid(&mut self, b: u8) -> State {
        match b {
            b'\r' => State::Cr,
            b'\n' => {
                // Only CRLF starts a line: a dot after a bare LF ends nothing.
                self.bare_lf = true;
                self.emit(b'\n');
                State::Mid
            }
            _ => {
                self.emit(b);
                State::Mid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], chunk: usize) -> (DataDecoder, Option<usize>) {
        let mut d = DataDecoder::new(1 << 20, 1000);
        let mut at = 0;
        for c in input.chunks(chunk.max(1)) {
            if let Some(n) = d.feed(c) {
                return (d, Some(at + n));
            }
            at += c.len();
        }
        (d, None)
    }

    #[test]
    fn ends_only_on_crlf_dot_crlf_and_unstuffs() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        for chunk in 1..8 {
            let (d, end) = run(input, chunk);
            assert_eq!(end, Some(input.len() - 6));
            assert_eq!(d.message, b"Subject: x\r\n\r\n.leading dot\r\n");
            assert!(!d.bare_lf && !d.bare_cr);
        }
    }

    #[test]
    fn smuggling_shapes_do_not_end_and_are_noted() {
        let (d, end) = run(b"a\r\n.\nMAIL FROM:<x@y>\r\n", 3);
        assert_eq!(end, None);
        assert!(d.bare_lf);
        let (d, end) = run(b"a\n.\r\nb", 2);
        assert_eq!(end, None);
        assert!(d.bare_lf);
        let (d, _) = run(b"a\r.\r\n", 1);
        assert!(d.bare_cr);
    }

    #[test]
    fn limit_counts_but_does_not_keep() {
        let mut d = DataDecoder::new(4, 1000);
        assert_eq!(d.feed(b"abcdefgh\r\n.\r\n"), Some(13));
        assert_eq!(d.message, b"abcd");
        assert!(d.too_big());
    }

    proptest::proptest! {
        #[test]
        fn chunking_does_not_change_the_result(
            body in proptest::collection::vec(proptest::sample::select(b"ab.\r\n".to_vec()), 0..200),
            chunk in 1usize..17,
        ) {
            let mut input = body.clone();
            input.extend_from_slice(b"\r\n.\r\n");
            let (a, ea) = run(&input, input.len());
            let (b, eb) = run(&input, chunk);
            proptest::prop_assert_eq!(ea, eb);
            proptest::prop_assert_eq!(a.message, b.message);
            proptest::prop_assert_eq!((a.bare_lf, a.bare_cr), (b.bare_lf, b.bare_cr));
        }
    }
}
