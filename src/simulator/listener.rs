//! The simulator's listening sockets and the connections they accept.
//!
//! Each listener's socket is owned by a plain thread blocked in `accept`,
//! which hands every connection to the tokio runtime the simulator was
//! started on. A thread rather than a task owns the socket so that stopping
//! is synchronous: `stop` returns only once the socket is closed, which lets
//! `move_endpoints` promise that the old scale-unit URL refuses connections
//! the moment it returns, even when called from a plain test thread.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::pipeline;
use super::state::Shared;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Login, Graph and the `/_sim/` control interface.
    Main,
    /// The Intune partner services (the "scale unit" discovery points to).
    ScaleUnit,
}

/// How long `stop` waits to connect to its own socket to wake the thread.
const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Both listeners, plus what is needed to replace the scale unit.
pub(crate) struct Listeners {
    main: Listener,
    scale_unit: Listener,
    shared: Arc<Shared>,
    runtime: Handle,
}

impl Listeners {
    /// Binds both listeners on loopback and starts accepting.
    pub(crate) fn start(shared: Arc<Shared>, runtime: Handle) -> io::Result<Listeners> {
        let main = Listener::bind(Side::Main, shared.clone(), runtime.clone())?;
        let scale_unit = Listener::bind(Side::ScaleUnit, shared.clone(), runtime.clone())?;
        shared.lock().scale_base = scale_unit.base_url();
        Ok(Listeners {
            main,
            scale_unit,
            shared,
            runtime,
        })
    }

    pub(crate) fn main_addr(&self) -> SocketAddr {
        self.main.addr
    }

    /// Binds a new scale unit, points discovery at it, then closes the old
    /// one. Returns the new base URL.
    pub(crate) fn move_scale_unit(&mut self) -> io::Result<String> {
        let fresh = Listener::bind(Side::ScaleUnit, self.shared.clone(), self.runtime.clone())?;
        let base = fresh.base_url();
        self.shared.lock().scale_base = base.clone();
        let mut old = std::mem::replace(&mut self.scale_unit, fresh);
        old.stop();
        Ok(base)
    }

    /// Closes both sockets and every open connection.
    pub(crate) fn stop(&mut self) {
        self.main.stop();
        self.scale_unit.stop();
    }
}

/// Locks the listeners, ignoring poisoning (stopping sockets is still safe).
pub(crate) fn lock(listeners: &Mutex<Listeners>) -> MutexGuard<'_, Listeners> {
    listeners
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One listening socket and its accept thread.
struct Listener {
    addr: SocketAddr,
    /// Tells the accept thread to close the socket at its next wake-up.
    stopping: Arc<AtomicBool>,
    /// Set to `true` to close this listener's open connections.
    closed: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn bind(side: Side, shared: Arc<Shared>, runtime: Handle) -> io::Result<Listener> {
        let socket = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = socket.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let (closed, closed_rx) = watch::channel(false);
        let acceptor = Acceptor {
            side,
            shared,
            runtime,
            stopping: stopping.clone(),
            closed: closed_rx,
        };
        let thread = thread::Builder::new()
            .name(format!("sim-accept-{}", addr.port()))
            .spawn(move || acceptor.run(socket))?;
        Ok(Listener {
            addr,
            stopping,
            closed,
            thread: Some(thread),
        })
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the socket (waiting until it is closed) and open connections.
    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        self.closed.send_replace(true);
        // The thread is blocked in accept(); one connection wakes it up.
        match TcpStream::connect_timeout(&self.addr, WAKE_TIMEOUT) {
            Ok(_) => {
                if thread.join().is_err() {
                    tracing::warn!(addr = %self.addr, "simulator accept thread panicked");
                }
            }
            Err(error) => {
                tracing::warn!(addr = %self.addr, %error, "could not wake simulator accept thread");
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the accept thread needs to serve connections.
struct Acceptor {
    side: Side,
    shared: Arc<Shared>,
    runtime: Handle,
    stopping: Arc<AtomicBool>,
    closed: watch::Receiver<bool>,
}

impl Acceptor {
    fn run(self, socket: TcpListener) {
        for stream in socket.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            match stream {
                Ok(stream) => {
                    let connection =
                        serve(stream, self.side, self.shared.clone(), self.closed.clone());
                    self.runtime.spawn(connection);
                }
                Err(error) => {
                    // Typically out of file descriptors: back off, keep going.
                    tracing::warn!(%error, "simulator accept failed");
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // Dropping `socket` here closes it; new connections are refused.
    }
}

/// Serves one connection until the client closes it or the listener stops.
async fn serve(
    stream: TcpStream,
    side: Side,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<bool>,
) {
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream))
    {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%error, "simulator could not adopt a connection");
            return;
        }
    };
    let service = service_fn(move |request| pipeline::handle(shared.clone(), side, request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "simulator connection ended with an error");
            }
        }
        // Also resolves if the sender is gone, which means the same.
        _ = closed.wait_for(|closed| *closed) => {}
    }
}
