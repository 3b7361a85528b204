//! SVG charts for the benchmark pages, drawn with plotters' SVG backend (text
//! becomes `<text>` elements, so no font files are needed).

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;

/// One bar per category, or one line.
pub struct Series {
    pub label: String,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(label: &str, values: Vec<f64>) -> Series {
        Series {
            label: label.to_owned(),
            values,
        }
    }
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
];

fn error(error: impl std::fmt::Display) -> String {
    format!("drawing a chart: {error}")
}

/// Draws the legend in the upper right corner and writes the file.
fn legend_and_save<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    root: &DrawingArea<SVGBackend<'a>, Shift>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(error)?;
    root.present().map_err(error)
}

/// A bar chart with one group of bars per category (server), one bar per series.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[&str],
    series: &[Series],
) -> Result<(), String> {
    let per_group = series.len() as i32 + 1; // one empty slot between groups
    let slots = categories.len() as i32 * per_group;
    let top = series
        .iter()
        .flat_map(|series| series.values.iter().copied())
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.25;
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((0..slots).into_segmented(), 0.0..top)
        .map_err(error)?;
    let middle = (per_group - 1) / 2;
    let names: Vec<String> = categories.iter().map(|name| (*name).to_owned()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(slots as usize + 1)
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(slot) if slot % per_group == middle => names
                .get((slot / per_group) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_label)
        .draw()
        .map_err(error)?;
    for (index, series) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        chart
            // A value that was not measured (NaN) has no bar.
            .draw_series(
                series
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(_, value)| value.is_finite())
                    .map(|(group, value)| {
                        let slot = group as i32 * per_group + index as i32;
                        let mut bar = Rectangle::new(
                            [
                                (SegmentValue::Exact(slot), 0.0),
                                (SegmentValue::Exact(slot + 1), *value),
                            ],
                            color.filled(),
                        );
                        bar.set_margin(0, 0, 2, 2);
                        bar
                    }),
            )
            .map_err(error)?
            .label(series.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    legend_and_save(&mut chart, &root)
}

/// Lines over a logarithmic x axis (sizes), one per series of (x, y) points.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let points = series.iter().flat_map(|(_, points)| points.iter().copied());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0_f64);
    for (x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if x_min >= x_max {
        (x_min, x_max) = (1.0, 2.0);
    }
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..(y_max * 1.25).max(1.0))
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(error)?;
    for (index, (label, points)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(error)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|point| Circle::new(*point, 3, color.filled())),
            )
            .map_err(error)?;
    }
    legend_and_save(&mut chart, &root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(name: &str, draw: impl FnOnce(&Path) -> Result<(), String>) -> String {
        let path =
            std::env::temp_dir().join(format!("wsse-chart-{}-{name}.svg", std::process::id()));
        draw(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        svg
    }

    #[test]
    fn bars_and_lines_are_svg_with_their_title_and_legend() {
        let bars = drawn("bars", |path| {
            grouped_bars(
                path,
                "Bars title",
                "ms",
                &["axum", "scratch"],
                &[
                    Series::new("WebSocket", vec![1.0, 2.0]),
                    Series::new("SSE", vec![3.0, 0.5]),
                ],
            )
        });
        let lines = drawn("lines", |path| {
            lines(
                path,
                "Lines title",
                "bytes",
                "overhead",
                &[("ws", vec![(16.0, 2.0), (65536.0, 10.0)])],
            )
        });
        for (svg, texts) in [
            (
                &bars,
                ["Bars title", "WebSocket", "SSE", "scratch"].as_slice(),
            ),
            (&lines, ["Lines title", "ws", "bytes"].as_slice()),
        ] {
            assert!(svg.starts_with("<svg"), "{svg}");
            for text in texts {
                assert!(
                    svg.contains(&format!(">\n{text}\n</text>")),
                    "{text} missing in {svg}"
                );
            }
        }
    }
}
