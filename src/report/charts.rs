//! The report's charts as SVG text (plotters' SVG backend; labels are `<text>` elements, so
//! no font files are needed and the page stays self-contained).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::ReportError;

const SIZE: (u32, u32) = (350, 230);
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];
/// Longer curves are thinned to about this many points (every k-th step).
const MAX_POINTS: usize = 1000;

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One named line.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

fn chart_error(title: &str) -> impl Fn(&dyn std::fmt::Display) -> ReportError + '_ {
    move |e| ReportError::Chart {
        title: title.into(),
        message: e.to_string(),
    }
}

/// `lo..hi` widened so that a flat series still has a visible range, with a margin.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return lo - pad..hi + pad;
    }
    let pad = (hi - lo) * 0.05;
    lo - pad..hi + pad
}

/// Lines over a shared x axis; NaN points are left out.
pub(crate) fn line_chart(
    title: &str,
    x_label: &str,
    series: &[Series],
) -> Result<String, ReportError> {
    let err = chart_error(title);
    // Finite points first, then thinned to about MAX_POINTS, always keeping the last.
    let finite = |s: &Series| -> Vec<(f64, f64)> {
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let step = points.len().div_ceil(MAX_POINTS).max(1);
        let mut thinned: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
        if let (Some(&last), Some(&kept)) = (points.last(), thinned.last())
            && last != kept
        {
            thinned.push(last);
        }
        thinned
    };
    let lines: Vec<Vec<(f64, f64)>> = series.iter().map(finite).collect();
    let all = || lines.iter().flatten();
    let (x_lo, x_hi) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y_lo, y_hi) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x_lo > x_hi {
        return Err(err(&"no finite values to plot"));
    }
    svg_chart(
        title,
        padded(x_lo, x_hi),
        padded(y_lo, y_hi),
        series.len() > 1,
        |chart| {
            chart
                .configure_mesh()
                .x_desc(x_label)
                .x_labels(5)
                .y_labels(6)
                .x_label_formatter(&|v| format_tick(*v))
                .y_label_formatter(&|v| format_tick(*v))
                .light_line_style(RGBColor(238, 238, 238))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, (s, points)) in series.iter().zip(lines).enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(s.name)
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
            }
            Ok(())
        },
    )
}

/// Grouped bars: one group per category, one bar per series.
pub(crate) fn bar_chart(
    title: &str,
    x_label: &str,
    categories: &[String],
    series: &[(&str, Vec<f64>)],
) -> Result<String, ReportError> {
    let err = chart_error(title);
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let n = categories.len().max(1) as f64;
    let label = |x: &f64| {
        let i = x.floor() as usize;
        let centred = (x - x.floor() - 0.5).abs() < 1e-6;
        categories
            .get(i)
            .filter(|_| centred)
            .cloned()
            .unwrap_or_default()
    };
    svg_chart(title, 0.0..n, 0.0..(top * 1.1).max(1.0), true, |chart| {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .x_labels(categories.len() * 2 + 1)
            .x_label_formatter(&label)
            .y_labels(6)
            .y_label_formatter(&|v| format_tick(*v))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| err(&e))?;
        let width = 0.8 / series.len().max(1) as f64;
        for (k, (name, values)) in series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let bars = values.iter().enumerate().map(move |(i, &v)| {
                let x = i as f64 + 0.1 + k as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, v)], colour.filled())
            });
            chart
                .draw_series(bars)
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        Ok(())
    })
}

/// The frame every chart shares — white ground, caption, axes over `x` × `y` — filled by
/// `draw`, with the series legend when `legend`; the SVG text.
fn svg_chart(
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    legend: bool,
    draw: impl FnOnce(&mut Chart) -> Result<(), ReportError>,
) -> Result<String, ReportError> {
    let err = chart_error(title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(58)
            .build_cartesian_2d(x, y)
            .map_err(|e| err(&e))?;
        draw(&mut chart)?;
        if legend {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// A tick label that stays short for learning rates (2e-5) and losses (0.153) alike.
fn format_tick(v: f64) -> String {
    let a = v.abs();
    // A tick at zero computed in floating point (−8.5e-22) is zero.
    if a < 1e-15 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_is_svg_with_its_title_and_legend() {
        let svg = line_chart(
            "loss",
            "step",
            &[
                Series {
                    name: "loss_rl",
                    points: vec![(1.0, 0.5), (2.0, f64::NAN), (3.0, 0.25)],
                },
                Series {
                    name: "loss_reg",
                    points: vec![(1.0, 1.0), (3.0, 1.0)],
                },
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        for text in ["loss", "loss_rl", "loss_reg", "step", "polyline"] {
            assert!(svg.contains(text), "missing {text}");
        }
        roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert!(line_chart("empty", "step", &[]).is_err());
        let all_nan = Series {
            name: "x",
            points: vec![(1.0, f64::NAN)],
        };
        assert!(line_chart("nan", "step", &[all_nan]).is_err());
    }

    #[test]
    fn a_long_sparse_curve_keeps_its_points_and_its_end() {
        // Logged every 7th step over 10 000 steps: thinning must not drop them all.
        let points = (1..=10_000)
            .map(|i| (i as f64, if i % 7 == 0 { 1.0 / i as f64 } else { f64::NAN }))
            .collect();
        let svg = line_chart(
            "sparse",
            "step",
            &[Series {
                name: "val",
                points,
            }],
        )
        .unwrap();
        // The longest polyline is the curve (axes and ticks are two-point lines).
        let n = svg
            .split("<polyline")
            .skip(1)
            .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
            .map(|points| points.split_whitespace().count())
            .max()
            .expect("a line is drawn");
        assert!((700..=1001).contains(&n), "{n} points");
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(format_tick(2e-5), "2.0e-5");
        assert_eq!(format_tick(0.1530), "0.153");
        assert_eq!(format_tick(12.0), "12");
        assert_eq!(format_tick(4096.0), "4096");
        assert_eq!(format_tick(-8.5e-22), "0");
        assert_eq!(format_tick(200.0), "200");
    }
}
