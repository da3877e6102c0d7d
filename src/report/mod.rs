//! Human-readable reports: aligned text tables ([`Table`]) and pictures
//! ([`plot`]: SVG/PNG charts with an embedded font).

pub mod heatmap;
pub mod plot;

/// A text table with a header row; columns are right-aligned except those
/// listed as left-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: Vec<bool>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            left: vec![false; header.len()],
        }
    }

    /// Left-align column `i` (names, types).
    pub fn left(mut self, i: usize) -> Table {
        if let Some(l) = self.left.get_mut(i) {
            *l = true;
        }
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table with its header row and a rule under it.
    pub fn render(&self) -> String {
        self.render_inner(true)
    }

    /// Only the rows (aligned as if the header were there): for key/value
    /// summaries.
    pub fn render_rows(&self) -> String {
        self.render_inner(false)
    }

    fn render_inner(&self, header: bool) -> String {
        let n = self.header.len();
        let mut w = vec![0usize; n];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |r: &Vec<String>, out: &mut String| {
            let cells: Vec<String> = (0..n)
                .map(|i| {
                    let c = r.get(i).map(String::as_str).unwrap_or("");
                    if self.left[i] {
                        format!("{c:<width$}", width = w[i])
                    } else {
                        format!("{c:>width$}", width = w[i])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        };
        if header {
            line(&self.header, &mut out);
            out.push_str(&w.iter().map(|&k| "-".repeat(k)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }
}

/// `1234567` → `1.18 MiB`.
pub fn human_bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&["name", "bytes"]).left(0);
        t.row(vec!["a".into(), "10".into()]);
        t.row(vec!["long".into(), "2".into()]);
        assert_eq!(t.render(), "name  bytes\n----  -----\na        10\nlong      2\n");
        assert_eq!(t.render_rows(), "a        10\nlong      2\n");
        assert_eq!(human_bytes(1536), "1.50 KiB");
    }
}
