//! The embedded local engine: GGUF chat models served by mistralrs inside
//! the gateway process, behind the same OpenAI contract as the cloud route.
//!
//! - Loading happens in the background at startup (`serve` takes cloud
//!   traffic meanwhile; `/readyz` waits for it). Fully offline: the file
//!   must exist (mistralrs would treat a missing path as a Hugging Face
//!   repo id and go to the network), and tokenizer and chat template come
//!   from the GGUF metadata unless the policy names a template file.
//! - Every request runs as a streaming sequence inside the engine, also
//!   when the client asked for one JSON reply: dropping the receiver is how
//!   mistralrs cancels a sequence, so a client that goes away frees its
//!   slot and stops its generation at the next token.
//! - `Admission` bounds in-flight and queued sequences; a full engine is
//!   `RetryReason::Busy`, so the router falls back along the chain.
//! - `Meter` measures prefill and generation tokens/s; `gpu_hour` pricing
//!   turns them into a per-token price.

mod admission;
mod convert;
pub mod kernels;
mod stop;
pub mod throughput;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use mistralrs_core::{
    AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting, GGUFLoaderBuilder,
    GGUFSpecificConfig, MemoryGpuConfig, MistralRs, MistralRsBuilder, ModelDType,
    PagedAttentionConfig, PagedCacheType, Request, SchedulerConfig, TokenSource,
    TokenizationRequest,
};

pub use admission::{Admission, Busy};
use throughput::{price_from_gpu_hour, Meter, Rates};

use crate::money::Price;
use crate::policy::{Device, KvCache, KvMemory, Model, Pricing};
use crate::request::ChatRequest;
use crate::upstream::{Failure, OnFinish, Reply, RetryReason};

/// Where loading stands.
enum State {
    Ready(Arc<MistralRs>),
    Failed(String),
}

/// One loaded GGUF model, shared by every policy model that names the
/// same file, template and device.
pub struct Engine {
    pub file: String,
    state: OnceLock<State>,
    pub admission: Admission,
    pub meter: Meter,
    next_id: AtomicUsize,
    /// Set at load when the file's tensor types run without SIMD here.
    pub warning: OnceLock<String>,
}

/// A policy model served by an `Engine`.
pub struct LocalModel {
    pub engine: Arc<Engine>,
    pub pricing: Pricing,
}

impl LocalModel {
    pub fn unavailable_reason(&self) -> Option<String> {
        match self.engine.state.get() {
            Some(State::Ready(_)) => None,
            Some(State::Failed(why)) => Some(why.clone()),
            None => Some("still loading".to_string()),
        }
    }

    /// What loading found that slows this model down, if anything.
    pub fn warning(&self) -> Option<&str> {
        self.engine.warning.get().map(String::as_str)
    }

    pub fn is_loaded_or_failed(&self) -> bool {
        self.engine.state.get().is_some()
    }

    pub fn rates(&self) -> Rates {
        self.engine.meter.rates()
    }

    /// The current per-token price (`gpu_hour` models follow the measured rates).
    pub fn price(&self) -> Price {
        match self.pricing {
            Pricing::PerToken(p) => p,
            Pricing::GpuHour { per_hour, .. } => price_from_gpu_hour(per_hour, self.rates()),
            // Local models always have a price (`policy::models`).
            Pricing::Unknown => Price::default(),
        }
    }

    fn runner(&self) -> Result<&Arc<MistralRs>, Failure> {
        match self.engine.state.get() {
            Some(State::Ready(r)) => Ok(r),
            Some(State::Failed(why)) => Err(Failure::Retry(RetryReason::Unavailable(why.clone()))),
            None => Err(Failure::Retry(RetryReason::Unavailable(
                "still loading".into(),
            ))),
        }
    }

    /// Counts the prompt tokens of `messages` exactly as the engine will
    /// (its tokenizer, its chat template, with the generation prompt).
    pub async fn count_prompt_tokens(&self, chat: &ChatRequest) -> Result<usize, Failure> {
        let runner = self.runner()?;
        let messages = convert::messages(chat).map_err(Failure::Retry)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let req = Request::Tokenize(TokenizationRequest {
            text: either::Either::Left(messages),
            tools: None,
            add_generation_prompt: true,
            add_special_tokens: true,
            enable_thinking: None,
            reasoning_effort: None,
            response: tx,
        });
        send(runner, req).await?;
        match rx.recv().await {
            Some(Ok(ids)) => Ok(ids.len()),
            Some(Err(e)) => Err(Failure::Retry(RetryReason::Malformed(e.to_string()))),
            None => Err(Failure::Retry(RetryReason::Malformed(
                "engine dropped the request".into(),
            ))),
        }
    }

    /// One attempt on the local engine.
    pub async fn chat(
        &self,
        chat: &ChatRequest,
        model: Arc<str>,
        on_finish: &mut Option<OnFinish>,
    ) -> Result<Reply, Failure> {
        let runner = self.runner()?.clone();
        let req = convert::request(chat).map_err(Failure::Retry)?;
        let slot = self
            .engine
            .admission
            .admit()
            .await
            .map_err(|Busy| Failure::Retry(RetryReason::Busy))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let id = self.engine.next_id.fetch_add(1, Ordering::Relaxed);
        send(&runner, Request::Normal(Box::new(req.into_normal(tx, id)))).await?;
        let mut gen = convert::Generation::new(rx, slot, model, chat, self.engine.clone());
        if chat.stream {
            gen.prime().await?;
            gen.out.on_finish = on_finish.take();
            Ok(Reply::Stream(gen.into_sse()))
        } else {
            let (body, usage) = gen.collect().await?;
            Ok(Reply::Json { body, usage })
        }
    }
}

async fn send(runner: &MistralRs, req: Request) -> Result<(), Failure> {
    let sender = runner
        .get_sender(None)
        .map_err(|e| Failure::Retry(RetryReason::Unavailable(e.to_string())))?;
    sender
        .send(req)
        .await
        .map_err(|_| Failure::Retry(RetryReason::Unavailable("engine stopped".into())))
}

/// Loads each distinct (file, template, device) once.
#[derive(Default, Clone)]
pub struct Registry {
    engines: HashMap<(String, Option<String>, String), Arc<Engine>>,
}

impl Registry {
    /// The engine for `model`, loading it in the background on first use.
    /// A missing file is reported and leaves the model unavailable.
    pub fn get(&mut self, model: &Model, device: Device) -> anyhow::Result<Arc<LocalModel>> {
        let file = model
            .file
            .clone()
            .ok_or_else(|| anyhow!("local model `{}` has no file", model.name))?;
        let key = (
            file.clone(),
            model.chat_template.clone(),
            format!("{device:?} {:?} {}", model.kv_cache, model.prefix_cache),
        );
        let engine = match self.engines.get(&key) {
            Some(e) => e.clone(),
            None => {
                let engine = Arc::new(Engine {
                    file: file.clone(),
                    state: OnceLock::new(),
                    admission: Admission::new(
                        model.max_concurrency as usize,
                        model.max_queue as usize,
                    ),
                    meter: Meter::default(),
                    next_id: AtomicUsize::new(0),
                    warning: OnceLock::new(),
                });
                start_loading(engine.clone(), model, device);
                self.engines.insert(key, engine.clone());
                engine
            }
        };
        Ok(Arc::new(LocalModel {
            engine,
            pricing: model.pricing,
        }))
    }
}

/// How an engine is built, from its policy model.
struct Settings {
    template: Option<String>,
    device: Device,
    max_seqs: usize,
    kv_cache: Option<KvCache>,
    prefix_cache: usize,
}

fn start_loading(engine: Arc<Engine>, model: &Model, device: Device) {
    let name = model.name.clone();
    let settings = Settings {
        template: model.chat_template.clone(),
        device,
        max_seqs: model.max_concurrency as usize,
        kv_cache: model.kv_cache,
        prefix_cache: model.prefix_cache as usize,
    };
    let handle = tokio::runtime::Handle::current();
    // Loading reads ~100 MB–40 GB from disk: keep it off the async workers.
    std::thread::Builder::new()
        .name(format!("load-{name}"))
        .spawn(move || {
            let started = Instant::now();
            tracing::info!(model = %name, file = %engine.file, ?device, "loading local model");
            let state = match handle.block_on(load(&engine, &name, settings)) {
                Ok(runner) => {
                    tracing::info!(model = %name, secs = started.elapsed().as_secs_f64(), "local model loaded");
                    State::Ready(runner)
                }
                Err(e) => {
                    tracing::error!(model = %name, error = %format!("{e:#}"), "local model failed to load; routes skip it");
                    State::Failed(format!("{e:#}"))
                }
            };
            let _ = engine.state.set(state);
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the loader thread"));
}

async fn load(engine: &Engine, model: &str, s: Settings) -> anyhow::Result<Arc<MistralRs>> {
    let (file, template) = (engine.file.as_str(), s.template);
    let path = Path::new(file);
    if !path.is_file() {
        bail!("model file {file} not found (for the test model run scripts/fetch-test-model)");
    }
    if let Some(t) = &template {
        if !Path::new(t).is_file() {
            bail!("chat template file {t} not found");
        }
    }
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{file} is not a file name"))?
        .to_string_lossy()
        .to_string();
    let dev = candle_device(s.device)?;
    if dev.is_cpu() {
        if let Some(w) = kernels::warning(file) {
            tracing::warn!(model = %model, file = %file, "{w}");
            let _ = engine.warning.set(w);
        }
    }
    let paged = match s.kv_cache {
        Some(k) if mistralrs_core::paged_attn_supported() && !dev.is_cpu() => Some(paged(k)?),
        Some(_) => {
            tracing::warn!(model = %model, "kv_cache needs paged attention, which this build has on a CUDA or Metal GPU only; ignored");
            None
        }
        None => None,
    };
    // F32 activations on the CPU: ~10% faster there than F16 (which the
    // high-level GgufModelBuilder hard-codes); the GPU picks its own.
    let dtype = if dev.is_cpu() {
        ModelDType::F32
    } else {
        ModelDType::Auto
    };
    let loader = GGUFLoaderBuilder::new(
        template,
        None,
        dir,
        vec![name],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    // Blocking, but this runs on the loader thread.
    let pipeline = loader
        .load_model_from_hf(
            None,
            TokenSource::None,
            &dtype,
            &dev,
            true,
            DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
            None,
            paged,
        )
        .context("loading the GGUF file")?;
    let seqs =
        std::num::NonZeroUsize::new(s.max_seqs.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
    let cache = match paged {
        Some(_) => pipeline.lock().await.get_metadata().cache_config.clone(),
        None => None,
    };
    let scheduler = match cache {
        Some(config) => SchedulerConfig::PagedAttentionMeta {
            max_num_seqs: s.max_seqs.max(1),
            config,
        },
        None => SchedulerConfig::DefaultScheduler {
            method: DefaultSchedulerMethod::Fixed(seqs),
        },
    };
    let builder = MistralRsBuilder::new(pipeline, scheduler, false, None);
    let builder = match s.prefix_cache {
        0 => builder.with_no_prefix_cache(true),
        n => builder.with_prefix_cache_n(n),
    };
    Ok(builder.build().await)
}

/// mistralrs's paged-attention config for a `kv_cache:` setting.
fn paged(k: KvCache) -> anyhow::Result<PagedAttentionConfig> {
    let memory = match k.memory {
        KvMemory::Megabytes(mb) => MemoryGpuConfig::MbAmount(mb as usize),
        KvMemory::Fraction(f) => MemoryGpuConfig::Utilization(f),
        KvMemory::Tokens(n) => MemoryGpuConfig::ContextSize(n as usize),
    };
    let dtype = if k.f8 {
        PagedCacheType::F8E4M3
    } else {
        PagedCacheType::Auto
    };
    PagedAttentionConfig::new(Some(k.block_size as usize), memory, dtype)
}

fn candle_device(device: Device) -> anyhow::Result<mistralrs::Device> {
    match device {
        Device::Cpu => Ok(mistralrs::Device::Cpu),
        Device::Auto => mistralrs::best_device(false).context("choosing a device"),
        Device::Cuda(n) => {
            if cfg!(feature = "cuda") {
                mistralrs::Device::new_cuda(n).with_context(|| format!("opening cuda:{n}"))
            } else {
                bail!("device cuda:{n} needs a tollgate built with --features cuda")
            }
        }
    }
}

/// How long an idle wait for the next token may last before the stream is
/// declared broken (a stuck engine must not hold a client forever).
pub(crate) const TOKEN_TIMEOUT: Duration = Duration::from_secs(120);
