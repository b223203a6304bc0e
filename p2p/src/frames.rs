//! The wire format of block sync and direct messages: a `u32` little-endian length followed by
//! that many bytes, refused above a per-protocol limit before any of it is read into memory.
//! A sync request or response is one frame on its own stream; a direct link carries a
//! sequence of them.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// An inbound request as read: its bytes, or the size it claimed when that was over the limit.
/// (libp2p drops requests whose read fails without saying from whom; reading an oversized
/// one as a value lets the event loop disconnect and count the sender.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Data(Vec<u8>),
    Oversized(usize),
}

/// A length-prefixed bytes codec with limits on both directions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frames {
    pub(crate) max_request: usize,
    pub(crate) max_response: usize,
}

pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, the limit is {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

pub(crate) async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    data: &[u8],
    max: usize,
) -> std::io::Result<()> {
    if data.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame of {} bytes, the limit is {max}", data.len()),
        ));
    }
    io.write_all(&(data.len() as u32).to_le_bytes()).await?;
    io.write_all(data).await?;
    io.close().await
}

impl Codec for Frames {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, self.max_request).await {
            Ok(b) => Ok(Frame::Data(b)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Ok(Frame::Oversized(self.max_request))
            }
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Frame::Data(b) => write_frame(io, &b, self.max_request).await,
            Frame::Oversized(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a request",
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.max_response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_refuse_oversize_before_reading() {
        block_on(async {
            let mut buf = Cursor::new(Vec::new());
            write_frame(&mut buf, b"hello", 16).await.expect("write");
            let mut r = Cursor::new(buf.into_inner());
            assert_eq!(read_frame(&mut r, 16).await.expect("read"), b"hello");

            // A length prefix over the limit is refused without allocating it.
            let mut r = Cursor::new(u32::MAX.to_le_bytes().to_vec());
            let e = read_frame(&mut r, 1 << 20).await.expect_err("oversize");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);

            // A truncated frame is an error, not a short read.
            let mut r = Cursor::new([5u8, 0, 0, 0, b'h', b'i'].to_vec());
            assert!(read_frame(&mut r, 16).await.is_err());

            let mut w = Cursor::new(Vec::new());
            assert!(write_frame(&mut w, &[0; 17], 16).await.is_err());
        });
    }
}
