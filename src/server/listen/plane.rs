//! The data plane of `tollgate serve`: one current-thread runtime per
//! core, each with its own accept loop on its own `SO_REUSEPORT` listener
//! (the kernel spreads new connections across them). A connection, its
//! request tasks and the upstream connections they open (`upstream::http`)
//! then stay on one thread: no work stealing, no wake-ups handed between
//! workers. Everything else (the policy watcher, shutdown, the ledger
//! writer) runs on the main runtime or its own thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use super::{serve, Limits};

pub struct Plane {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<io::Result<()>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A listener on `addr` that shares its port with the others of the plane.
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// Waits until `rx` reads true (or its sender is gone).
async fn until(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts `threads` accept loops on `addr` (port 0: one free port for
/// all). Call from within a runtime. Without `SO_REUSEPORT` (not unix)
/// there is one loop.
pub fn start(addr: SocketAddr, threads: usize, app: Router, limits: Limits) -> io::Result<Plane> {
    let threads = if cfg!(unix) { threads.max(1) } else { 1 };
    let first = bind(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr)?);
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (stop, stop_rx) = watch::channel(false);
    let (release, release_rx) = watch::channel(false);
    let mut plane = Plane {
        addr,
        stop,
        release,
        done: Vec::new(),
        threads: Vec::new(),
    };
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (app, slots) = (app.clone(), slots.clone());
        let (stop_rx, release_rx) = (stop_rx.clone(), release_rx.clone());
        let (done, done_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("tollgate-io-{i}"))
            .spawn(move || {
                crate::upstream::http::per_core();
                runtime.block_on(async move {
                    let served = match TcpListener::from_std(listener) {
                        Ok(l) => serve(l, app, limits, slots, until(stop_rx)).await,
                        Err(e) => Err(e),
                    };
                    let _ = done.send(served);
                    // Tasks the requests spawned (settlements, shadow
                    // calls) run here: keep polling them until released.
                    until(release_rx).await;
                });
            })?;
        plane.done.push(done_rx);
        plane.threads.push(thread);
    }
    Ok(plane)
}

impl Plane {
    /// Stops accepting; each connection finishes its request and closes.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until every accept loop has ended and its connections closed.
    /// Cancel-safe: a loop is forgotten only once its end was seen.
    pub async fn finished(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        while let Some(done) = self.done.first_mut() {
            let ended = done.await;
            self.done.remove(0);
            match ended {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("an accept loop's thread ended")),
            }
        }
        result
    }

    /// Lets the runtimes end (once the gateway's own tasks are drained)
    /// and joins their threads.
    pub fn release(self) {
        let _ = self.release.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
