//! The upstream HTTP client. hyper's pool runs each connection's task on
//! the runtime that opened it, so one client shared by `serve`'s per-core
//! runtimes would hand about every other request to another thread and
//! back. On those threads (marked by [`per_core`]) each thread keeps its
//! own client, and so its own pool, for each setting; elsewhere (tests,
//! tools, the multi-threaded runtime) the shared one answers.

use std::cell::{Cell, RefCell};
use std::time::Duration;

#[derive(Clone)]
pub struct Http {
    connect_timeout: Duration,
    shared: reqwest::Client,
}

thread_local! {
    static PER_CORE: Cell<bool> = const { Cell::new(false) };
    /// This thread's clients, by connect timeout (the one setting that
    /// differs between providers); a handful at most.
    static LOCAL: RefCell<Vec<(Duration, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

/// Marks the calling thread as one of `serve`'s per-core runtime threads.
pub fn per_core() {
    PER_CORE.with(|p| p.set(true));
}

fn build(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .connect_timeout(connect_timeout)
        .build()
}

impl Http {
    pub fn new(connect_timeout: Duration) -> reqwest::Result<Http> {
        Ok(Http {
            connect_timeout,
            shared: build(connect_timeout)?,
        })
    }

    /// The client for this thread.
    pub fn client(&self) -> reqwest::Client {
        if !PER_CORE.with(Cell::get) {
            return self.shared.clone();
        }
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((_, c)) = local.iter().find(|(t, _)| *t == self.connect_timeout) {
                return c.clone();
            }
            match build(self.connect_timeout) {
                Ok(c) => {
                    local.push((self.connect_timeout, c.clone()));
                    c
                }
                Err(_) => self.shared.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_threads_keep_their_own_client_per_setting() {
        let local = || LOCAL.with(|l| l.borrow().len());
        let three = Http::new(Duration::from_secs(3)).unwrap();
        // Unmarked threads share the client: nothing is kept per thread.
        let _ = three.client();
        assert_eq!(local(), 0);
        let counts = std::thread::spawn(move || {
            per_core();
            let _ = three.client();
            let _ = three.client();
            let again = Http::new(Duration::from_secs(3)).unwrap();
            let _ = again.client();
            let after_same = local();
            let _ = Http::new(Duration::from_secs(5)).unwrap().client();
            (after_same, local())
        })
        .join()
        .unwrap();
        assert_eq!(counts, (1, 2));
    }
}
