//! `tollgate serve`: load the policy, build the gateway, serve until
//! SIGINT/SIGTERM, then drain in-flight requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::gateway::{Gateway, Options};
use crate::policy::load_file;
use crate::server::Live;

#[derive(Args)]
/// Run the gateway.
///
/// Loads the policy, logs which models are available (and why the others
/// are not), and serves the OpenAI API: POST /v1/chat/completions,
/// GET /v1/models, GET /healthz, GET /readyz.
///
/// Example:
///   OPENAI_API_KEY=sk-... tollgate serve --config policies/default.yaml --listen 0.0.0.0:8080
pub struct ServeArgs {
    /// The policy file.
    #[arg(long, short, default_value = "policies/default.yaml")]
    config: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed at startup).
    #[arg(long, short, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Accept requests without a key when the policy has no `keys:` section.
    #[arg(long)]
    allow_anonymous: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// On SIGTERM, how long requests and streams in flight may take to
    /// finish before they are ended (and accounted as cut short).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    shutdown_grace: std::time::Duration,
    /// How long a client may take to send a request's headers; slower
    /// connections are closed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    header_timeout: std::time::Duration,
    /// Most client connections open at once; past it, new connections
    /// wait in the kernel's backlog until one closes.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Threads that accept and serve connections, each with its own
    /// runtime and listener (`SO_REUSEPORT`); 0 means one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    router: super::plan::RouterArgs,
}

/// The learned router, or `None` (the keyword classifier) when it is off
/// or its files are missing; unusable files stop the start.
fn load_router(dir: &std::path::Path) -> anyhow::Result<Option<Arc<crate::classify::Router>>> {
    use crate::classify::RouterLoad;
    if dir.as_os_str() == "off" {
        tracing::info!("learned router off: the keyword classifier routes");
        return Ok(None);
    }
    let started = std::time::Instant::now();
    // On a thread of its own: the loader's temporary buffers (the parsed
    // tokenizer JSON) go back to the OS with that thread's heap.
    let load = {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || crate::classify::load_router(&dir))
            .join()
            .map_err(|_| anyhow::anyhow!("loading the learned router panicked"))?
    };
    match load {
        RouterLoad::Loaded(r) => {
            tracing::info!(dir = %dir.display(), took = ?started.elapsed(), "learned router loaded");
            Ok(Some(Arc::from(r)))
        }
        RouterLoad::Missing(msg) => {
            tracing::warn!("{msg}");
            Ok(None)
        }
        RouterLoad::Broken(msg) => {
            anyhow::bail!("{msg} (fix or remove the files, or pass --router off)")
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs) -> ExitCode {
    let _logs = super::logs::init(matches!(args.log_format, LogFormat::Json));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let policy = load_file(&args.config).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?;
    let router = load_router(&args.router.dir)?;
    crate::classify::counting::warm(policy.models.iter().map(|m| &m.counter));
    let gw = Arc::new(Gateway::new(
        policy,
        &Options {
            allow_anonymous: args.allow_anonymous,
            router,
            ..Options::default()
        },
    )?);
    gw.log_availability();
    if let Some(r) = gw.redis.clone() {
        // Startup never waits on Redis; the check logs when it answers.
        gw.tasks.spawn(async move {
            if let Some(w) = r.eviction_risk().await {
                tracing::error!(warning = %w, "shared state at risk");
            }
        });
    }
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let live = Arc::new(Live::new(gw));
    let mut plane = crate::server::listen::plane::start(
        args.listen,
        threads,
        crate::server::app_live(live.clone()),
        crate::server::listen::Limits {
            header_timeout: args.header_timeout,
            max_connections: args.max_connections,
        },
    )
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = plane.addr;
    tracing::info!(%addr, threads, policy = %args.config.display(), "tollgate listening");
    println!("tollgate listening on http://{addr}");
    let grace = args.shutdown_grace;
    let stopped = tokio::select! {
        () = shutdown_signal() => true,
        () = watch_policy(live.clone(), args.config.clone()) => false,
        r = plane.finished() => {
            r.context("server error")?;
            false
        }
    };
    if stopped {
        plane.stop();
        let finished = tokio::time::timeout(grace, plane.finished()).await;
        if let Ok(r) = finished {
            r.context("server error")?;
        } else {
            // Grace period over: end what is still open (each request
            // closes its tab), then let the connections finish.
            tracing::warn!(grace = ?grace, "shutdown grace period over; ending the requests still open");
            live.stop.cancel();
            plane.finished().await.context("server error")?;
        }
    }
    // Every request has finished and closed its tab: write the rows still
    // queued for the ledger before exiting.
    live.load().shutdown().await;
    tokio::task::spawn_blocking(move || plane.release())
        .await
        .context("joining the serving threads")?;
    tracing::info!("shut down cleanly; ledger flushed");
    Ok(())
}

/// Reloads the policy on SIGHUP and when the file changes, or the router
/// heads file it names does (checked every 2 s). An invalid policy is
/// logged, error by error, and the running one stays. Never returns.
async fn watch_policy(live: Arc<Live>, path: PathBuf) {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stamp = |live: &Live| {
        let heads = live
            .load()
            .policy
            .router_heads
            .as_ref()
            .map(|h| h.path.clone());
        (
            modified(&path),
            heads.and_then(|h| modified(std::path::Path::new(&h))),
        )
    };
    let mut last = stamp(&live);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let why = tokio::select! {
            () = hangup => "SIGHUP",
            _ = tick.tick() => {
                if stamp(&live) == last {
                    continue;
                }
                "the file changed"
            }
        };
        last = stamp(&live);
        let started = std::time::Instant::now();
        match crate::server::reload_policy(&live, &path).await {
            Ok(()) => {
                last = stamp(&live);
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::info!(policy = %path.display(), trigger = why, took_ms, "policy reloaded");
            }
            Err(errors) => {
                for line in errors.lines() {
                    tracing::error!(policy = %path.display(), trigger = why, "policy reload rejected: {line}");
                }
                tracing::error!("still serving with the previous policy");
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
