//! Runs a load test: starts the loadgen shards, opens the connections,
//! collects one interval sample per `interval`, drains, and builds the report.

use crate::client::{LoadConn, RunShared, UNSET};
use crate::codec::{Codec, H2Requests};
use crate::config::{Config, Mode};
use crate::cpu;
use crate::live::{Live, LiveState};
use crate::plan::{RatePlan, Schedule};
use crate::recorder::{recorder, Sample};
use crate::report::{Interval, Report};
use crate::LoadError;
use shardloop::{Handle, LoopOptions, Pinning, Server};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the engine reports after each interval (for progress output).
#[derive(Debug)]
pub struct Progress<'a> {
    /// Time since measuring started (negative phases report zero).
    pub elapsed: Duration,
    /// Still in warm-up or ramp-up: nothing is being recorded yet.
    pub warming_up: bool,
    /// Counts and latency of the interval just ended.
    pub interval: &'a Sample,
    /// Length of that interval.
    pub interval_len: Duration,
    /// Cumulative counts and latency since measuring started.
    pub total: &'a Sample,
    /// Connections established so far.
    pub connected: usize,
}

/// Collects and resets every shard's interval sample of `scenario`.
fn collect(handle: &Handle, scenario: usize) -> Sample {
    let (tx, rx) = mpsc::channel();
    for shard in 0..handle.shards() {
        let tx = tx.clone();
        let _ = handle.post_to(shard, move |ctx| {
            let _ = tx.send(recorder(ctx, scenario).take_interval());
        });
    }
    drop(tx);
    let mut merged = Sample::default();
    for s in rx.iter() {
        merged.merge(&s);
    }
    merged
}

/// Raises the soft open-file limit to what `connections` need, or says
/// plainly that the hard limit is too low: running out of descriptors
/// mid-run would look like a server that refuses connections.
fn ensure_descriptors(connections: usize, threads: usize) -> Result<(), LoadError> {
    // Each thread holds an epoll, a waker and a timerfd; the process a few more.
    let needed = (connections + 4 * threads + 64) as u64;
    let got = rlimit::increase_nofile_limit(needed)
        .map_err(|e| LoadError::Config(format!("cannot read the open-file limit: {e}")))?;
    if got < needed {
        return Err(LoadError::Config(format!(
            "{connections} connections need about {needed} open files, but the limit is {got} \
             (raise the hard limit: ulimit -Hn, /etc/security/limits.conf)"
        )));
    }
    Ok(())
}

/// The load generator's loops: a fine timer tick (with the framework's
/// timerfd wake-up) keeps open-loop sends on schedule.
fn loop_options() -> LoopOptions {
    let mut options = LoopOptions::default();
    options.timer_tick = Duration::from_micros(50);
    options
}

/// Runs `config` and returns the report. `observer` is called after each
/// interval (a progress line, a live plot...).
pub fn run(config: &Config, mut observer: impl FnMut(&Progress<'_>)) -> Result<Report, LoadError> {
    config.validate()?;
    let setup = Setup {
        threads: config.threads,
        cores: config.cores.clone(),
        metrics: config.metrics,
    };
    let (handle, lives) = start_loadgen(&setup, std::slice::from_ref(config), &[String::new()])?;
    let shared = prepare(config, 0, Instant::now());
    let all = [shared.clone()];
    let result = drive(
        config,
        Run {
            shared: &shared,
            all: &all,
            abort_on_fail: false,
            handle: &handle,
            live: lives.first().and_then(Option::as_deref),
        },
        &mut observer,
    );
    handle.stop_within(Duration::from_millis(500));
    handle.wait();
    result
}

/// What every scenario of a run shares: the load generator's own threads.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Loadgen threads; each is a shardloop shard.
    pub threads: usize,
    /// Pin them to these cores (none: not pinned).
    pub cores: Vec<usize>,
    /// Serve live `/metrics` here while the run lasts.
    pub metrics: Option<std::net::SocketAddr>,
}

/// A scenario's live figures, when `/metrics` is served.
pub(crate) type LiveSlot = Option<Arc<Live>>;

/// Starts the load generator's threads for `configs` (their connections
/// together; each scenario's live figures under its `names` label).
pub(crate) fn start_loadgen(
    setup: &Setup,
    configs: &[Config],
    names: &[String],
) -> Result<(Handle, Vec<LiveSlot>), LoadError> {
    let connections = configs.iter().map(|c| c.connections).sum();
    ensure_descriptors(connections, setup.threads)?;
    let mut builder = Server::builder()
        .shards(setup.threads)
        .loop_options(loop_options())
        .stop_timeout(Duration::from_millis(500));
    builder = if setup.cores.is_empty() {
        builder.pinning(Pinning::Off)
    } else {
        builder.pinning(Pinning::Cores(setup.cores.clone()))
    };
    let lives: Vec<LiveSlot> = configs
        .iter()
        .map(|_| setup.metrics.map(|_| Arc::new(Live::default())))
        .collect();
    if let Some(addr) = setup.metrics {
        let shown: Vec<(String, Arc<Live>)> = names
            .iter()
            .cloned()
            .zip(lives.iter().flatten().cloned())
            .collect();
        builder = builder.metrics_with(addr, move |out: &mut String| {
            crate::live::render_all(&shown, out)
        });
    }
    let settings = configs
        .iter()
        .map(output_settings)
        .reduce(|a, b| {
            if a.max_output_buffer >= b.max_output_buffer {
                a
            } else {
                b
            }
        })
        .unwrap_or_default();
    let handle = builder.settings(settings).build()?.start()?;
    Ok((handle, lives))
}

/// The framework's output cap and high-water mark guard against peers; here
/// the queue is ours and bounded by the in-flight limit, so both are sized
/// to hold that many requests. Otherwise large pipelined requests would
/// abort the connection, or stop it reading responses while the server
/// waits for it to read (a deadlock with any echoing server).
fn output_settings(config: &Config) -> shardloop::Settings {
    let longest = Codec::with_vars(&config.workload, config.vars.clone())
        .map_or(0, |c| c.with_sizes(config.sizes.clone()).max_request_len());
    let mut s = shardloop::Settings::default();
    let need = longest
        .saturating_mul(config.mode.max_in_flight())
        .saturating_add(64 * 1024);
    s.max_output_buffer = s.max_output_buffer.max(need);
    s.high_water_mark = s.high_water_mark.max(need);
    s
}

/// The parts of a running load a scenario's driver uses.
pub(crate) struct Run<'a> {
    /// This scenario's shared state.
    pub(crate) shared: &'a Arc<RunShared>,
    /// Every scenario's, to stop them all when an objective fails.
    pub(crate) all: &'a [Arc<RunShared>],
    /// Check the objectives every interval and stop the run at the first
    /// that fails.
    pub(crate) abort_on_fail: bool,
    pub(crate) handle: &'a Handle,
    pub(crate) live: Option<&'a Live>,
}

/// The shared state of scenario `scenario`, starting at `start`: its
/// measured window and (open loop) its plan.
pub(crate) fn prepare(config: &Config, scenario: usize, start: Instant) -> Arc<RunShared> {
    // Closed loop: measuring starts after the connect phase (below), so
    // setting up connections is never part of the measured time; the
    // ramp-up is inside that phase. Open loop: the plan runs from the start.
    let closed = matches!(config.mode, Mode::Closed { .. });
    let lead = if closed {
        config.warmup
    } else {
        config.warmup.max(config.ramp_up)
    };
    let measure_from = start + lead;
    let end = measure_from + config.duration;
    // Open loop: the plan runs from the start, the warm-up (or ramp-up) at
    // the first stage's rate, so connections are warm when measuring begins.
    let plan = match config.mode {
        Mode::Closed { .. } => None,
        Mode::Open { rate, .. } => {
            let measured = config
                .plan
                .clone()
                .unwrap_or_else(|| RatePlan::constant(rate, config.duration));
            Some(measured.with_lead(measure_from - start))
        }
    };
    let codec = Codec::with_vars(&config.workload, config.vars.clone())
        .expect("templates checked by Config::validate")
        .with_sizes(config.sizes.clone());
    Arc::new(RunShared {
        scenario,
        stopped: AtomicU64::new(UNSET),
        seeds: AtomicU64::new(0),
        h2: config.http2.then(|| {
            H2Requests::new(&codec, config.tls.is_some()).expect("checked by Config::validate")
        }),
        codec,
        mode: config.mode.clone(),
        target: config.target.clone(),
        base_measure_from: measure_from,
        base_end: end,
        offset: AtomicU64::new(if closed { UNSET } else { 0 }),
        connections: config.connections,
        timeout: config.timeout,
        connect_timeout: config.connect_timeout,
        think: config.think,
        plan,
        origin: start,
        connected: Default::default(),
        connect_failed: Default::default(),
        active: Default::default(),
        replaced: Default::default(),
        first_connect_error: Default::default(),
        tls: config.tls.clone(),
        reconnect_every: config.reconnect_every,
        reconnects: Default::default(),
        conn_interval: config
            .conn_rate
            .map(|r| Duration::from_secs_f64(config.threads as f64 / r)),
    })
}

/// Drives one scenario from its start to its report: opens its
/// connections, collects an interval sample each `interval`, drains.
pub(crate) fn drive(
    config: &Config,
    run: Run<'_>,
    observer: &mut impl FnMut(&Progress<'_>),
) -> Result<Report, LoadError> {
    let Run {
        shared,
        all,
        abort_on_fail,
        handle,
        live,
    } = run;
    let start = shared.origin;
    let now = Instant::now();
    if start > now {
        std::thread::sleep(start - now);
    }
    let start_wall = SystemTime::now() - Instant::now().saturating_duration_since(start);
    let closed = matches!(config.mode, Mode::Closed { .. });
    let mut measure_from = shared.base_measure_from;
    let mut end = shared.base_end;
    let mut aborted = None;
    let conns = config.connections;
    for i in 0..conns {
        let shared = shared.clone();
        let delay = config.ramp_up.mul_f64(i as f64 / conns as f64);
        // Open loop: connection i takes its share of the plan (staggered
        // within it, so connections do not fire in bursts).
        let schedule = Schedule::new(i, conns, config.arrivals, 0x10ad_9e4e);
        let begin = move |ctx: &mut shardloop::ShardCtx| {
            let due = LoadConn::first_due(ctx, &shared, schedule);
            LoadConn::start(ctx, shared, due);
        };
        handle.post_to(i % handle.shards(), move |ctx| {
            if delay.is_zero() {
                begin(ctx);
            } else {
                ctx.call_later(delay, begin);
            }
        })?;
    }

    let prefix = format!("{}shard", handle.thread_name_prefix());
    let mut cpu_before = None;
    let mut total = Sample::default();
    let mut intervals = Vec::new();
    let mut tick_start = start;
    // The connect phase: until every connection has connected or failed.
    let mut connect_phase = None;
    let mut connected_at_start = 0;
    if closed {
        // The last connection to connect (or fail) ends the phase; bounded:
        // every connect has its own timeout, started within the ramp-up.
        let limit = start + config.ramp_up + config.connect_timeout + Duration::from_secs(1);
        while shared.offset.load(Ordering::Acquire) == UNSET && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(2));
        }
        let phase = shared.end_connect_phase();
        if shared.all_resolved() {
            connect_phase = Some(phase);
        }
        measure_from = shared.measure_from();
        end = shared.end();
    }
    loop {
        end = end.min(shared.end());
        let next = (tick_start + config.interval).min(end);
        if cpu_before.is_none() && measure_from <= next {
            // CPU is measured over exactly the measured time: from its
            // start, not from the first interval after it (for a run
            // shorter than an interval that was its end, and a few ticks
            // over no time read as several hundred percent).
            let now = Instant::now();
            if measure_from > now {
                std::thread::sleep(measure_from - now);
            }
            cpu_before = Some((Instant::now(), cpu::thread_ticks(&prefix)));
            connected_at_start = shared.connected.load(Ordering::Relaxed).min(conns);
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let now = Instant::now();
        if connect_phase.is_none() && shared.all_resolved() {
            connect_phase = Some(now.duration_since(start));
        }
        let failed = shared.connect_failed.load(Ordering::Relaxed);
        let connected = shared.connected.load(Ordering::Relaxed);
        if connected == 0 && failed >= conns {
            let why = shared
                .first_connect_error
                .get()
                .cloned()
                .unwrap_or_else(|| "connection failed".into());
            return Err(LoadError::Connect {
                addr: config.target.clone(),
                reason: why,
            });
        }
        let sample = collect(handle, shared.scenario);
        total.merge(&sample);
        let warming_up = now < measure_from;
        if let Some(live) = live {
            live.publish(LiveState {
                total: total.clone(),
                measuring: !warming_up,
                connections: shared.active.load(Ordering::Relaxed),
                target_rate: shared
                    .plan
                    .as_ref()
                    .map(|p| p.rate_at(now.duration_since(start).as_secs_f64())),
                elapsed_s: now.saturating_duration_since(measure_from).as_secs_f64(),
            });
        }
        if !warming_up {
            intervals.push(Interval {
                start: tick_start.max(measure_from).duration_since(measure_from),
                length: now.duration_since(tick_start.max(measure_from)),
                latency: sample.latency.clone(),
                service: sample.service.clone(),
                sent: sample.sent,
                ok: sample.ok,
                errors: sample.errors.total(),
            });
        }
        observer(&Progress {
            elapsed: now.saturating_duration_since(measure_from),
            warming_up,
            interval: &sample,
            interval_len: now.duration_since(tick_start),
            total: &total,
            connected,
        });
        tick_start = now;
        if abort_on_fail && !warming_up && aborted.is_none() {
            let so_far = now.saturating_duration_since(measure_from);
            if let Some(failed) = first_failed(config, &total, so_far) {
                aborted = Some(crate::report::Aborted {
                    slo: failed,
                    after_s: so_far.as_secs_f64(),
                    scenario: String::new(),
                });
                for s in all {
                    s.stop_now();
                }
            }
        }
        end = end.min(shared.end());
        if now >= end {
            break;
        }
    }
    // Requests stop at `end`: a last tick that came late (threads busy
    // connecting) does not stretch the measured time.
    let wall_end = Instant::now();
    let measured_end = wall_end.min(end);
    let cpu_after = cpu::thread_ticks(&prefix);

    // Drain: let requests already sent finish, up to the request timeout.
    let drain_limit = end + config.timeout + Duration::from_millis(200);
    while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < drain_limit {
        std::thread::sleep(Duration::from_millis(2));
    }
    if connect_phase.is_none() && shared.all_resolved() {
        connect_phase = Some(Instant::now().duration_since(start));
    }
    let tail = collect(handle, shared.scenario);
    total.merge(&tail);
    if let Some(last) = intervals.last_mut() {
        last.latency.add(&tail.latency).expect("same bounds");
        last.service.add(&tail.service).expect("same bounds");
        last.sent += tail.sent;
        last.ok += tail.ok;
        last.errors += tail.errors.total();
    }

    let (cpu_from, before) = cpu_before.unwrap_or((measure_from, Default::default()));
    let secs = wall_end.duration_since(cpu_from).as_secs_f64();
    let cpu_usage = cpu::usage(&before, &cpu_after, secs);
    let mut report = Report::build(
        config,
        total,
        measured_end.duration_since(measure_from),
        cpu_usage,
        intervals,
        start_wall + measure_from.duration_since(start),
        crate::report::Churn {
            connected_at_start,
            connect_phase,
            replaced: shared.replaced.load(Ordering::Relaxed),
            reconnects: shared.reconnects.load(Ordering::Relaxed),
        },
    );
    report.aborted = aborted;
    Ok(report)
}

/// The first of the scenario's objectives that the figures so far fail.
fn first_failed(config: &Config, total: &Sample, measured: Duration) -> Option<String> {
    if config.slos.is_empty() || total.sent == 0 {
        return None;
    }
    let so_far = Report::build(
        config,
        total.clone(),
        measured,
        Vec::new(),
        Vec::new(),
        SystemTime::now(),
        crate::report::Churn {
            connected_at_start: 0,
            connect_phase: None,
            replaced: 0,
            reconnects: 0,
        },
    );
    config
        .slos
        .iter()
        .map(|slo| slo.check(&so_far))
        .find(|r| !r.pass)
        .map(|r| r.to_string())
}
