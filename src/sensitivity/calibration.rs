//! Calibration text: what the model reads while `quantmix imatrix` and
//! `quantmix sensitivity` measure activations.
//!
//! The default set ([`Calibration::default_set`]) is the text under
//! `calibration/` in the repository, written for quantmix and embedded in the
//! binary. It is kept strictly apart from the evaluation text
//! (`tests/data/eval.txt`), so quality measured on the latter is never
//! measured on the text the importance statistics were collected from.
//!
//! User files ([`Calibration::load`]) are plain text (the whole file is one
//! text) or, when the name ends in `.jsonl`, one JSON object per line with a
//! string field `text` (blank lines skipped).

use std::path::{Path, PathBuf};

/// The shipped files, in the order they are joined.
const DEFAULT_FILES: &[(&str, &str)] = &[
    ("prose.txt", include_str!("../../calibration/prose.txt")),
    ("dialogue.txt", include_str!("../../calibration/dialogue.txt")),
    ("instructions.txt", include_str!("../../calibration/instructions.txt")),
    ("code.txt", include_str!("../../calibration/code.txt")),
    ("numbers.txt", include_str!("../../calibration/numbers.txt")),
    ("multilingual.txt", include_str!("../../calibration/multilingual.txt")),
];

/// What went wrong reading calibration files.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}:{line}: invalid JSON: {source}")]
    Json { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("{path}:{line}: expected a JSON object with a string field `text`")]
    MissingText { path: PathBuf, line: usize },
    #[error("{path}: contains no text")]
    EmptyFile { path: PathBuf },
    #[error("no calibration text: give at least one file")]
    Empty,
}

/// A calibration set: the files it came from and the texts they hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// One entry per file (the shipped set: `calibration/NAME`; user files:
    /// the path as given).
    pub sources: Vec<String>,
    /// One entry per plain-text file or per JSONL line, in order.
    pub texts: Vec<String>,
}

impl Calibration {
    /// The shipped set, embedded in the binary with `include_str!` (so it
    /// works from any working directory).
    pub fn default_set() -> Calibration {
        Calibration {
            sources: DEFAULT_FILES.iter().map(|(name, _)| format!("calibration/{name}")).collect(),
            texts: DEFAULT_FILES.iter().map(|(_, text)| text.to_string()).collect(),
        }
    }

    /// Plain text files (whole file = one text) or `.jsonl` files (one JSON
    /// object per line with a string `text`; blank lines skipped). Errors
    /// name the file and, for JSONL, the line (1-based).
    pub fn load(paths: &[PathBuf]) -> Result<Calibration, CalibrationError> {
        if paths.is_empty() {
            return Err(CalibrationError::Empty);
        }
        let mut cal = Calibration { sources: Vec::new(), texts: Vec::new() };
        for path in paths {
            let bytes = std::fs::read(path).map_err(|source| CalibrationError::Io { path: path.clone(), source })?;
            let text = String::from_utf8(bytes)
                .map_err(|e| CalibrationError::NotUtf8 { path: path.clone(), offset: e.utf8_error().valid_up_to() })?;
            let before = cal.texts.len();
            if is_jsonl(path) {
                cal.texts.extend(parse_jsonl(path, &text)?);
            } else if !text.trim().is_empty() {
                cal.texts.push(text);
            }
            if cal.texts.len() == before || cal.texts[before..].iter().all(|t| t.trim().is_empty()) {
                return Err(CalibrationError::EmptyFile { path: path.clone() });
            }
            cal.sources.push(path.display().to_string());
        }
        Ok(cal)
    }

    /// [`Calibration::load`] when `paths` is non-empty, else
    /// [`Calibration::default_set`].
    pub fn from_args(paths: &[PathBuf]) -> Result<Calibration, CalibrationError> {
        if paths.is_empty() {
            Ok(Calibration::default_set())
        } else {
            Calibration::load(paths)
        }
    }

    /// All texts joined by a blank line: what gets tokenized as one stream
    /// (as `llama-imatrix` does with its one file).
    pub fn joined(&self) -> String {
        self.texts.join("\n\n")
    }

    /// Total size of the texts in bytes.
    pub fn n_bytes(&self) -> usize {
        self.texts.iter().map(String::len).sum()
    }

    /// Whether this is exactly the shipped set.
    pub fn is_default(&self) -> bool {
        *self == Calibration::default_set()
    }

    /// One line for reports: `default calibration set (6 files, 141 KB)` or
    /// `calibration a.txt, b.jsonl (12 texts, 40 KB)`.
    pub fn describe(&self) -> String {
        let kb = self.n_bytes().div_ceil(1000);
        if self.is_default() {
            format!("default calibration set ({} files, {kb} KB)", self.sources.len())
        } else {
            let n = self.texts.len();
            let texts = if n == 1 { "1 text".to_string() } else { format!("{n} texts") };
            format!("calibration {} ({texts}, {kb} KB)", self.sources.join(", "))
        }
    }
}

fn is_jsonl(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
}

fn parse_jsonl(path: &Path, content: &str) -> Result<Vec<String>, CalibrationError> {
    let mut texts = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|source| CalibrationError::Json {
            path: path.to_path_buf(),
            line: line_no,
            source,
        })?;
        match value.get("text").and_then(|t| t.as_str()) {
            Some(t) => texts.push(t.to_string()),
            None => return Err(CalibrationError::MissingText { path: path.to_path_buf(), line: line_no }),
        }
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn plain_and_jsonl_load_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.txt", "first file\nsecond line\n");
        let b = write(dir.path(), "b.jsonl", "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"id\": 3}\n");
        let cal = Calibration::load(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(cal.texts, vec!["first file\nsecond line\n", "one", "two"]);
        assert_eq!(cal.sources, vec![a.display().to_string(), b.display().to_string()]);
        assert_eq!(cal.joined(), "first file\nsecond line\n\n\none\n\ntwo");
        let d = cal.describe();
        assert!(d.contains("a.txt") && d.contains("b.jsonl") && d.contains("3 texts"), "{d}");
        assert!(!d.contains("default"), "{d}");
    }

    #[test]
    fn bad_jsonl_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "data.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": \"broken\"\n");
        let e = Calibration::load(&[p]).unwrap_err();
        assert!(matches!(e, CalibrationError::Json { line: 3, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("data.jsonl:3:"), "{msg}");
    }

    #[test]
    fn missing_or_non_string_text_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "m.jsonl", "{\"text\": \"ok\"}\n{\"content\": \"no\"}\n");
        let e = Calibration::load(&[p]).unwrap_err();
        assert!(matches!(e, CalibrationError::MissingText { line: 2, .. }), "{e:?}");
        assert!(e.to_string().contains("m.jsonl:2:"), "{e}");
        let p = write(dir.path(), "n.jsonl", "{\"text\": 5}\n");
        assert!(matches!(Calibration::load(&[p]).unwrap_err(), CalibrationError::MissingText { line: 1, .. }));
        let p = write(dir.path(), "s.jsonl", "\"just a string\"\n");
        assert!(matches!(Calibration::load(&[p]).unwrap_err(), CalibrationError::MissingText { line: 1, .. }));
    }

    #[test]
    fn empty_sets_are_errors() {
        assert!(matches!(Calibration::load(&[]), Err(CalibrationError::Empty)));
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "blank.txt", " \n\n");
        let e = Calibration::load(&[p]).unwrap_err();
        assert!(matches!(e, CalibrationError::EmptyFile { .. }) && e.to_string().contains("blank.txt"), "{e:?}");
        let p = write(dir.path(), "blank.jsonl", "\n\n{\"text\": \"\"}\n");
        assert!(matches!(Calibration::load(&[p]).unwrap_err(), CalibrationError::EmptyFile { .. }));
    }

    #[test]
    fn missing_file_and_non_utf8_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt");
        let e = Calibration::load(&[missing]).unwrap_err();
        assert!(matches!(e, CalibrationError::Io { .. }) && e.to_string().contains("nope.txt"), "{e}");
        let p = dir.path().join("bin.txt");
        std::fs::write(&p, b"abc\xffdef").unwrap();
        let e = Calibration::load(&[p]).unwrap_err();
        assert!(matches!(e, CalibrationError::NotUtf8 { offset: 3, .. }), "{e:?}");
    }

    #[test]
    fn default_set_and_from_args() {
        let cal = Calibration::from_args(&[]).unwrap();
        assert_eq!(cal, Calibration::default_set());
        assert_eq!(cal.sources.len(), DEFAULT_FILES.len());
        assert!(cal.texts.iter().all(|t| t.len() > 1000));
        assert!(cal.describe().starts_with("default calibration set (6 files, "), "{}", cal.describe());
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "mine.txt", "hello");
        let mine = Calibration::from_args(&[p]).unwrap();
        assert_eq!(mine.texts, vec!["hello"]);
        assert_eq!(mine.describe(), format!("calibration {} (1 text, 1 KB)", mine.sources[0]));
    }
}
