//! The threads the SIP components (LB and proxy) run on, one each.
//!
//! Why a thread of its own with a single-threaded runtime: a SIP message crosses several tasks
//! (socket reader → transaction layer → router → writer). On the shared multi-threaded runtime
//! each hop could wake a parked worker thread, and perf showed those futex wake-ups and context
//! switches costing more CPU than the SIP work itself. On one thread a hop is a queue push, and
//! the thread sleeps only in epoll. The LB and the proxy, each on its own thread, talk to each
//! other over UDP sockets, exactly as they do when split over hosts. The provisioning API, the media relay's
//! control and the mediator stay on the main runtime.

use std::future::Future;

use anyhow::Context as _;
use tokio::sync::oneshot;

/// A named OS thread running a current-thread tokio runtime until dropped.
#[derive(Debug)]
pub struct SipThread {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SipThread {
    pub fn spawn(name: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(name)
            .build()
            .context("starting the SIP runtime")?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .context("starting the SIP thread")?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `future` on the SIP thread (tasks it spawns stay there) and waits for its output.
    pub async fn run<F>(&self, future: F) -> anyhow::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .context("the SIP thread stopped")
    }
}

impl Drop for SipThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
