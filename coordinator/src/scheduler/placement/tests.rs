//! Placement rules, one test each, and proptest invariants over random farms.

use super::*;
use proptest::prelude::*;

fn job(id: &str, run: &str, model: &str) -> PendingJob {
    PendingJob {
        job_id: id.into(),
        run_id: run.into(),
        model: model.into(),
        scripted: false,
        memory_bytes: 100,
        pin: None,
        require: Requirements::default(),
        avoid: vec![],
        work_tokens: 100.0,
        fetch_bytes: None,
        remote: None,
    }
}

/// A job of remote model `model` at `url`, needing `key` and with `left` requests to go.
fn remote_job(id: &str, model: &str, url: &str, key: Option<&str>, left: u32) -> PendingJob {
    PendingJob {
        memory_bytes: 0,
        remote: Some(RemoteNeed {
            name: model.into(),
            url: url.into(),
            key_env: key.map(str::to_string),
            concurrency_left: left,
        }),
        ..job(id, "r", &format!("sha-{model}"))
    }
}

fn caller(id: &str, slots: u32, remotes: &[&str], keys: &[&str]) -> WorkerView {
    WorkerView {
        remotes: remotes.iter().map(|r| r.to_string()).collect(),
        key_envs: keys.iter().map(|k| k.to_string()).collect(),
        ..worker(id, slots, &[])
    }
}

fn worker(id: &str, slots: u32, models: &[&str]) -> WorkerView {
    WorkerView {
        worker_id: id.into(),
        class: "c".into(),
        free_slots: slots,
        models: models.iter().map(|m| m.to_string()).collect(),
        loaded: None,
        labels: BTreeMap::new(),
        arch: "x86_64".into(),
        ram_total_bytes: 1 << 30,
        ram_available_bytes: 1 << 30,
        speed: 100.0,
        load_seconds: 0.0,
        slots: 1,
        held: 0,
        busy_for: 0.0,
        accepting: true,
        cache_room_bytes: 0,
        transfer_rate: 100e6,
        remotes: vec![],
        key_envs: BTreeSet::new(),
    }
}

/// A job of a registered model of `bytes`, which a worker with cache room may fetch.
fn fetchable(id: &str, run: &str, model: &str, bytes: u64) -> PendingJob {
    PendingJob {
        fetch_bytes: Some(bytes),
        ..job(id, run, model)
    }
}

/// A worker with `room` bytes free in its cache, fetching at `rate` bytes per second.
fn caching(id: &str, slots: u32, models: &[&str], room: u64, rate: f64) -> WorkerView {
    WorkerView {
        cache_room_bytes: room,
        transfer_rate: rate,
        ..worker(id, slots, models)
    }
}

fn ids(placed: &[Placement]) -> Vec<(&str, &str)> {
    placed
        .iter()
        .map(|p| (p.job_id.as_str(), p.worker_id.as_str()))
        .collect()
}

#[test]
fn only_capable_workers_get_jobs() {
    let queue = vec![job("j1", "r", "a"), job("j2", "r", "b")];
    assert_eq!(
        ids(&place(&queue, &[worker("w1", 4, &["b"])])),
        vec![("j2", "w1")]
    );
}

/// "Taken" is by job id: a job listed twice (even under two runs' turns) is placed once, as
/// when taken jobs were a set of ids.
#[test]
fn a_job_listed_twice_is_placed_once() {
    let queue = vec![
        job("j1", "r", "a"),
        job("j1", "r", "a"),
        job("j1", "r2", "a"),
        job("j2", "r", "a"),
    ];
    assert_eq!(
        ids(&place(&queue, &[worker("w1", 4, &["a"])])),
        vec![("j1", "w1"), ("j2", "w1")]
    );
}

#[test]
fn scripted_models_run_anywhere() {
    let mut j = job("j1", "r", "script");
    j.scripted = true;
    j.memory_bytes = 0;
    assert_eq!(place(&[j], &[worker("w1", 1, &[])]).len(), 1);
}

#[test]
fn a_model_that_does_not_fit_in_memory_is_not_placed() {
    let mut j = job("j1", "r", "big");
    j.memory_bytes = memory_needed(2_000_000_000, false);
    let mut small = worker("pi", 1, &["big"]);
    small.ram_available_bytes = 1_000_000_000;
    assert_eq!(
        fit(&j, &small),
        Err(Unfit::Memory {
            need: j.memory_bytes,
            have: 1_000_000_000
        })
    );
    assert!(place(&[j.clone()], &[small]).is_empty());
    let mut large = worker("laptop", 1, &["big"]);
    large.ram_available_bytes = 16_000_000_000;
    assert_eq!(place(&[j], &[large]).len(), 1);
}

#[test]
fn requirements_and_pins_filter_workers() {
    let mut j = job("j1", "r", "m");
    j.require.labels.insert("site".into(), "lab".into());
    let mut lab = worker("lab", 1, &["m"]);
    lab.labels.insert("site".into(), "lab".into());
    assert_eq!(
        ids(&place(
            &[j.clone()],
            &[worker("home", 1, &["m"]), lab.clone()]
        )),
        vec![("j1", "lab")]
    );
    j.require.arch = Some("aarch64".into());
    assert_eq!(fit(&j, &lab), Err(Unfit::Arch));
    let mut pinned = job("j2", "r", "m");
    pinned.pin = Some(Pin::Worker("w2".into()));
    assert_eq!(
        ids(&place(
            &[pinned.clone()],
            &[worker("w1", 1, &["m"]), worker("w2", 1, &["m"])]
        )),
        vec![("j2", "w2")]
    );
    pinned.pin = Some(Pin::Class("other".into()));
    assert!(place(&[pinned], &[worker("w1", 1, &["m"])]).is_empty());
}

#[test]
fn draining_workers_get_nothing() {
    let mut w = worker("w1", 1, &["m"]);
    w.accepting = false;
    assert!(place(&[job("j1", "r", "m")], &[w]).is_empty());
}

#[test]
fn retries_avoid_the_worker_that_failed_when_possible() {
    let mut j = job("j1", "r", "m");
    j.avoid = vec!["w1".into()];
    let placed = place(
        &[j.clone()],
        &[worker("w1", 1, &["m"]), worker("w2", 1, &["m"])],
    );
    assert_eq!(ids(&placed), vec![("j1", "w2")]);
    // Alone, the failed worker still gets it: a retry there beats never finishing.
    assert_eq!(
        ids(&place(&[j], &[worker("w1", 1, &["m"])])),
        vec![("j1", "w1")]
    );
}

#[test]
fn loaded_model_is_preferred() {
    let queue = vec![job("j1", "r", "a"), job("j2", "r", "b")];
    let mut w = worker("w1", 1, &["a", "b"]);
    w.loaded = Some("b".into());
    assert_eq!(place(&queue, &[w])[0].job_id, "j2");
}

#[test]
fn idle_workers_spread_over_models() {
    // Two models with equal work and two idle workers: one worker each, not both on the first.
    let queue = vec![
        job("a1", "r", "a"),
        job("a2", "r", "a"),
        job("b1", "r", "b"),
        job("b2", "r", "b"),
    ];
    let placed = place(
        &queue,
        &[worker("w1", 1, &["a", "b"]), worker("w2", 1, &["a", "b"])],
    );
    let models: BTreeSet<&str> = placed.iter().map(|p| &p.job_id[..1]).collect();
    assert_eq!(models.len(), 2, "{placed:?}");
}

#[test]
fn runs_take_turns() {
    let queue = vec![
        job("a1", "r1", "m"),
        job("a2", "r1", "m"),
        job("b1", "r2", "m"),
    ];
    let placed = place(&queue, &[worker("w1", 2, &["m"])]);
    assert_eq!(ids(&placed), vec![("a1", "w1"), ("b1", "w1")]);
}

#[test]
fn slots_fill_evenly_and_fast_workers_choose_first() {
    let queue: Vec<_> = (0..4).map(|i| job(&format!("j{i}"), "r", "m")).collect();
    // Slightly faster: it chooses first, but not so much faster that the tail rule holds jobs for it.
    let mut fast = worker("w2", 2, &["m"]);
    fast.speed = 110.0;
    let placed = place(&queue, &[worker("w1", 2, &["m"]), fast]);
    assert_eq!(placed[0].worker_id, "w2");
    assert_eq!(placed.iter().filter(|p| p.worker_id == "w1").count(), 2);
}

#[test]
fn the_last_job_waits_for_a_much_faster_worker() {
    // 100 tokens: 4 s on the slow worker, 0.25 + 0.25 s on the fast one once its job ends.
    let mut slow = worker("slow", 1, &["m"]);
    slow.speed = 25.0;
    let mut fast = worker("fast", 0, &["m"]);
    fast.speed = 400.0;
    fast.busy_for = 0.25;
    assert!(place(&[job("j1", "r", "m")], &[slow.clone(), fast.clone()]).is_empty());
    // Two jobs: the fast one is still done with both (0.25 + 0.5 s) long before the slow one's 4 s.
    let two = vec![job("j1", "r", "m"), job("j2", "r", "m")];
    assert!(place(&two, &[slow.clone(), fast.clone()]).is_empty());
    // With 20 jobs (5.25 s for the fast worker alone) the slow worker does take one.
    let twenty: Vec<_> = (0..20)
        .map(|i| job(&format!("j{i:02}"), "r", "m"))
        .collect();
    assert_eq!(place(&twenty, &[slow.clone(), fast.clone()]).len(), 1);
    // A model load counts: loading takes the fast worker 3 s, so a loaded slow worker goes ahead.
    let mut loaded_slow = slow.clone();
    loaded_slow.loaded = Some("m".into());
    let mut cold_fast = fast.clone();
    cold_fast.load_seconds = 4.0;
    assert_eq!(place(&two, &[loaded_slow, cold_fast]).len(), 1);
    // And when the fast worker is busy for long, the slow one starts now.
    fast.busy_for = 60.0;
    assert_eq!(place(&[job("j1", "r", "m")], &[slow, fast]).len(), 1);
}

#[test]
fn a_job_placed_on_a_free_slot_counts_for_the_next_job_of_the_same_call() {
    // Prefetch: the slow worker has a free slot and room for one job waiting behind it. Jobs of 100
    // tokens take 1 s on it and 0.25 s on the fast worker. Of 6 jobs it takes the first (ends at
    // 1 s; the fast worker needs 1.5 s for all 6); a second would end at 2 s, after the fast
    // worker's 1.25 s for the other 5, so it leaves that one: the first job counts although it
    // took a free slot. Of 12 jobs it takes two (2 s against 2.75 s).
    let mut slow = worker("slow", 2, &["m"]);
    slow.speed = 100.0;
    slow.loaded = Some("m".into());
    let mut fast = worker("fast", 0, &["m"]);
    fast.speed = 400.0;
    fast.loaded = Some("m".into());
    let six: Vec<_> = (0..6).map(|i| job(&format!("j{i}"), "r", "m")).collect();
    assert_eq!(place(&six, &[slow.clone(), fast.clone()]).len(), 1);
    let twelve: Vec<_> = (0..12)
        .map(|i| job(&format!("j{i:02}"), "r", "m"))
        .collect();
    assert_eq!(place(&twelve, &[slow, fast]).len(), 2);
}

#[test]
fn a_slow_worker_does_not_wait_for_a_faster_one_the_job_avoids() {
    let mut j = job("j1", "r", "m");
    j.avoid = vec!["fast".into()];
    let mut slow = worker("slow", 1, &["m"]);
    slow.speed = 25.0;
    let mut fast = worker("fast", 0, &["m"]);
    fast.speed = 400.0;
    assert_eq!(ids(&place(&[j], &[slow, fast])), vec![("j1", "slow")]);
}

#[test]
fn a_registered_model_is_fetched_by_a_worker_with_room_and_only_then() {
    let j = fetchable("j1", "r", "m", 300);
    // No cache, or one too small: not a candidate.
    assert_eq!(
        fit(&j, &worker("w", 1, &[])),
        Err(Unfit::CacheFull { need: 300, room: 0 })
    );
    assert_eq!(
        fit(&j, &caching("w", 1, &[], 299, 1e6)),
        Err(Unfit::CacheFull {
            need: 300,
            room: 299
        })
    );
    assert_eq!(
        ids(&place(
            std::slice::from_ref(&j),
            &[caching("w", 1, &[], 300, 1e6)]
        )),
        vec![("j1", "w")]
    );
    // An unregistered model is never fetched, however much room there is.
    assert_eq!(
        fit(&job("j2", "r", "m"), &caching("w", 1, &[], 1 << 40, 1e9)),
        Err(Unfit::NoModel)
    );
}

#[test]
fn the_models_sent_for_in_one_call_fit_the_cache_together() {
    // Room for one of the two models: the second waits for the first to be evicted later.
    let queue = vec![
        fetchable("a", "r", "ma", 200),
        fetchable("b", "r", "mb", 200),
    ];
    let placed = place(&queue, &[caching("w", 2, &[], 300, 1e6)]);
    assert_eq!(placed.len(), 1, "{placed:?}");
    // Two jobs of one model: fetched once, so both fit.
    let same = vec![
        fetchable("a1", "r", "m", 200),
        fetchable("a2", "r", "m", 200),
    ];
    assert_eq!(place(&same, &[caching("w", 2, &[], 300, 1e6)]).len(), 2);
}

#[test]
fn holders_are_preferred_and_transfer_time_counts() {
    let j = fetchable("j1", "r", "m", 100_000_000);
    // An idle holder gets it, though the worker without it is faster.
    let mut fetcher = caching("fetcher", 1, &[], 1 << 30, 100e6);
    fetcher.speed = 1000.0;
    let holder = caching("holder", 1, &["m"], 0, 100e6);
    assert_eq!(
        ids(&place(
            std::slice::from_ref(&j),
            &[fetcher.clone(), holder.clone()]
        )),
        vec![("j1", "holder")]
    );
    // A busy holder: 100 MB at 100 MB/s is 1 s + 0.1 s of work, against the holder's 5 s: fetch.
    let mut busy = holder.clone();
    busy.free_slots = 0;
    busy.busy_for = 5.0;
    assert_eq!(
        ids(&place(
            std::slice::from_ref(&j),
            &[fetcher.clone(), busy.clone()]
        )),
        vec![("j1", "fetcher")]
    );
    // Over a slow link (1 MB/s: 100 s) the busy holder is sooner, so the job waits for it.
    let mut slow_link = fetcher.clone();
    slow_link.transfer_rate = 1e6;
    assert!(place(std::slice::from_ref(&j), &[slow_link.clone(), busy.clone()]).is_empty());
    // With no holder at all the slow link still fetches: waiting would never end.
    assert_eq!(ids(&place(&[j], &[slow_link])), vec![("j1", "fetcher")]);
}

#[test]
fn remote_jobs_go_only_to_declared_workers_with_the_key() {
    let j = remote_job(
        "j1",
        "cloud",
        "https://api.example.com/v1",
        Some("P_API_KEY"),
        4,
    );
    let plain = worker("plain", 1, &["sha-cloud"]);
    let no_key = caller("no-key", 1, &["cloud"], &[]);
    let by_url = caller("by-url", 1, &["https://api.example.com"], &["P_API_KEY"]);
    assert_eq!(fit(&j, &plain), Err(Unfit::NoRemote));
    assert_eq!(fit(&j, &no_key), Err(Unfit::NoKey("P_API_KEY".into())));
    assert_eq!(fit(&j, &by_url), Ok(()));
    assert_eq!(
        ids(&place(std::slice::from_ref(&j), &[plain, no_key, by_url])),
        vec![("j1", "by-url")]
    );
    // A prefix matches at a path boundary only: this worker's key never goes to another host.
    let lookalike = remote_job("j2", "x", "https://api.example.com.evil.net/v1", None, 4);
    assert_eq!(
        fit(
            &lookalike,
            &caller("w", 1, &["https://api.example.com"], &[])
        ),
        Err(Unfit::NoRemote)
    );
    assert!(
        fit(
            &lookalike,
            &caller("w", 1, &["https://api.example.com.evil.net/"], &[])
        )
        .is_ok()
    );
    // No key needed: the declaration is enough; memory and model files do not matter.
    let keyless = remote_job("j3", "local-server", "http://127.0.0.1:8080/v1", None, 4);
    let mut tiny = caller("tiny", 1, &["local-server"], &[]);
    tiny.ram_available_bytes = 0;
    assert_eq!(fit(&keyless, &tiny), Ok(()));
}

#[test]
fn remote_concurrency_caps_requests_in_flight_across_workers() {
    let queue: Vec<_> = (0..6)
        .map(|i| remote_job(&format!("j{i}"), "cloud", "https://h/v1", None, 3))
        .collect();
    let placed = place(
        &queue,
        &[
            caller("a", 4, &["cloud"], &[]),
            caller("b", 4, &["cloud"], &[]),
        ],
    );
    assert_eq!(placed.len(), 3, "{placed:?}");
    // None left: jobs wait, and a local job behind them still goes.
    let mut full = queue.clone();
    for j in &mut full {
        j.remote.as_mut().unwrap().concurrency_left = 0;
    }
    full.push(job("local", "r", "m"));
    let mut both = caller("a", 4, &["cloud"], &[]);
    both.models.insert("m".into());
    assert_eq!(ids(&place(&full, &[both])), vec![("local", "a")]);
}

proptest! {
    /// Remote jobs: placed only on workers that fit them, never more per model than its
    /// concurrency allows, and none left while a capable worker has a slot and the model has room.
    #[test]
    fn remote_placement_invariants(
        jobs in proptest::collection::vec((0..3usize, any::<bool>(), any::<bool>()), 0..30),
        left in proptest::collection::vec(0..4u32, 3),
        workers in proptest::collection::vec((0..4u32, proptest::collection::vec(0..3usize, 0..3), any::<bool>(), any::<bool>()), 0..5),
    ) {
        let url = |m: usize| format!("https://h{m}.example/v1");
        let queue: Vec<PendingJob> = jobs.iter().enumerate().map(|(i, (m, keyed, local))| {
            if *local {
                job(&format!("j{i:03}"), "r", "gguf")
            } else {
                let key = keyed.then(|| format!("K{m}_KEY"));
                remote_job(&format!("j{i:03}"), &format!("cloud{m}"), &url(*m), key.as_deref(), left[*m])
            }
        }).collect();
        let views: Vec<WorkerView> = workers.iter().enumerate().map(|(i, (slots, remotes, by_url, has_keys))| {
            let pats: Vec<String> = remotes.iter().map(|m| if *by_url { format!("https://h{m}.example") } else { format!("cloud{m}") }).collect();
            let keys: Vec<String> = if *has_keys { remotes.iter().map(|m| format!("K{m}_KEY")).collect() } else { vec![] };
            let mut w = caller(&format!("w{i}"), *slots, &[], &[]);
            w.remotes = pats;
            w.key_envs = keys.into_iter().collect();
            w.models.insert("gguf".into());
            w
        }).collect();
        let placed = place(&queue, &views);
        let mut per_model: HashMap<String, u32> = HashMap::new();
        let mut seen = HashSet::new();
        for p in &placed {
            prop_assert!(seen.insert(p.job_id.clone()));
            let job = queue.iter().find(|j| j.job_id == p.job_id).unwrap();
            let w = views.iter().find(|w| w.worker_id == p.worker_id).unwrap();
            prop_assert!(fit(job, w).is_ok(), "{} on {}: {:?}", job.job_id, w.worker_id, fit(job, w));
            if job.remote.is_some() {
                *per_model.entry(job.model.clone()).or_default() += 1;
            }
        }
        for j in &queue {
            if let Some(r) = &j.remote {
                let used = per_model.get(&j.model).copied().unwrap_or(0);
                prop_assert!(used <= r.concurrency_left, "{}: {used} > {}", j.model, r.concurrency_left);
            }
        }
        for w in &views {
            let used = placed.iter().filter(|p| p.worker_id == w.worker_id).count() as u32;
            prop_assert!(used <= w.free_slots);
            if used < w.free_slots {
                for j in &queue {
                    let room = j.remote.as_ref().is_none_or(|r| per_model.get(&j.model).copied().unwrap_or(0) < r.concurrency_left);
                    prop_assert!(seen.contains(&j.job_id) || fit(j, w).is_err() || !room,
                        "{} left unplaced while {} had a free slot", j.job_id, w.worker_id);
                }
            }
        }
    }
}

proptest! {
    /// With fetching: nothing placed where the cache cannot take it, the models one worker is sent
    /// for fit its cache together, and a job goes to a worker that must fetch its model only when
    /// no worker that holds the model (and could run it) is left with a free slot.
    #[test]
    fn fetching_respects_cache_room_and_prefers_holders(
        jobs in proptest::collection::vec((0..2usize, 0..4usize), 0..30),
        registered in proptest::collection::vec(any::<bool>(), 4),
        workers in proptest::collection::vec((0..4u32, proptest::collection::vec(0..4usize, 0..3), 0..6u64, 1..1000u64, 0..20u64), 1..6),
    ) {
        // Model m is (m + 1) * 100 bytes; only registered models may be fetched.
        let size = |m: usize| (m as u64 + 1) * 100;
        let queue: Vec<PendingJob> = jobs.iter().enumerate().map(|(i, (run, model))| {
            let mut j = job(&format!("j{i:03}"), &format!("r{run}"), &format!("m{model}"));
            j.fetch_bytes = registered[*model].then(|| size(*model));
            j
        }).collect();
        let views: Vec<WorkerView> = workers.iter().enumerate().map(|(i, (slots, models, room, rate, busy))| {
            let names: Vec<String> = models.iter().map(|m| format!("m{m}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut w = caching(&format!("w{i}"), *slots, &refs, room * 100, *rate as f64);
            w.busy_for = *busy as f64;
            w
        }).collect();
        let placed = place(&queue, &views);
        for w in &views {
            let mine: Vec<&PendingJob> = placed.iter().filter(|p| p.worker_id == w.worker_id)
                .map(|p| queue.iter().find(|j| j.job_id == p.job_id).unwrap()).collect();
            let fetched: BTreeSet<&str> = mine.iter().filter(|j| needs_fetch(j, w)).map(|j| j.model.as_str()).collect();
            let bytes: u64 = fetched.iter().map(|m| size(m[1..].parse().unwrap())).sum();
            prop_assert!(bytes <= w.cache_room_bytes, "{} sent for {bytes} bytes with {} of room", w.worker_id, w.cache_room_bytes);
            for j in &mine {
                prop_assert!(fit(j, w).is_ok(), "{} on {}: {:?}", j.job_id, w.worker_id, fit(j, w));
                if needs_fetch(j, w) {
                    for h in views.iter().filter(|h| h.worker_id != w.worker_id && !needs_fetch(j, h) && fit(j, h).is_ok()) {
                        let used = placed.iter().filter(|p| p.worker_id == h.worker_id).count() as u32;
                        prop_assert!(used >= h.free_slots,
                            "{} fetched on {} while holder {} kept a free slot", j.job_id, w.worker_id, h.worker_id);
                    }
                }
            }
        }
    }

    /// Every job placed at most once, never on a worker that cannot run it, never past a worker's
    /// free slots, and (with equal speeds) nothing left unplaced that a free worker could take.
    #[test]
    fn placement_invariants(
        jobs in proptest::collection::vec((0..3usize, 0..4usize, any::<bool>(), 0..3u64, proptest::option::of(0..6usize)), 0..40),
        workers in proptest::collection::vec((0..4u32, proptest::collection::vec(0..4usize, 0..4), 0..3u64, any::<bool>()), 0..6),
    ) {
        let queue: Vec<PendingJob> = jobs.iter().enumerate().map(|(i, (run, model, scripted, gb, pin))| {
            let mut j = job(&format!("j{i:03}"), &format!("r{run}"), &format!("m{model}"));
            j.scripted = *scripted;
            j.memory_bytes = if *scripted { 0 } else { gb << 30 };
            j.pin = pin.map(|w| Pin::Worker(format!("w{w}")));
            j
        }).collect();
        let views: Vec<WorkerView> = workers.iter().enumerate().map(|(i, (slots, models, gb, accepting))| {
            let mut w = worker(&format!("w{i}"), *slots, &[]);
            w.models = models.iter().map(|m| format!("m{m}")).collect();
            w.ram_available_bytes = gb << 30;
            w.accepting = *accepting;
            w
        }).collect();
        let placed = place(&queue, &views);
        let mut seen = HashSet::new();
        for p in &placed {
            prop_assert!(seen.insert(p.job_id.clone()), "placed twice: {}", p.job_id);
            let job = queue.iter().find(|j| j.job_id == p.job_id).unwrap();
            let w = views.iter().find(|w| w.worker_id == p.worker_id).unwrap();
            prop_assert!(fit(job, w).is_ok(), "{} on {} does not fit: {:?}", job.job_id, w.worker_id, fit(job, w));
        }
        for w in &views {
            let used = placed.iter().filter(|p| p.worker_id == w.worker_id).count() as u32;
            prop_assert!(used <= w.free_slots);
            if used < w.free_slots {
                for j in &queue {
                    prop_assert!(seen.contains(&j.job_id) || fit(j, w).is_err(),
                        "{} left unplaced while {} had a free slot", j.job_id, w.worker_id);
                }
            }
        }
    }
}

proptest! {
    /// Asking once per class of alike jobs decides exactly as asking of every job: the same
    /// placements in the same order, over runs, models, pins, retried jobs' avoid lists,
    /// fetchable models, and workers of different speeds, loads, caches and free slots.
    #[test]
    fn sharing_by_class_decides_as_asking_per_job(
        jobs in proptest::collection::vec(
            (0..2usize, 0..3usize, proptest::option::of(0..4usize), proptest::collection::vec(0..4usize, 0..2), 1..3u32),
            0..60),
        registered in proptest::collection::vec(any::<bool>(), 3),
        workers in proptest::collection::vec(
            (0..3u32, proptest::collection::vec(0..3usize, 0..3), 1..4u32, proptest::option::of(0..3usize), 0..4u64, 0..6u64),
            1..5),
    ) {
        let queue: Vec<PendingJob> = jobs.iter().enumerate().map(|(i, (run, model, pin, avoid, tokens))| {
            let mut j = job(&format!("j{i:03}"), &format!("r{run}"), &format!("m{model}"));
            j.pin = pin.map(|w| Pin::Worker(format!("w{w}")));
            j.avoid = avoid.iter().map(|w| format!("w{w}")).collect();
            j.work_tokens = f64::from(*tokens) * 32.0;
            j.fetch_bytes = registered[*model].then_some(100);
            j
        }).collect();
        let views: Vec<WorkerView> = workers.iter().enumerate().map(|(i, (slots, models, speed, loaded, busy, room))| {
            let names: Vec<String> = models.iter().map(|m| format!("m{m}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut w = caching(&format!("w{i}"), *slots, &refs, room * 100, 50.0);
            w.speed = f64::from(*speed) * 40.0;
            w.loaded = loaded.map(|m| format!("m{m}"));
            w.busy_for = *busy as f64;
            w
        }).collect();
        prop_assert_eq!(place(&queue, &views), place_unshared(&queue, &views));
    }
}
