//! `bench/gpu.sh` on a machine without a GPU: its dry run lists the plan
//! and what is missing, and a real run refuses with a clear message.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::process::Command;

#[test]
fn the_gpu_script_dry_run_lists_every_step_and_the_missing_inputs() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tollgate", "local_bench", "local_tests"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let shape = dir.path().join("shape.gguf");
    let run = |shape: &std::path::Path| {
        Command::new("bash")
            .args(["bench/gpu.sh", "--dry-run"])
            .env("BIN_DIR", dir.path())
            .env("SHAPE", shape)
            .env("KV_GB", "24")
            .output()
            .unwrap()
    };
    let out = run(&shape);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("missing: {}", shape.display())),
        "{text}"
    );
    assert!(
        text.contains("dry run: 5 steps, 1 inputs missing"),
        "{text}"
    );
    let steps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("would run: "))
        .collect();
    assert_eq!(steps.len(), 5, "{text}");
    assert!(steps[0].contains("nvidia-smi"));
    assert!(
        steps[2].ends_with("local_tests --test-threads 1"),
        "{}",
        steps[2]
    );
    for s in &steps[3..] {
        assert!(
            s.contains("--device cuda:0 --concurrency 1,8,32") && s.contains("--kv-cache-gb 24"),
            "{s}"
        );
    }
    assert!(
        steps[4].contains(&shape.display().to_string()) && steps[4].contains("llama2-chat.jinja")
    );

    std::fs::write(&shape, "").unwrap();
    let text = String::from_utf8_lossy(&run(&shape).stdout).into_owned();
    assert!(
        text.contains("dry run: 5 steps, 0 inputs missing"),
        "{text}"
    );
}

#[test]
fn the_gpu_script_refuses_to_run_without_a_gpu() {
    // A PATH with only what the script itself needs: no nvidia-smi.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/bin/dirname", bin.path().join("dirname")).unwrap();
    let out = Command::new("/bin/bash")
        .arg("bench/gpu.sh")
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no NVIDIA GPU visible") && err.contains("--dry-run"),
        "{err}"
    );
}
