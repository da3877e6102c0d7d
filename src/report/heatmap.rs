//! A heatmap: rows × columns of values on a logarithmic colour scale, with
//! a colour bar. `quantmix sensitivity` draws layers × roles with the damage
//! per bit saved.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{draw_err, heat, text, tick_label, Figure, PlotError, GRID, INK};

/// Cells without a value are drawn in this grey.
const EMPTY: RGBColor = RGBColor(0xee, 0xee, 0xee);

pub struct Heatmap {
    pub title: String,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    /// `values[row][col]`; `None` or a non-positive value: no cell colour.
    pub values: Vec<Vec<Option<f64>>>,
    /// What the colour means (shown by the colour bar).
    pub value_label: String,
}

impl Heatmap {
    /// log10 range of the positive values.
    fn range(&self) -> Option<(f64, f64)> {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for v in self.values.iter().flatten().flatten() {
            if *v > 0.0 && v.is_finite() {
                lo = lo.min(v.log10());
                hi = hi.max(v.log10());
            }
        }
        if !lo.is_finite() {
            return None;
        }
        if hi - lo < 1e-9 {
            hi = lo + 1.0;
        }
        Some((lo, hi))
    }

    /// The colour of a value (`None`: empty cell).
    pub fn colour(&self, v: Option<f64>) -> RGBColor {
        match (v, self.range()) {
            (Some(v), Some((lo, hi))) if v > 0.0 && v.is_finite() => heat((v.log10() - lo) / (hi - lo)),
            _ => EMPTY,
        }
    }
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        let w = 220 + 90 * self.col_labels.len() as u32 + 150;
        let h = 110 + 18 * self.row_labels.len() as u32 + 40;
        (w.max(500), h.max(300))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let (nr, nc) = (self.row_labels.len(), self.col_labels.len());
        if nr == 0 || nc == 0 || self.values.len() != nr || self.values.iter().any(|r| r.len() != nc) {
            return Err(PlotError::Invalid("a heatmap needs a full rows × columns table".into()));
        }
        let (w, _) = self.size();
        let (main, bar) = root.split_horizontally(w - 150);
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, text(18.0, INK))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(130)
            .build_cartesian_2d(0..nc, 0..nr)
            .map_err(draw_err("the heatmap axes"))?;
        let cols = self.col_labels.clone();
        let rows = self.row_labels.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc + 1)
            .y_labels(nr + 1)
            .x_label_formatter(&|i| cols.get(*i).cloned().unwrap_or_default())
            .y_label_formatter(&|i| rows.get(nr.saturating_sub(1 + *i)).cloned().unwrap_or_default())
            .label_style(text(11.0, INK))
            .axis_style(INK)
            .x_label_offset(45)
            .y_label_offset(-9)
            .draw()
            .map_err(draw_err("the heatmap labels"))?;
        let mut cells = Vec::with_capacity(nr * nc);
        for (r, row) in self.values.iter().enumerate() {
            let y = nr - 1 - r;
            for (c, v) in row.iter().enumerate() {
                cells.push(Rectangle::new([(c, y), (c + 1, y + 1)], self.colour(*v).filled()));
                cells.push(Rectangle::new([(c, y), (c + 1, y + 1)], WHITE.stroke_width(1)));
            }
        }
        chart.draw_series(cells).map_err(draw_err("the heatmap cells"))?;

        // Colour bar (log scale).
        let Some((lo, hi)) = self.range() else {
            return Ok(());
        };
        let steps = 50;
        let mut bar_chart = ChartBuilder::on(&bar)
            .margin_top(60)
            .margin_bottom(50)
            .margin_right(10)
            .y_label_area_size(70)
            .caption(&self.value_label, text(11.0, INK))
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(draw_err("the colour bar"))?;
        bar_chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(5)
            .y_label_formatter(&|v| tick_label(10f64.powf(*v)))
            .label_style(text(11.0, INK))
            .axis_style(GRID)
            .draw()
            .map_err(draw_err("the colour bar labels"))?;
        let step = (hi - lo) / steps as f64;
        bar_chart
            .draw_series((0..steps).map(|i| {
                let y0 = lo + step * i as f64;
                Rectangle::new([(0.0, y0), (1.0, y0 + step)], heat((i as f64 + 0.5) / steps as f64).filled())
            }))
            .map_err(draw_err("the colour bar"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Heatmap {
        Heatmap {
            title: "t".into(),
            row_labels: vec!["0".into(), "1".into()],
            col_labels: vec!["a".into(), "b".into()],
            values: vec![vec![Some(1e-6), Some(1e-3)], vec![None, Some(1e-4)]],
            value_label: "v".into(),
        }
    }

    #[test]
    fn colours_span_the_log_range() {
        let m = map();
        assert_eq!(m.colour(Some(1e-6)), heat(0.0));
        assert_eq!(m.colour(Some(1e-3)), heat(1.0));
        assert_eq!(m.colour(None), EMPTY);
        assert_eq!(m.colour(Some(0.0)), EMPTY);
    }

    #[test]
    fn svg_has_every_cell() {
        let svg = super::super::plot::render_svg(&map()).unwrap();
        assert!(svg.contains("<svg"));
        // 4 cells, each filled and outlined, plus the colour bar.
        assert!(svg.matches("<rect").count() >= 8 + 50);
    }
}
