//! The report's charts, made to be read at a glance: request rates as
//! `150k`, latency on a log scale with the target drawn and labelled, points
//! in order, and an HTML page that embeds them with the tables.

use crate::report::TuneReport;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// `150000` → `150k`, `1200000` → `1.2M`.
pub fn si(x: f64) -> String {
    let a = x.abs();
    let (v, unit) = if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let text = if v.fract().abs() < 1e-9 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{unit}")
}

/// Milliseconds for a latency label: `0.25 ms`, `2 ms`, `40 ms`.
fn ms_label(v: f64) -> String {
    format!("{} ms", si(v).replace('k', "000"))
}

/// A latency in µs as read: `250 µs`, `2 ms`.
fn us_label(us: f64) -> String {
    if us >= 1000.0 {
        ms_label(us / 1000.0)
    } else {
        format!("{} µs", si(us))
    }
}

pub(crate) fn throughput_chart(
    r: &TuneReport,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_n = r.variants.iter().map(|v| v.shards).max().unwrap_or(1) as f64;
    let curve_fit = r.usl.as_ref().filter(|_| !r.extrapolation.is_empty());
    let x_max = if curve_fit.is_some() {
        (max_n * 2.0).max(4.0)
    } else {
        max_n.max(2.0)
    };
    let mut y_max = r
        .variants
        .iter()
        .map(|v| v.search.saturation.ok_rps)
        .fold(1.0, f64::max);
    if let Some(f) = curve_fit {
        y_max = y_max.max(f.usl.predict(x_max));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput vs shards", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5f64..x_max + 0.5, 0f64..y_max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("shards")
        .y_desc("requests/s")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| si(*y))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .draw()?;
    let mut sat: Vec<(f64, f64)> = r
        .variants
        .iter()
        .map(|v| (v.shards as f64, v.search.saturation.ok_rps))
        .collect();
    let mut sus: Vec<(f64, f64)> = r
        .variants
        .iter()
        .map(|v| (v.shards as f64, v.sustainable_rps()))
        .collect();
    sat.sort_by(|a, b| a.0.total_cmp(&b.0));
    sus.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart
        .draw_series(sat.iter().map(|&p| Circle::new(p, 5, RED.filled())))?
        .label("saturation (closed loop)")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    chart.draw_series(LineSeries::new(sat.clone(), RED.mix(0.4)))?;
    chart
        .draw_series(
            sus.iter()
                .map(|&p| TriangleMarker::new(p, 6, BLUE.filled())),
        )?
        .label(format!(
            "sustainable at p99 ≤ {}",
            ms_label(r.p99_target_us as f64 / 1000.0)
        ))
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLUE.filled()));
    chart.draw_series(sus.iter().map(|&(x, y)| {
        // Beside the marker, not on it.
        let at = (x + x_max * 0.02, y + y_max * 0.03);
        Text::new(si(y), at, ("sans-serif", 13).into_font().color(&BLUE))
    }))?;
    if let Some(f) = curve_fit {
        let curve: Vec<(f64, f64)> = (0..=200)
            .map(|i| {
                let n = 1.0 + (x_max - 1.0) * i as f64 / 200.0;
                (n, f.usl.predict(n))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(curve, BLUE.stroke_width(2)))?
            .label("USL fit (extrapolated)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

pub(crate) fn latency_chart(r: &TuneReport, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = r
        .variants
        .iter()
        .flat_map(|v| v.search.points.iter().filter_map(|p| p.requested_rps))
        .fold(1.0, f64::max);
    // Microseconds on the axis (plotters labels a log axis from 1 up), shown as µs or ms.
    let target = r.p99_target_us as f64;
    let lat = |us: u64| (us as f64).max(1.0);
    // From a power of ten, so plotters labels every decade shown.
    let lowest = r
        .variants
        .iter()
        .flat_map(|v| v.search.points.iter().map(|p| lat(p.p99_us)))
        .fold(target, f64::min);
    let lo = 10f64.powf(lowest.log10().floor());
    let hi = r
        .variants
        .iter()
        .flat_map(|v| v.search.points.iter().map(|p| lat(p.p99_us)))
        .fold(target, f64::max)
        * 2.0;
    // Labels at 1, 2 and 5 of each decade (plotters' own log labels put
    // one on every minor step: 70, 80, 90 ms stacked); faint lines at the
    // other whole steps.
    let (labelled, faint) = log_ticks(lo, hi);
    let y = (lo..hi)
        .log_scale()
        .with_key_points(labelled)
        .with_light_points(faint);
    let mut chart = ChartBuilder::on(&root)
        .caption("p99 latency vs offered load", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max * 1.05, y)?;
    chart
        .configure_mesh()
        .x_desc("offered load (requests/s, open loop)")
        .y_desc("p99 latency (log scale)")
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|y| us_label(*y))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .draw()?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, target), (x_max * 1.05, target)],
            8,
            5,
            BLACK.stroke_width(2),
        ))?
        .label(format!("p99 target {}", us_label(target)))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart.draw_series(std::iter::once(Text::new(
        format!("p99 target {}", us_label(target)),
        (x_max * 0.80, target * 1.45),
        ("sans-serif", 14).into_font().style(FontStyle::Bold),
    )))?;
    for (i, v) in r.variants.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut pts: Vec<(f64, f64)> = v
            .search
            .points
            .iter()
            .filter_map(|p| p.requested_rps.map(|x| (x, lat(p.p99_us))))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(v.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            pts.into_iter()
                .map(move |p| Circle::new(p, 3, color.filled())),
        )?;
    }
    // The recommendation: its sustainable rate, on the target line.
    if let Some(rec) = &r.recommendation {
        let at = (rec.sustainable_rps, target);
        chart.draw_series(std::iter::once(Circle::new(at, 9, BLACK.stroke_width(3))))?;
        chart.draw_series(std::iter::once(Text::new(
            format!(
                "recommended: {} shard{}, {} req/s",
                rec.shards,
                if rec.shards == 1 { "" } else { "s" },
                si(rec.sustainable_rps)
            ),
            (rec.sustainable_rps + x_max * 0.02, target / 1.35),
            ("sans-serif", 14).into_font().style(FontStyle::Bold),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The ticks of a log axis from `lo` to `hi`: 1, 2 and 5 of each decade
/// (labelled), and the other whole steps (faint lines, no label).
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut labelled, mut faint) = (Vec::new(), Vec::new());
    let mut decade = 10f64.powf(lo.max(f64::MIN_POSITIVE).log10().floor());
    while decade <= hi {
        for step in 1..10 {
            let v = decade * f64::from(step);
            if v < lo * 0.999 || v > hi * 1.001 {
                continue;
            }
            if matches!(step, 1 | 2 | 5) {
                labelled.push(v);
            } else {
                faint.push(v);
            }
        }
        decade *= 10.0;
    }
    (labelled, faint)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One HTML page: the recommendation, the table, the validity notes, and
/// the two charts inline (no external files to lose).
pub(crate) fn html(r: &TuneReport, throughput_svg: &str, latency_svg: &str) -> String {
    let mut h = String::new();
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    let _ = writeln!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>shardloop-tune report</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>"
    );
    let _ = writeln!(h, "<h1>shardloop-tune report</h1>");
    match &r.recommendation {
        Some(rec) => {
            let _ = writeln!(h, "<p><strong>{}</strong></p>", escape(&rec.line));
        }
        None => {
            let _ = writeln!(
                h,
                "<p><strong>No configuration met p99 ≤ {} ms.</strong></p>",
                ms(r.p99_target_us)
            );
        }
    }
    let _ = writeln!(
        h,
        "<table><tr><th>configuration</th><th>pinned</th><th>saturation req/s</th><th>sustainable req/s (p99 ≤ {} ms)</th></tr>",
        ms(r.p99_target_us)
    );
    for v in &r.variants {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.label()),
            if v.pinned { "yes" } else { "no" },
            si(v.search.saturation.ok_rps),
            si(v.sustainable_rps())
        );
    }
    let _ = writeln!(h, "</table>");
    if !r.validity.is_empty() {
        let _ = writeln!(h, "<h2>Validity</h2><ul>");
        for v in &r.validity {
            let _ = writeln!(h, "<li>{}</li>", escape(v));
        }
        let _ = writeln!(h, "</ul>");
    }
    let _ = writeln!(h, "<h2>Charts</h2>{throughput_svg}\n{latency_svg}");
    let _ = writeln!(h, "</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::si;

    #[test]
    fn rates_read_at_a_glance() {
        assert_eq!(si(150_000.0), "150k");
        assert_eq!(si(1_200_000.0), "1.2M");
        assert_eq!(si(999.0), "999");
        assert_eq!(si(12_500.0), "12.5k");
        assert_eq!(si(0.0), "0");
        assert_eq!(si(0.25), "0.25");
    }
}
