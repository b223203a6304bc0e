//! Reading a server-sent event stream (`GET /api/v1/events`) chunk by chunk.

/// Longest event this reader holds while it waits for the event's end: a block event lists
/// its transaction ids (67 bytes each, up to 20,000 of them), so 16 MiB is far above any a
/// node sends; more is a broken or hostile server.
pub const EVENT_BYTES_MAX: usize = 16 << 20;

/// An event longer than [`EVENT_BYTES_MAX`] without an end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event of the stream is longer than {EVENT_BYTES_MAX} bytes")]
pub struct EventTooLarge;

/// Collects chunks and hands out the `data:` payload of each complete event. Bytes are kept
/// until an event is complete, so a character split between chunks arrives whole.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: Vec<u8>,
}

impl SseReader {
    /// Adds a chunk of the stream; returns the data of every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        if self.buf.len() > EVENT_BYTES_MAX {
            self.buf.clear();
            return Err(EventTooLarge);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut r = SseReader::default();
        assert_eq!(r.push(b"event: block\nid: 1\ndata: {\"a\":"), Ok(vec![]));
        assert_eq!(
            r.push(b"1}\n\n: keep-alive\n\ndata: 2\n\n"),
            Ok(vec!["{\"a\":1}".to_string(), "2".to_string()])
        );
        assert_eq!(r.push(b""), Ok(vec![]));
        // A character cut between two chunks.
        let text = "data: \u{e9}t\u{e9}\n\n".as_bytes();
        assert_eq!(r.push(&text[..7]), Ok(vec![]));
        assert_eq!(r.push(&text[7..]), Ok(vec!["\u{e9}t\u{e9}".to_string()]));
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut r = SseReader::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut result = Ok(vec![]);
        for _ in 0..=16 {
            result = r.push(&chunk);
        }
        assert_eq!(result, Err(EventTooLarge));
    }
}
