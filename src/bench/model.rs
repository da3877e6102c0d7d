//! Whole-model throughput (`quantmix bench model`): prompt-processing and
//! generation tokens/s of GGUF files with quantmix's forward pass, and
//! optionally llama.cpp's `llama-bench` on the same file with the same
//! thread count, side by side.
//!
//! - Ours is [`crate::eval::run::measure_speed`]: prompt processing is one
//!   batch of `pp_tokens` tokens from an empty cache (logits of the last
//!   token only), generation is `tg_tokens` single tokens from an empty
//!   cache; one warm-up of each, then `reps` timed runs; the median and the
//!   min–max spread are reported. The token ids are a fixed pseudo-random
//!   sequence over the vocabulary (llama-bench also feeds random tokens;
//!   the ids do not change the work done).
//! - Theirs is `llama-bench -m FILE -o json -p PP -n TG -t THREADS -r REPS`
//!   (one warm-up, then `REPS` runs; it reports the mean tokens/s and its
//!   standard deviation, `avg_ts` and `stddev_ts`).
//! - The ratio is ours (median) / theirs (mean): above 1 means quantmix is
//!   faster.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::eval::run::{display_name, measure_speed, Speed, SpeedOptions};
use crate::eval::EvalError;
use crate::model::LlamaModel;
use crate::report::Table;

/// What to measure.
#[derive(Clone, Debug)]
pub struct ModelBenchOptions {
    /// Tokens of the prompt-processing batch (llama-bench `-p`).
    pub pp_tokens: usize,
    /// Generated tokens (llama-bench `-n`).
    pub tg_tokens: usize,
    /// Timed repetitions after one warm-up (llama-bench `-r`).
    pub reps: usize,
    /// Threads, for both (llama-bench `-t`).
    pub threads: usize,
    /// `llama-bench` to compare with, if any.
    pub llama_bench: Option<PathBuf>,
}

/// Errors of `quantmix bench model`.
#[derive(Debug, thiserror::Error)]
pub enum ModelBenchError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },
    #[error("llama-bench not found at {0} (tests/tools/build_llama_cpp.sh builds it)")]
    NotFound(PathBuf),
    #[error("{0} is not a file (expected the llama-bench executable)")]
    NotAFile(PathBuf),
    #[error("could not run {path}: {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("{path} failed on {file} ({status}); its last output:\n{tail}")]
    Failed { path: PathBuf, file: PathBuf, status: String, tail: String },
    #[error("could not parse the output of {path} on {file}: {reason}; the output began with:\n{head}")]
    Parse { path: PathBuf, file: PathBuf, reason: String, head: String },
}

/// One test of llama-bench's `-o json` output (only the fields we use; the
/// others are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LlamaBenchTest {
    pub n_prompt: usize,
    pub n_gen: usize,
    /// Mean tokens/s over the repetitions.
    pub avg_ts: f64,
    /// Standard deviation of the tokens/s.
    pub stddev_ts: f64,
    #[serde(default)]
    pub n_threads: Option<usize>,
    #[serde(default)]
    pub build_commit: Option<String>,
    /// Per-repetition tokens/s.
    #[serde(default)]
    pub samples_ts: Vec<f64>,
}

/// The tests of one llama-bench run, from its `-o json` standard output.
/// Tolerates text before the opening `[` and after the closing `]` (log
/// lines some builds print to stdout).
pub fn parse_llama_bench_json(out: &str) -> Result<Vec<LlamaBenchTest>, String> {
    let whole = serde_json::from_str::<Vec<LlamaBenchTest>>(out.trim());
    let tests = match whole {
        Ok(t) => t,
        Err(e) => match (out.find('['), out.rfind(']')) {
            (Some(a), Some(b)) if a < b => serde_json::from_str::<Vec<LlamaBenchTest>>(&out[a..=b])
                .map_err(|e2| format!("not a JSON array of llama-bench tests ({e2})"))?,
            _ => return Err(format!("no JSON array ({e})")),
        },
    };
    if tests.is_empty() {
        return Err("an empty list of tests".into());
    }
    for t in &tests {
        let ok = t.avg_ts.is_finite() && t.avg_ts > 0.0 && t.stddev_ts.is_finite() && t.stddev_ts >= 0.0;
        if !ok {
            return Err(format!(
                "test pp{} tg{} has avg_ts {} and stddev_ts {} (expected a positive speed)",
                t.n_prompt, t.n_gen, t.avg_ts, t.stddev_ts
            ));
        }
    }
    Ok(tests)
}

/// The prompt-processing (`pp`, `n_gen` 0) and generation (`tg`,
/// `n_prompt` 0) tests of a llama-bench run.
pub fn pick_tests(tests: &[LlamaBenchTest], pp: usize, tg: usize) -> Result<(LlamaBenchTest, LlamaBenchTest), String> {
    let find = |p: usize, g: usize| {
        tests.iter().find(|t| t.n_prompt == p && t.n_gen == g).cloned().ok_or_else(|| {
            let have: Vec<String> = tests.iter().map(|t| format!("pp{} tg{}", t.n_prompt, t.n_gen)).collect();
            format!("no test with n_prompt {p} and n_gen {g} (it reported: {})", have.join(", "))
        })
    };
    Ok((find(pp, 0)?, find(0, tg)?))
}

/// Run `llama_bench` on `file` and return its pp and tg tests.
pub fn run_llama_bench(
    llama_bench: &Path,
    file: &Path,
    opts: &ModelBenchOptions,
) -> Result<(LlamaBenchTest, LlamaBenchTest), ModelBenchError> {
    check_llama_bench(llama_bench)?;
    let out = Command::new(llama_bench)
        .arg("-m")
        .arg(file)
        .args(["-o", "json"])
        .args(["-p", &opts.pp_tokens.to_string()])
        .args(["-n", &opts.tg_tokens.to_string()])
        .args(["-t", &opts.threads.to_string()])
        .args(["-r", &opts.reps.to_string()])
        .output()
        .map_err(|source| ModelBenchError::Spawn { path: llama_bench.to_path_buf(), source })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = if stderr.trim().is_empty() { stdout.as_ref() } else { stderr.as_ref() };
        return Err(ModelBenchError::Failed {
            path: llama_bench.to_path_buf(),
            file: file.to_path_buf(),
            status: out.status.to_string(),
            tail: last_lines(text, 15),
        });
    }
    let parse_err = |reason: String| ModelBenchError::Parse {
        path: llama_bench.to_path_buf(),
        file: file.to_path_buf(),
        reason,
        head: stdout.chars().take(400).collect(),
    };
    let tests = parse_llama_bench_json(&stdout).map_err(parse_err)?;
    pick_tests(&tests, opts.pp_tokens, opts.tg_tokens).map_err(parse_err)
}

/// A clear error when `p` is not there (before any measurement starts).
pub fn check_llama_bench(p: &Path) -> Result<(), ModelBenchError> {
    if !p.exists() {
        return Err(ModelBenchError::NotFound(p.to_path_buf()));
    }
    if !p.is_file() {
        return Err(ModelBenchError::NotAFile(p.to_path_buf()));
    }
    Ok(())
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fixed pseudo-random token sequence over `0..n_vocab`.
fn bench_tokens(n_vocab: usize, n: usize) -> Vec<u32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n_vocab.max(1) as u64) as u32
        })
        .collect()
}

/// Our pp and tg speed of `file` on a pool of `opts.threads` threads.
pub fn measure_ours(file: &Path, opts: &ModelBenchOptions) -> Result<(Speed, Speed), ModelBenchError> {
    let model = LlamaModel::open(file).map_err(EvalError::from)?;
    let tokens = bench_tokens(model.hp.n_vocab, opts.pp_tokens.max(opts.tg_tokens));
    let speed = SpeedOptions { pp_tokens: opts.pp_tokens, tg_tokens: opts.tg_tokens, reps: opts.reps };
    let cancel = crate::job::Cancel::new();
    let ctx = crate::job::Ctx::quiet(&cancel).with_threads(opts.threads);
    let r = ctx
        .install(|| measure_speed(&model, &tokens, None, speed, ctx))
        .map_err(|e| ModelBenchError::Invalid { what: "building the thread pool".into(), msg: e.to_string() })?;
    Ok(r?)
}

/// One line of the report: one test (pp or tg) of one file.
#[derive(Clone, Debug, Serialize)]
pub struct ModelBenchRow {
    pub file: String,
    pub bytes: u64,
    /// `pp512`, `tg128`, … as llama-bench names its tests.
    pub test: String,
    pub n_prompt: usize,
    pub n_gen: usize,
    /// Our median tokens/s and the min–max over the repetitions.
    pub ours_tokens_per_s: f64,
    pub ours_min: f64,
    pub ours_max: f64,
    /// llama-bench's mean tokens/s and standard deviation (null without
    /// `--against`).
    pub llama_bench_tokens_per_s: Option<f64>,
    pub llama_bench_stddev: Option<f64>,
    /// Ours / llama-bench's (above 1: quantmix is faster).
    pub ratio: Option<f64>,
}

/// The results of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ModelBenchReport {
    pub threads: usize,
    pub reps: usize,
    pub pp_tokens: usize,
    pub tg_tokens: usize,
    /// The llama-bench executable compared with.
    pub llama_bench: Option<String>,
    /// Its `build_commit`, when it reported one.
    pub llama_bench_build: Option<String>,
    /// The 1-minute load average when the run started and when it ended
    /// (Linux `/proc/loadavg`), to judge how busy the machine was.
    pub load_average: Option<(f64, f64)>,
    pub rows: Vec<ModelBenchRow>,
}

/// The 1-minute load average (Linux only).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Measure every file: ours, then llama-bench's (when `opts.llama_bench`
/// is set). `progress` is told what starts.
pub fn run_model_bench(
    files: &[PathBuf],
    opts: &ModelBenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<ModelBenchReport, ModelBenchError> {
    if opts.pp_tokens == 0 || opts.tg_tokens == 0 || opts.reps == 0 || opts.threads == 0 {
        return Err(ModelBenchError::Invalid {
            what: "options".into(),
            msg: "--pp, --tg, --reps and --threads must be at least 1".into(),
        });
    }
    if let Some(lb) = &opts.llama_bench {
        check_llama_bench(lb)?;
    }
    for f in files {
        if !f.is_file() {
            return Err(ModelBenchError::Invalid { what: f.display().to_string(), msg: "no such file".into() });
        }
    }
    let load_before = load_average();
    let mut rows = Vec::new();
    let mut build = None;
    for f in files {
        let name = display_name(f);
        progress(&format!("{name}: quantmix pp{} + tg{}", opts.pp_tokens, opts.tg_tokens));
        let (pp, tg) = measure_ours(f, opts)?;
        let theirs = match &opts.llama_bench {
            Some(lb) => {
                progress(&format!("{name}: llama-bench pp{} + tg{}", opts.pp_tokens, opts.tg_tokens));
                let (p, t) = run_llama_bench(lb, f, opts)?;
                if build.is_none() {
                    build = p.build_commit.clone();
                }
                Some((p, t))
            }
            None => None,
        };
        let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let (tp, tt) = theirs.unzip();
        for (ours, their, n_prompt, n_gen) in [(&pp, tp, opts.pp_tokens, 0), (&tg, tt, 0, opts.tg_tokens)] {
            let test = if n_gen == 0 { format!("pp{n_prompt}") } else { format!("tg{n_gen}") };
            rows.push(ModelBenchRow {
                file: f.display().to_string(),
                bytes,
                test,
                n_prompt,
                n_gen,
                ours_tokens_per_s: ours.median,
                ours_min: ours.min,
                ours_max: ours.max,
                llama_bench_tokens_per_s: their.as_ref().map(|t| t.avg_ts),
                llama_bench_stddev: their.as_ref().map(|t| t.stddev_ts),
                ratio: their.as_ref().map(|t| ours.median / t.avg_ts),
            });
        }
    }
    Ok(ModelBenchReport {
        threads: opts.threads,
        reps: opts.reps,
        pp_tokens: opts.pp_tokens,
        tg_tokens: opts.tg_tokens,
        llama_bench: opts.llama_bench.as_ref().map(|p| p.display().to_string()),
        llama_bench_build: build,
        load_average: load_before.zip(load_average()),
        rows,
    })
}

impl ModelBenchReport {
    /// Lines describing the run.
    pub fn header(&self) -> String {
        let mut s = format!(
            "{} thread{}; pp = one {}-token batch, tg = {} single tokens, each from an empty cache; \
             one warm-up, then {} run{}\n",
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.pp_tokens,
            self.tg_tokens,
            self.reps,
            if self.reps == 1 { "" } else { "s" }
        );
        s.push_str("quantmix: median tokens/s (min–max)\n");
        if let Some((a, b)) = self.load_average {
            s.push_str(&format!("load average (1 min): {a:.2} at the start, {b:.2} at the end\n"));
        }
        if let Some(lb) = &self.llama_bench {
            s.push_str(&format!(
                "llama-bench: {lb}{}: mean tokens/s ± standard deviation; ratio = quantmix / llama-bench\n",
                self.llama_bench_build.as_ref().map(|b| format!(" (build {b})")).unwrap_or_default()
            ));
        }
        s
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let against = self.llama_bench.is_some();
        let mut head = vec!["file", "test", "quantmix t/s"];
        if against {
            head.extend(["llama-bench t/s", "ratio"]);
        }
        let mut t = Table::new(&head).left(0).left(1);
        for r in &self.rows {
            let mut cells = vec![
                display_name(Path::new(&r.file)),
                r.test.clone(),
                format!("{:.1} ({:.1}–{:.1})", r.ours_tokens_per_s, r.ours_min, r.ours_max),
            ];
            if against {
                cells.push(match (r.llama_bench_tokens_per_s, r.llama_bench_stddev) {
                    (Some(a), Some(sd)) => format!("{a:.1} ± {sd:.1}"),
                    _ => "-".into(),
                });
                cells.push(r.ratio.map_or("-".into(), |x| format!("{x:.2}")));
            }
            t.row(cells);
        }
        t.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[
  {
    "build_commit": "0c1e570",
    "build_number": 1,
    "model_filename": "m.gguf",
    "n_threads": 2,
    "n_prompt": 512,
    "n_gen": 0,
    "n_depth": 0,
    "avg_ns": 1000,
    "stddev_ns": 10,
    "avg_ts": 512.5,
    "stddev_ts": 3.25,
    "samples_ns": [ 1000, 1000 ],
    "samples_ts": [ 510.0, 515.0 ]
  },
  {
    "build_commit": "0c1e570",
    "n_threads": 2,
    "n_prompt": 0,
    "n_gen": 128,
    "avg_ts": 80.0,
    "stddev_ts": 0.5
  }
]
"#;

    #[test]
    fn parses_llama_bench_json() {
        let t = parse_llama_bench_json(SAMPLE).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].n_prompt, t[0].n_gen, t[0].avg_ts, t[0].stddev_ts), (512, 0, 512.5, 3.25));
        assert_eq!(t[0].samples_ts, [510.0, 515.0]);
        assert_eq!(t[1].build_commit.as_deref(), Some("0c1e570"));
        let (pp, tg) = pick_tests(&t, 512, 128).unwrap();
        assert_eq!((pp.avg_ts, tg.avg_ts), (512.5, 80.0));
        let e = pick_tests(&t, 256, 128).unwrap_err();
        assert!(e.contains("n_prompt 256") && e.contains("pp512 tg0"), "{e}");
    }

    #[test]
    fn tolerates_log_lines_around_the_array() {
        let s = format!("load time: 3 ms\n{SAMPLE}\nbye\n");
        assert_eq!(parse_llama_bench_json(&s).unwrap().len(), 2);
    }

    #[test]
    fn rejects_malformed_output() {
        for bad in [
            "",
            "| model | size |\n| --- | --- |",
            "[]",
            "[{\"n_prompt\": 512, \"n_gen\": 0}]",
            "[{\"n_prompt\": 512, \"n_gen\": 0, \"avg_ts\": 0, \"stddev_ts\": 0}]",
            "{\"n_prompt\": 512}",
        ] {
            assert!(parse_llama_bench_json(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn bench_tokens_are_in_range_and_varied() {
        let t = bench_tokens(1000, 4096);
        assert!(t.iter().all(|&x| x < 1000));
        let distinct: std::collections::HashSet<_> = t.iter().collect();
        assert!(distinct.len() > 900, "{}", distinct.len());
    }
}
