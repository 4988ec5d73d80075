//! Sleeping on the socket until a deadline, and being woken early.
//!
//! The network thread waits in `ppoll` on two descriptors: the UDP socket and the read
//! end of a non-blocking pipe. Any thread wakes it by writing a byte into the pipe. A
//! socket read timeout would be simpler but the kernel rounds it up to whole scheduler
//! ticks (a 1 ms timeout sleeps 8 ms on common kernels), which would stretch every
//! retransmission timer; `ppoll` sleeps to within tens of microseconds.

use std::io;
use std::net::UdpSocket;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::pipe::{pipe_with, PipeFlags};

/// The wake-up pipe of one node.
#[derive(Debug)]
pub(crate) struct Waker {
    reader: OwnedFd,
    writer: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        let (reader, writer) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        Ok(Waker { reader, writer })
    }

    /// Makes the current or next [`Waker::wait`] return at once.
    pub(crate) fn wake(&self) {
        // A full pipe already holds a pending wake-up: nothing is lost by failing.
        let _ = rustix::io::write(&self.writer, &[1]);
    }

    /// Waits until the socket is readable, a wake-up arrives, or `timeout` passes.
    pub(crate) fn wait(&self, socket: &UdpSocket, timeout: Duration) -> io::Result<()> {
        let timeout = Timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: timeout.subsec_nanos().into(),
        };
        let mut fds = [
            PollFd::new(socket, PollFlags::IN),
            PollFd::new(&self.reader, PollFlags::IN),
        ];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if !fds[1].revents().is_empty() {
            let mut sink = [0u8; 64];
            while matches!(rustix::io::read(&self.reader, &mut sink), Ok(n) if n > 0) {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_ends_the_wait_and_a_datagram_too() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let waker = Waker::new().unwrap();
        waker.wake();
        // Would block for an hour without the pending wake-up.
        waker.wait(&socket, Duration::from_secs(3600)).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        waker.wait(&socket, Duration::from_secs(3600)).unwrap();
    }
}
