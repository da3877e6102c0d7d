//! Ctrl-C end to end: SIGINT to a running `quantmix quantize` stops it with
//! exit code 130 and leaves neither the output nor a temporary file behind.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn sigint_during_quantize_leaves_no_output() {
    let Some(model) = common::smollm2() else { return };
    let dir = common::tempdir();
    let out = dir.path().join("out.gguf");
    // Q6_K of every tensor from Q4_1: several seconds of work on one thread.
    let mut child = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .args(["quantize", "--type", "Q6_K", "--threads", "1", "--quiet"])
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quantmix");
    // Wait until the temporary output exists (the writer has started), then interrupt.
    let t0 = Instant::now();
    while entries(dir.path()).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "quantize never started writing");
        if let Some(st) = child.try_wait().unwrap() {
            panic!("quantize finished before it could be interrupted: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "exit status after SIGINT: {:?}, stderr: {stderr}", o.status);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(entries(dir.path()).is_empty(), "left behind: {:?}", entries(dir.path()));
}
