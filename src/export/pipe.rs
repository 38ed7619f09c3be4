//! A writer whose bytes come out of a stream: the zip is written into one
//! end while a response body (or anything else) reads the other. Bounded:
//! a writer whose reader falls behind waits, so the bytes in flight are at
//! most `chunks` chunks of [`CHUNK`]. A reader that goes away makes the
//! next write fail with `BrokenPipe`; [`PipeAbort::fail`] ends the stream
//! with an error, so the reader can tell a broken export from a complete
//! one (an HTTP body is cut off rather than ended).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::{io::AsyncWrite, sync::mpsc};
use tokio_util::sync::PollSender;

/// Bytes gathered before they are passed on.
pub const CHUNK: usize = 64 * 1024;

type Item = Result<Bytes, io::Error>;

pub struct PipeWriter {
    tx: PollSender<Item>,
    buf: BytesMut,
}

/// Ends a pipe's stream with an error.
#[derive(Clone)]
pub struct PipeAbort(mpsc::Sender<Item>);

impl PipeAbort {
    pub async fn fail(&self, error: io::Error) {
        let _ = self.0.send(Err(error)).await;
    }
}

/// A writer, its abort handle, and the stream of what is written.
pub fn pipe(
    chunks: usize,
) -> (
    PipeWriter,
    PipeAbort,
    impl Stream<Item = Item> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(chunks.max(1));
    let abort = PipeAbort(tx.clone());
    let writer = PipeWriter {
        tx: PollSender::new(tx),
        buf: BytesMut::with_capacity(CHUNK),
    };
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (writer, abort, stream)
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away")
}

impl PipeWriter {
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| gone())?;
        let chunk = self.buf.split().freeze();
        self.tx.send_item(Ok(chunk)).map_err(|_| gone())?;
        self.buf.reserve(CHUNK);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= CHUNK {
            ready!(this.poll_send(cx))?;
        }
        let n = data.len().min(CHUNK - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        this.tx.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn what_is_written_comes_out_in_order_and_an_abort_is_an_error() {
        let (mut w, abort, out) = pipe(2);
        let reader = tokio::spawn(async move { out.collect::<Vec<_>>().await });
        let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        w.write_all(&data).await.unwrap();
        w.flush().await.unwrap();
        abort.fail(io::Error::other("boom")).await;
        drop((w, abort));
        let items = reader.await.unwrap();
        let (last, body) = items.split_last().unwrap();
        assert!(last.is_err());
        let got: Vec<u8> = body
            .iter()
            .flat_map(|c| c.as_ref().unwrap().to_vec())
            .collect();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_breaks_the_pipe() {
        let (mut w, _abort, out) = pipe(1);
        drop(out);
        let err = w.write_all(&vec![0; 4 * CHUNK]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
