//! Whether a model that is about to run is copied into memory
//! ([`GgufFile::make_resident`](super::GgufFile::make_resident)) or runs
//! from the memory map of its file.
//!
//! Generating a token streams every weight once; from a map of the page
//! cache each 4 KiB page of weights costs a page-table walk, from anonymous
//! memory in transparent huge pages one walk covers 2 MiB. On the 2-core
//! Intel Xeon of the README's speed table that was worth 2–5% of
//! generation tokens/s (SmolLM2 Q8_0 and the qwen3 Q4_K_M fixture, runs
//! alternated), nothing measurable for prompts (which are compute-bound).
//! llama.cpp's weights run from anonymous memory too wherever it repacks
//! them or is given `--no-mmap`.
//!
//! The cost: the copy is memory the kernel cannot reclaim under pressure,
//! where it can drop a clean mapped page and read it again. So the copy is
//! made only where it pays and fits:
//! - the kernel hands out transparent huge pages (`always` or `madvise` in
//!   `/sys/kernel/mm/transparent_hugepage/enabled`);
//! - the file takes at most half of `MemAvailable` (so two models, or a
//!   model and the f32 copy `sensitivity --exact-activations` makes, still
//!   fit; each later model is judged against what is left);
//! - `QUANTMIX_MMAP=1` is not set (to keep every model mapped).

/// The kernel's transparent-huge-page mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thp {
    Always,
    Madvise,
    Never,
    /// Not Linux, or the setting could not be read.
    Unknown,
}

impl Thp {
    /// Parse `/sys/kernel/mm/transparent_hugepage/enabled`
    /// (`always [madvise] never`: the bracketed word is in force).
    pub fn parse(s: &str) -> Thp {
        let chosen = s.split_whitespace().find(|w| w.starts_with('[') && w.ends_with(']'));
        match chosen {
            Some("[always]") => Thp::Always,
            Some("[madvise]") => Thp::Madvise,
            Some("[never]") => Thp::Never,
            _ => Thp::Unknown,
        }
    }

    /// This host's mode.
    pub fn current() -> Thp {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .map(|s| Thp::parse(&s))
            .unwrap_or(Thp::Unknown)
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// This host's available memory in bytes (Linux; `None` elsewhere).
pub fn mem_available() -> Option<u64> {
    parse_mem_available(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// The rule of the module docs: copy a file of `file_len` bytes?
pub fn worth_copying(file_len: u64, mem_available: Option<u64>, thp: Thp, keep_mapped: bool) -> bool {
    let thp_ok = matches!(thp, Thp::Always | Thp::Madvise);
    let fits = mem_available.is_some_and(|m| file_len <= m / 2);
    cfg!(unix) && !keep_mapped && thp_ok && fits
}

/// [`worth_copying`] on this host, now.
pub fn worth_copying_here(file_len: u64) -> bool {
    let keep_mapped = std::env::var("QUANTMIX_MMAP").is_ok_and(|v| v == "1");
    worth_copying(file_len, mem_available(), Thp::current(), keep_mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thp_modes() {
        assert_eq!(Thp::parse("always [madvise] never\n"), Thp::Madvise);
        assert_eq!(Thp::parse("[always] madvise never\n"), Thp::Always);
        assert_eq!(Thp::parse("always madvise [never]\n"), Thp::Never);
        assert_eq!(Thp::parse("garbage"), Thp::Unknown);
    }

    #[test]
    fn mem_available_in_bytes() {
        let m = "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_mem_available(m), Some(20_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn copies_only_what_fits_with_huge_pages() {
        let gib = 1u64 << 30;
        let avail = Some(20 * gib);
        assert_eq!(worth_copying(4 * gib, avail, Thp::Madvise, false), cfg!(unix));
        assert_eq!(worth_copying(10 * gib, avail, Thp::Always, false), cfg!(unix));
        assert!(!worth_copying(10 * gib + 1, avail, Thp::Madvise, false));
        assert!(!worth_copying(gib, avail, Thp::Never, false));
        assert!(!worth_copying(gib, avail, Thp::Unknown, false));
        assert!(!worth_copying(gib, None, Thp::Madvise, false));
        assert!(!worth_copying(gib, avail, Thp::Madvise, true));
    }
}
