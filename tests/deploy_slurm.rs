//! deploy/slurm/sensitivity.sh on a real Slurm cluster (the one-node
//! cluster deploy/slurm/local-cluster.sh starts; `.ci/setup` starts it in
//! CI): an imatrix job, a job array of `--shard auto` tasks and a merge job
//! give the same measurements as one unsharded run, and a shard's peak
//! memory is no larger than the whole run's.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use quantmix::sensitivity::schema::SensitivityTable;

const FAST: &str = "--ctx 32 --chunks 2 --types Q2_K,Q4_K,Q8_0";

fn slurm_available() -> bool {
    let ok = Command::new("sinfo").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status();
    match ok {
        Ok(s) if s.success() => true,
        _ if common::assets_required() => panic!("no Slurm cluster (run deploy/slurm/local-cluster.sh as root)"),
        _ => {
            eprintln!("skipping: no Slurm cluster (deploy/slurm/local-cluster.sh starts one)");
            false
        }
    }
}

/// Run a command with a time limit; its output.
fn run_for(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = Command::new("scancel").args(["--name=qm-imatrix", "--name=qm-sens", "--name=qm-merge"]).status();
            panic!("{cmd:?} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.wait_with_output().unwrap()
}

/// The `peak memory N MiB` a sensitivity run printed.
fn peak_mib(log: &str) -> f64 {
    let i = log.rfind("peak memory ").unwrap_or_else(|| panic!("no peak memory in:\n{log}"));
    log[i + 12..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn job_array_shards_merge_into_the_unsharded_run() {
    if !slurm_available() {
        return;
    }
    let dir = common::tempdir();
    let out = dir.path().join("run");
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm/sensitivity.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env("MODEL", &model)
        .env("OUT", &out)
        .env("SHARDS", "3")
        .env("CPUS", "1")
        .env("MEM", "1G")
        .env("IMATRIX_CHUNKS", "2")
        .env("SENS_ARGS", FAST)
        .env("QUANTMIX", env!("CARGO_BIN_EXE_quantmix"))
        .env("WAIT", "1");
    let o = run_for(cmd, Duration::from_secs(600));
    let logs = |name: &str| std::fs::read_to_string(out.join("logs").join(name)).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}\n{}\nmerge log:\n{}\nshard 1 log:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        logs("merge.log"),
        logs("shard-1.log")
    );
    let merged = SensitivityTable::load(&out.join("sensitivity.json")).unwrap();

    // The same measurement in one process, with the same importance matrix.
    let whole = dir.path().join("whole.json");
    let mut args: Vec<String> = ["sensitivity", model.to_str().unwrap(), "-o", whole.to_str().unwrap(), "--imatrix"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(out.join("sensitivity.imatrix.gguf").to_str().unwrap().to_string());
    args.extend(FAST.split(' ').map(String::from));
    args.extend(["--threads", "1", "--quiet"].map(String::from));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quantmix"));
    cmd.args(&args);
    let o = run_for(cmd, Duration::from_secs(300));
    let whole_log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{whole_log}");
    let whole = SensitivityTable::load(&whole).unwrap();

    assert_eq!(merged.tensors.len(), whole.tensors.len());
    assert!(merged.shard.is_none());
    for (a, b) in merged.tensors.iter().zip(&whole.tensors) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.candidates.len(), b.candidates.len(), "{}", a.name);
        for (c, d) in a.candidates.iter().zip(&b.candidates) {
            assert_eq!((&c.ty, c.bytes), (&d.ty, d.bytes), "{}", a.name);
            assert!(
                (c.kld - d.kld).abs() <= 1e-9 * c.kld.abs().max(1e-12),
                "{} {}: {} vs {}",
                a.name,
                c.ty,
                c.kld,
                d.kld
            );
        }
    }
    // A shard holds the model and its reference pass, like the whole run: no more.
    let whole_peak = peak_mib(&whole_log);
    for i in 1..=3 {
        let p = peak_mib(&logs(&format!("shard-{i}.log")));
        assert!(p <= whole_peak * 1.25 + 16.0, "shard {i}: {p} MiB vs {whole_peak} MiB unsharded");
    }
}
