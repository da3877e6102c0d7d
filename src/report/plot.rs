//! Pictures with plotters: one setup for every chart quantmix draws.
//!
//! - Fonts: DejaVu Sans is embedded in the binary (`DejaVuSans.ttf`, licence
//!   in `DejaVuSans.LICENSE` beside it) and registered with plotters'
//!   `ab_glyph` text renderer as the `sans-serif` family, so PNG text renders
//!   on machines without system fonts. [`init_fonts`] does it once; every
//!   writer here calls it.
//! - Colours: [`palette`] (categorical, colour-blind friendly), [`heat`]
//!   (sequential 0..1 ramp), and the neutral [`INK`], [`GRID`], [`FRONT`].
//! - Output: a [`Figure`] draws itself on any plotters backend;
//!   [`write_figure`] renders it to `OUT.svg` and `OUT.png`, each written
//!   atomically (temporary file in the same directory, then rename).
//! - [`Scatter`]: labelled points with the Pareto front (smaller x and
//!   smaller y are better) drawn through them; labels are placed around
//!   their points so that they do not overlap ([`place_labels`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::fsutil::AtomicFile;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// Errors of the picture writers.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be parsed (should not happen).
    #[error("the embedded font cannot be registered")]
    Font,
    /// plotters failed while drawing.
    #[error("drawing {what}: {msg}")]
    Draw { what: String, msg: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// The font family charts use (registered by [`init_fonts`]).
pub const FONT: &str = "sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("DejaVuSans.ttf");

/// Register the embedded DejaVu Sans as `sans-serif` (normal, bold, italic
/// all map to it). Idempotent and thread-safe.
pub fn init_fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique]
            .into_iter()
            .all(|s| register_font(FONT, s, FONT_BYTES).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

/// Text and axes.
pub const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
/// Light grid lines.
pub const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
/// The Pareto front line.
pub const FRONT: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Categorical colours (Okabe–Ito, distinguishable with colour-blindness);
/// `i` wraps around.
pub fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(0x00, 0x72, 0xb2),
        RGBColor(0xe6, 0x9f, 0x00),
        RGBColor(0x00, 0x9e, 0x73),
        RGBColor(0xcc, 0x79, 0xa7),
        RGBColor(0x56, 0xb4, 0xe9),
        RGBColor(0xd5, 0x5e, 0x00),
        RGBColor(0xf0, 0xe4, 0x42),
        RGBColor(0x00, 0x00, 0x00),
    ];
    P[i % P.len()]
}

/// A sequential colour for `v` in 0..=1 (clamped; NaN gives the low end):
/// dark blue → teal → green → yellow, piecewise linear through viridis-like
/// stops. For heatmaps.
pub fn heat(v: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] =
        [(0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x90, 0x8c), (0x5d, 0xc8, 0x63), (0xfd, 0xe7, 0x25)];
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let p = v * (STOPS.len() - 1) as f64;
    let i = (p.floor() as usize).min(STOPS.len() - 2);
    let f = p - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A text style in the registered font.
pub fn text(size: f64, colour: RGBColor) -> TextStyle<'static> {
    let mut t = TextStyle::from((FONT, size).into_font());
    t.color = colour.to_backend_color();
    t
}

/// Turn a plotters error into a [`PlotError`] naming what was drawn.
pub fn draw_err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> PlotError + '_ {
    move |e| PlotError::Draw { what: what.to_string(), msg: e.to_string() }
}

/// Something that can draw itself on any plotters backend.
pub trait Figure {
    /// Pixel size (width, height).
    fn size(&self) -> (u32, u32);
    /// Draw on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;
}

/// The SVG and PNG paths for `--plot OUT`: `OUT` with its extension
/// replaced by `svg` and `png` (`plot.svg` → `plot.svg`, `plot.png`).
pub fn output_paths(out: &Path) -> (PathBuf, PathBuf) {
    (out.with_extension("svg"), out.with_extension("png"))
}

/// Render `fig` as an SVG document.
pub fn render_svg(fig: &impl Figure) -> Result<String, PlotError> {
    init_fonts()?;
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, fig.size()).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err("the SVG background"))?;
        fig.draw(&root)?;
        root.present().map_err(draw_err("the SVG"))?;
    }
    Ok(s)
}

/// Write `fig` to `svg` and `png` (committed together).
pub fn write_svg_png(fig: &impl Figure, svg: &Path, png: &Path) -> Result<(), PlotError> {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> PlotError + '_ {
        move |source| PlotError::Io { path: path.to_path_buf(), source }
    }
    let doc = render_svg(fig)?;
    let mut svg_file = AtomicFile::create(svg).map_err(io(svg))?;
    std::io::Write::write_all(&mut svg_file, doc.as_bytes()).map_err(io(svg))?;
    // plotters' bitmap backend encodes by file extension, which the
    // temporary file keeps (`….tmp.png`).
    let png_file = AtomicFile::create(png).map_err(io(png))?;
    {
        let root = BitMapBackend::new(png_file.temp_path(), fig.size()).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err("the PNG background"))?;
        fig.draw(&root)?;
        root.present().map_err(draw_err("the PNG"))?;
    }
    crate::fsutil::commit_all(vec![svg_file, png_file]).map_err(io(svg))
}

/// Write `fig` to `OUT.svg` and `OUT.png` ([`output_paths`]); returns both paths.
pub fn write_figure(fig: &impl Figure, out: &Path) -> Result<(PathBuf, PathBuf), PlotError> {
    let (svg, png) = output_paths(out);
    write_svg_png(fig, &svg, &png)?;
    Ok((svg, png))
}

/// An axis tick value with two significant digits and no trailing zeros
/// (`0.009000000001` → `0.009`, `120` → `120`).
pub fn tick_label(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (1 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Indices of the Pareto-optimal points when smaller `x` and smaller `y`
/// are both better, sorted by increasing `x` (and so decreasing `y`). A
/// point is on the front when no other point is at least as good in both
/// and better in one. Non-finite points are ignored.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> =
        (0..points.len()).filter(|&i| points[i].0.is_finite() && points[i].1.is_finite()).collect();
    idx.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0).then(points[a].1.total_cmp(&points[b].1)));
    let mut front = Vec::new();
    let mut best_y = f64::INFINITY;
    for i in idx {
        if points[i].1 < best_y {
            best_y = points[i].1;
            front.push(i);
        }
    }
    front
}

/// Pixel rectangle `(left, top, right, bottom)`.
pub type Rect = (i32, i32, i32, i32);

fn overlap(a: Rect, b: Rect) -> i64 {
    let w = (a.2.min(b.2) - a.0.max(b.0)).max(0) as i64;
    let h = (a.3.min(b.3) - a.1.max(b.1)).max(0) as i64;
    w * h
}

/// Where each point's label block goes: the offset of its top-left corner
/// from the point, in pixels. Points are taken in order; each label takes
/// the first of six places (right of the point, then above-right,
/// below-right, left, above-left, below-left) that overlaps no label placed
/// before it, no point and nothing outside `area`, or else the place with
/// the least overlap. `sizes` are the blocks' (width, height).
pub fn place_labels(points: &[(i32, i32)], sizes: &[(i32, i32)], area: Rect) -> Vec<(i32, i32)> {
    const GAP: i32 = 9;
    const R: i32 = 7;
    let dots: Vec<Rect> = points.iter().map(|&(x, y)| (x - R, y - R, x + R, y + R)).collect();
    let mut placed: Vec<Rect> = Vec::with_capacity(points.len());
    let mut out = Vec::with_capacity(points.len());
    for (k, (&(x, y), &(w, h))) in points.iter().zip(sizes).enumerate() {
        let right = GAP;
        let left = -GAP - w;
        let candidates = [(right, -14), (right, -h - 6), (right, 6), (left, -14), (left, -h - 6), (left, 6)];
        let cost = |&(dx, dy): &(i32, i32)| -> i64 {
            let r = (x + dx, y + dy, x + dx + w, y + dy + h);
            let inside = overlap(r, area);
            let outside = (w as i64 * h as i64 - inside) * 4;
            let labels: i64 = placed.iter().map(|&p| overlap(r, p)).sum();
            let dots: i64 = dots.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, &d)| overlap(r, d)).sum();
            outside + labels + dots
        };
        let best = candidates
            .iter()
            .copied()
            .find(|c| cost(c) == 0)
            .unwrap_or_else(|| *candidates.iter().min_by_key(|c| cost(c)).expect("six candidates"));
        placed.push((x + best.0, y + best.1, x + best.0 + w, y + best.1 + h));
        out.push(best);
    }
    out
}

/// One labelled point of a [`Scatter`].
#[derive(Clone, Debug)]
pub struct ScatterPoint {
    /// First label line (e.g. the file name).
    pub label: String,
    /// Second label line (e.g. the throughput); may be empty.
    pub detail: String,
    pub x: f64,
    pub y: f64,
    /// The point everything is measured against (drawn hollow, never part
    /// of the Pareto front: it is best at its size by construction).
    pub reference: bool,
}

/// A scatter plot with labelled points (one filled circle each, the only
/// circles drawn) and the Pareto front as a dashed line.
#[derive(Clone, Debug)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
    /// Logarithmic y axis (whole decades); points with y ≤ 0 are drawn just
    /// above the bottom edge.
    pub log_y: bool,
    pub width: u32,
    pub height: u32,
}

impl Scatter {
    fn y_range(&self) -> (f64, f64) {
        let ys: Vec<f64> = self.points.iter().map(|p| p.y).filter(|y| y.is_finite()).collect();
        if self.log_y {
            let pos: Vec<f64> = ys.iter().copied().filter(|&y| y > 0.0).collect();
            let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = pos.iter().copied().fold(0.0, f64::max);
            if !lo.is_finite() {
                return (1e-3, 1.0);
            }
            let has_zero = ys.iter().any(|&y| y <= 0.0);
            // Whole decades, with room below the smallest point for the
            // points at zero.
            let lo = 10f64.powf((lo / if has_zero { 3.0 } else { 1.5 }).log10().floor());
            let hi = 10f64.powf((hi * 1.5).log10().ceil());
            // A little beyond the decades so that both end ticks are labelled,
            // and below the lowest one a band for the points at zero.
            (if has_zero { lo * 0.4 } else { lo * 0.8 }, hi.max(lo * 10.0) * 1.25)
        } else {
            let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !lo.is_finite() {
                return (0.0, 1.0);
            }
            let pad = ((hi - lo) * 0.12).max(hi.abs() * 0.02).max(1e-9);
            (lo - pad, hi + pad)
        }
    }

    fn x_range(&self) -> (f64, f64) {
        let xs = self.points.iter().map(|p| p.x).filter(|x| x.is_finite());
        let lo = xs.clone().fold(f64::INFINITY, f64::min);
        let hi = xs.fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
        // Room on the right for the labels of the largest files.
        ((lo - pad).max(0.0), hi + 3.0 * pad)
    }

    /// The y value at which a point is drawn (zeros on the bottom edge of
    /// a log axis).
    fn shown_y(&self, y: f64, y_lo: f64) -> f64 {
        if self.log_y && y <= 0.0 {
            y_lo / 0.6
        } else {
            y
        }
    }

    fn draw_on<DB: DrawingBackend, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        y_spec: Y,
        y_lo: f64,
    ) -> Result<(), PlotError>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let (x0, x1) = self.x_range();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, text(20.0, INK))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y_spec)
            .map_err(draw_err("the chart axes"))?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .axis_desc_style(text(15.0, INK))
            .label_style(text(12.0, INK))
            .max_light_lines(3)
            .light_line_style(GRID.mix(0.4))
            .bold_line_style(GRID)
            .axis_style(INK)
            .draw()
            .map_err(draw_err("the chart grid"))?;

        let pts: Vec<(f64, f64)> =
            self.points.iter().map(|p| if p.reference { (f64::NAN, f64::NAN) } else { (p.x, p.y) }).collect();
        let front = pareto_front(&pts);
        if front.len() > 1 {
            let line: Vec<(f64, f64)> = front.iter().map(|&i| (pts[i].0, self.shown_y(pts[i].1, y_lo))).collect();
            chart
                .draw_series(DashedLineSeries::new(line, 8, 5, FRONT.stroke_width(2)))
                .map_err(draw_err("the Pareto front"))?
                .label("Pareto front")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], FRONT.stroke_width(2)));
        }
        let shown: Vec<usize> =
            (0..self.points.len()).filter(|&i| self.points[i].x.is_finite() && self.points[i].y.is_finite()).collect();
        let at = |i: usize| (self.points[i].x, self.shown_y(self.points[i].y, y_lo));
        let pixels: Vec<(i32, i32)> = shown.iter().map(|&i| chart.backend_coord(&at(i))).collect();
        let sizes: Vec<(i32, i32)> = shown
            .iter()
            .map(|&i| {
                let p = &self.points[i];
                let w = |t: &str, size: f64| {
                    root.estimate_text_size(t, &text(size, INK)).map_or(7 * t.chars().count() as i32, |s| s.0 as i32)
                };
                (w(&p.label, 12.0).max(w(&p.detail, 11.0)), if p.detail.is_empty() { 14 } else { 28 })
            })
            .collect();
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let offsets = place_labels(&pixels, &sizes, (xr.start, yr.start, xr.end, yr.end));
        for (k, &i) in shown.iter().enumerate() {
            let p = &self.points[i];
            let colour = palette(i);
            let marker = if p.reference {
                Circle::new((0, 0), 6, colour.stroke_width(2))
            } else {
                Circle::new((0, 0), if front.contains(&i) { 6 } else { 5 }, colour.filled())
            };
            let (dx, dy) = offsets[k];
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(at(i))
                        + marker
                        + Text::new(p.label.clone(), (dx, dy), text(12.0, INK))
                        + Text::new(p.detail.clone(), (dx, dy + 14), text(11.0, RGBColor(0x66, 0x66, 0x66))),
                ))
                .map_err(draw_err("a point"))?;
        }
        if front.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(text(12.0, INK))
                .background_style(WHITE.mix(0.85))
                .border_style(GRID)
                .draw()
                .map_err(draw_err("the legend"))?;
        }
        Ok(())
    }
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        if self.points.is_empty() {
            return Err(PlotError::Invalid("a scatter plot needs at least one point".into()));
        }
        let (y0, y1) = self.y_range();
        if self.log_y {
            self.draw_on(root, (y0..y1).log_scale(), y0)
        } else {
            self.draw_on(root, y0..y1, y0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        let pts = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (2.5, 3.0), (f64::NAN, 0.0)];
        assert_eq!(pareto_front(&pts), vec![0, 1, 3]);
        assert_eq!(pareto_front(&[]), Vec::<usize>::new());
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.009000000000000001), "0.009");
        assert_eq!(tick_label(0.0015), "0.0015");
        assert_eq!(tick_label(120.0), "120");
        assert_eq!(tick_label(95.5), "96");
        assert_eq!(tick_label(2.5), "2.5");
    }

    #[test]
    fn heat_ramps_between_ends() {
        assert_eq!(heat(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(heat(1.0), RGBColor(0xfd, 0xe7, 0x25));
        assert_eq!(heat(2.0), heat(1.0));
        assert_eq!(heat(f64::NAN), heat(0.0));
    }

    fn scatter(log_y: bool) -> Scatter {
        Scatter {
            title: "t".into(),
            x_label: "size".into(),
            y_label: "kld".into(),
            points: vec![
                ScatterPoint { label: "a.gguf".into(), detail: "10 tok/s".into(), x: 100.0, y: 0.0, reference: true },
                ScatterPoint { label: "b.gguf".into(), detail: "20 tok/s".into(), x: 50.0, y: 0.1, reference: false },
                ScatterPoint { label: "c.gguf".into(), detail: "".into(), x: 70.0, y: 0.2, reference: false },
            ],
            log_y,
            width: 640,
            height: 420,
        }
    }

    #[test]
    fn labels_avoid_each_other_and_the_edges() {
        let area = (0, 0, 400, 300);
        // Two points close together: the second label moves off the first.
        let pts = [(100, 100), (105, 108)];
        let o = place_labels(&pts, &[(80, 28), (80, 28)], area);
        let r = |(x, y): (i32, i32), (dx, dy): (i32, i32)| (x + dx, y + dy, x + dx + 80, y + dy + 28);
        let (a, b) = (r(pts[0], o[0]), r(pts[1], o[1]));
        assert_eq!(overlap(a, b), 0, "{o:?}");
        for (rect, other) in [(a, pts[1]), (b, pts[0])] {
            assert_eq!(overlap(rect, (other.0 - 5, other.1 - 5, other.0 + 5, other.1 + 5)), 0, "{o:?}");
        }
        // A lone point keeps the default place, right of it.
        assert_eq!(place_labels(&[(100, 100)], &[(80, 28)], area), [(9, -14)]);
        // A point at the right edge gets its label on the left.
        let o = place_labels(&[(390, 150)], &[(80, 28)], area);
        assert!(o[0].0 < 0, "{o:?}");
        // Crowded: still one of the six places, the least-overlapping one.
        let pts: Vec<(i32, i32)> = (0..8).map(|i| (200 + i, 150)).collect();
        let o = place_labels(&pts, &[(80, 28); 8], area);
        assert_eq!(o.len(), 8);
    }

    #[test]
    fn svg_and_png_are_written() {
        let dir = tempfile::tempdir().unwrap();
        for log_y in [false, true] {
            let (svg, png) = write_figure(&scatter(log_y), &dir.path().join("plot.svg")).unwrap();
            let s = std::fs::read_to_string(&svg).unwrap();
            assert!(s.starts_with("<svg"), "{}", &s[..40.min(s.len())]);
            assert_eq!(s.matches("<circle").count(), 3);
            assert!(s.contains("b.gguf") && s.contains("20 tok/s"));
            let p = std::fs::read(&png).unwrap();
            assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        }
        // Only the two outputs are left (temporary files renamed).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
