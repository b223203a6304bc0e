//! Reading a server-sent event stream (`GET /api/v1/events`) chunk by chunk.

/// Collects chunks and hands out the `data:` payload of each complete event.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: String,
}

impl SseReader {
    /// Adds a chunk of the stream; returns the data of every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let frame: String = self.buf.drain(..end + 2).collect();
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut r = SseReader::default();
        assert!(r.push(b"event: block\nid: 1\ndata: {\"a\":").is_empty());
        assert_eq!(
            r.push(b"1}\n\n: keep-alive\n\ndata: 2\n\n"),
            vec!["{\"a\":1}", "2"]
        );
        assert!(r.push(b"").is_empty());
    }
}
