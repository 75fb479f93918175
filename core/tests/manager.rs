//! The model manager on real loads: models found in a folder, eviction of the least recently
//! used idle model under a budget, models in use never evicted, hot-swap under load, keep-alive,
//! paths outside the folders refused, and the memory an unload reports seen freed in RSS.
#![cfg(feature = "llamacpp")]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uml_core::manager::{Manager, ManagerOptions, ModelState};
use uml_core::options::LoadOptions;
use uml_core::{ErrorKind, GenerateParams};

/// The tests measure memory and time: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A folder with tiny models `a`, `b`, `c` (different weights) and what one load takes.
fn tiny_folder() -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        uml_test_support::write_tiny_llama_gguf(&dir.path().join(format!("{name}.gguf")), i as u64)
            .unwrap();
    }
    let need = uml_core::estimate::preflight(&dir.path().join("a.gguf"), &LoadOptions::default())
        .unwrap()
        .estimate
        .host_bytes;
    (dir, need)
}

fn manager(folder: &Path, budget: u64, keep_alive: Option<Duration>) -> Manager {
    let m = Manager::new(ManagerOptions {
        memory_budget_bytes: Some(budget),
        keep_alive,
        folders: vec![folder.to_path_buf()],
    })
    .unwrap();
    assert_eq!(m.scan(&LoadOptions::default()).unwrap(), ["a", "b", "c"]);
    m
}

fn state(m: &Manager, id: &str) -> ModelState {
    m.list().into_iter().find(|s| s.id == id).unwrap().state
}

fn greedy(n: u32) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        ..GenerateParams::greedy()
    }
}

#[test]
fn a_load_over_budget_unloads_the_least_recently_used_idle_model() {
    let _serial = serial();
    let (dir, need) = tiny_folder();
    let m = manager(dir.path(), need * 5 / 2, None);
    assert!(m.list().iter().all(|s| s.state == ModelState::Unloaded));
    m.get("a").unwrap();
    m.get("b").unwrap();
    m.get("a").unwrap(); // a is now the more recently used
    m.get("c").unwrap();
    assert_eq!(state(&m, "a"), ModelState::Idle);
    assert_eq!(state(&m, "b"), ModelState::Unloaded);
    assert_eq!(state(&m, "c"), ModelState::Idle);
    assert!(m.used_bytes() <= m.budget_bytes());
    let listed = m.list();
    assert!(listed
        .iter()
        .filter(|s| s.state == ModelState::Idle)
        .all(|s| s.memory_bytes > 0 && s.backend == Some("llama.cpp")));

    // Aliases reach the same model; unknown names say what is registered.
    m.alias("tiny", "c").unwrap();
    assert!(Arc::ptr_eq(&m.get("tiny").unwrap(), &m.get("c").unwrap()));
    let err = m.get("nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("a, b, c"), "{err}");
}

#[test]
fn a_model_in_use_is_never_evicted() {
    let _serial = serial();
    let (dir, need) = tiny_folder();
    let m = manager(dir.path(), need * 5 / 2, None);
    let a = m.get("a").unwrap();
    let b = m.get("b").unwrap();
    assert_eq!(state(&m, "a"), ModelState::InUse);
    let err = m.get("c").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    assert!(err.message().contains("budget"), "{err}");
    assert_eq!(state(&m, "a"), ModelState::InUse);
    assert_eq!(state(&m, "b"), ModelState::InUse);
    // A generation on a model in use goes on; once it is let go, c fits.
    assert!(a.complete("the cat", &greedy(4)).is_ok());
    drop((a, b));
    m.get("c").unwrap();
}

#[test]
fn a_swap_under_load_fails_no_request() {
    let _serial = serial();
    let (dir, need) = tiny_folder();
    let m = Arc::new(manager(dir.path(), need * 4, None));
    let old = m.get("a").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (m, stop) = (Arc::clone(&m), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut served = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let model = m.get("a").expect("get during a swap");
                    model
                        .complete("the cat", &greedy(8))
                        .expect("generate during a swap");
                    served += 1;
                }
                served
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    m.swap("a", dir.path().join("b.gguf"), LoadOptions::default())
        .unwrap();
    let new = m.get("a").unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(
        new.info().path,
        std::fs::canonicalize(dir.path().join("b.gguf")).unwrap()
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        assert!(c.join().unwrap() > 0);
    }
    // The old model served its last callers and is ours alone now.
    assert_eq!(Arc::strong_count(&old), 1);
    // A swap to a file that fails to load keeps the model that runs.
    std::fs::write(dir.path().join("broken.gguf"), b"GGUF but not really").unwrap();
    assert!(m
        .swap("a", dir.path().join("broken.gguf"), LoadOptions::default())
        .is_err());
    assert!(Arc::ptr_eq(&m.get("a").unwrap(), &new));
}

#[test]
fn an_idle_model_is_unloaded_after_its_keep_alive() {
    let _serial = serial();
    let (dir, need) = tiny_folder();
    let m = manager(dir.path(), need * 4, Some(Duration::from_millis(300)));
    let held = m.get("a").unwrap();
    m.get("b").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&m, "b") != ModelState::Unloaded {
        assert!(
            Instant::now() < deadline,
            "b was not unloaded after its keep-alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Held all along: in use, so kept.
    assert_eq!(state(&m, "a"), ModelState::InUse);
    drop(held);
    while state(&m, "a") != ModelState::Unloaded {
        assert!(
            Instant::now() < deadline,
            "a was not unloaded after its keep-alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn paths_outside_the_model_folders_are_refused() {
    let _serial = serial();
    let (dir, need) = tiny_folder();
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().join("x.gguf");
    uml_test_support::write_tiny_llama_gguf(&elsewhere, 9).unwrap();
    let m = manager(dir.path(), need * 4, None);
    let refused = |path: &Path| {
        let err = m.register("x", path, LoadOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.message().contains("outside the model folders"), "{err}");
    };
    refused(&elsewhere);
    refused(
        &dir.path()
            .join("..")
            .join(outside.path().file_name().unwrap())
            .join("x.gguf"),
    );
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("link.gguf")).unwrap();
    refused(&dir.path().join("link.gguf"));
    assert_eq!(
        m.register("x", dir.path().join("missing.gguf"), LoadOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(m
        .register("a", dir.path().join("b.gguf"), LoadOptions::default())
        .is_err());
    assert!(m
        .register(
            "two words",
            dir.path().join("b.gguf"),
            LoadOptions::default()
        )
        .is_err());
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn an_unload_reports_the_bytes_it_frees_and_rss_shows_them_freed() {
    let _serial = serial();
    let folder = common::model_path(common::SMOLLM2)
        .parent()
        .unwrap()
        .to_path_buf();
    let m = Manager::new(ManagerOptions {
        memory_budget_bytes: None,
        keep_alive: None,
        folders: vec![folder],
    })
    .unwrap();
    m.register(
        "smollm2",
        common::model_path(common::SMOLLM2),
        common::test_options(),
    )
    .unwrap();
    let before = rss_bytes();
    m.get("smollm2")
        .unwrap()
        .complete("Once upon a time", &greedy(8))
        .unwrap();
    let loaded = rss_bytes();
    let freed = m.unload("smollm2").unwrap();
    let after = rss_bytes();
    assert_eq!(state(&m, "smollm2"), ModelState::Unloaded);
    let grew = loaded.saturating_sub(before);
    let dropped = loaded.saturating_sub(after);
    assert!(
        freed > 0 && dropped * 10 >= grew * 8,
        "reported {} MiB freed; RSS {} MiB before, {} MiB loaded, {} MiB after",
        freed >> 20,
        before >> 20,
        loaded >> 20,
        after >> 20
    );
    assert_eq!(m.unload("smollm2").unwrap(), 0);
}

#[test]
fn a_pulled_model_is_registered_and_loads() {
    let _serial = serial();
    let (dir, need) = tiny_folder();
    let hub_root = tempfile::tempdir().unwrap();
    let tiny = hub_root.path().join("tiny-Q8_0.gguf");
    uml_test_support::write_tiny_llama_gguf(&tiny, 7).unwrap();
    uml_test_support::hub_repo(
        hub_root.path(),
        "test/Tiny-GGUF",
        &[("tiny-Q8_0.gguf", &tiny)],
    );
    let hub = uml_test_support::FakeHub::start(hub_root.path(), &[]);
    let m = manager(dir.path(), need * 4, None);
    let options = uml_core::pull::PullOptions {
        endpoint: Some(hub.url.clone()),
        ..Default::default()
    };

    // Cancelled before it starts: nothing is fetched or registered.
    let cancel = uml_core::CancelToken::new();
    cancel.cancel();
    let e = m
        .pull(
            "test/Tiny-GGUF",
            &options,
            LoadOptions::default(),
            Some(&cancel),
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(m.list().iter().all(|s| s.id != "tiny-Q8_0"));

    let mut reports = Vec::new();
    let pull = m
        .pull(
            "test/Tiny-GGUF",
            &options,
            LoadOptions::default(),
            None,
            &mut |p| reports.push((p.bytes, p.total)),
        )
        .unwrap();
    let id = pull.id;
    assert_eq!(id, "tiny-Q8_0");
    let size = std::fs::metadata(&tiny).unwrap().len();
    assert_eq!(pull.pulled.downloaded_bytes, size);
    assert_eq!(reports.last(), Some(&(size, size)));
    assert_eq!(state(&m, &id), ModelState::Unloaded);
    let model = m.get(&id).unwrap();
    let out = model
        .generate("a", &greedy(3), None, &mut |_| true)
        .unwrap();
    assert!(out.usage.completion_tokens > 0);

    // Pulled again: the same id, nothing fetched.
    let again = m
        .pull(
            "test/Tiny-GGUF",
            &options,
            LoadOptions::default(),
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.pulled.downloaded_bytes),
        ("tiny-Q8_0", 0)
    );

    // A manager without folders has nowhere to put it.
    let bare = Manager::new(ManagerOptions::default()).unwrap();
    let e = bare
        .pull(
            "test/Tiny-GGUF",
            &options,
            LoadOptions::default(),
            None,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(e.message().contains("no model folder"), "{e}");
}

/// A model loaded with a draft takes the draft's memory too: the budget counts both (a
/// budget with room for the model alone refuses the pair), the listing reports both, and
/// unloading frees both.
#[test]
fn the_budget_counts_a_models_draft() {
    let _serial = serial();
    let (dir, _) = tiny_folder();
    let options = LoadOptions {
        n_ctx: Some(128),
        max_parallel: Some(1),
        draft_model: Some(dir.path().join("b.gguf")),
        ..LoadOptions::default()
    };
    let pre = uml_core::estimate::preflight(&dir.path().join("a.gguf"), &options).unwrap();
    let draft = pre.draft.expect("the draft's estimate");
    assert_eq!(
        pre.load_host_bytes,
        pre.estimate.host_bytes + draft.host_bytes
    );
    assert!(draft.host_bytes > 0);

    let tight = Manager::new(ManagerOptions {
        memory_budget_bytes: Some(pre.load_host_bytes - 1),
        keep_alive: None,
        folders: vec![dir.path().to_path_buf()],
    })
    .unwrap();
    tight
        .register("paired", dir.path().join("a.gguf"), options.clone())
        .unwrap();
    let err = tight.get("paired").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");

    let roomy = manager(dir.path(), pre.load_host_bytes * 2, None);
    roomy
        .register("paired", dir.path().join("a.gguf"), options)
        .unwrap();
    let model = roomy.get("paired").unwrap();
    assert!(model.draft().is_some());
    assert_eq!(model.memory().host_bytes, pre.estimate.host_bytes);
    assert_eq!(model.host_bytes_with_draft(), pre.load_host_bytes);
    drop(model);
    let listed = roomy.list();
    let paired = listed.iter().find(|s| s.id == "paired").unwrap();
    assert_eq!(paired.memory_bytes, pre.load_host_bytes);
    assert_eq!(roomy.used_bytes(), pre.load_host_bytes);
    assert_eq!(roomy.unload("paired").unwrap(), pre.load_host_bytes);
}
