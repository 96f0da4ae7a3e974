//! The loss and evaluation curves of a run as a PNG, for readers without TensorBoard.
//!
//! The loop's scalars also go to `<run>/scalars.tsv` ([`super::TextLogger`]: `step<TAB>tag<TAB>value`
//! lines, appended across resumes); at the end of a run [`write_curves`] reads that file and draws
//! `<run>/curves.png`: `train/loss` and every `eval/<source>/loss` against the step, and below
//! them, when the recipe has multiple-choice tasks, every `eval/<task>/acc`. A step logged twice
//! (the steps re-run after a resume) is drawn with its last value.
//!
//! Drawn with `plotters` into an RGB buffer (no system fonts, no image codecs: the text uses the
//! DejaVu Sans Mono font embedded in graft-train, and the `png` crate encodes the buffer).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Result, TrainError};

/// The scalars file of a run directory.
pub const SCALARS_FILE: &str = "scalars.tsv";
/// The curves image of a run directory.
pub const CURVES_FILE: &str = "curves.png";
/// Size of the image in pixels.
pub const CURVES_SIZE: (u32, u32) = (1000, 700);

/// DejaVu Sans Mono (Bitstream Vera licence: `assets/DejaVuSansMono-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "graft-mono";

/// Every scalar of a scalars file: tag → step → last value logged for that step.
pub type Scalars = BTreeMap<String, BTreeMap<u64, f64>>;

/// Reads a `step<TAB>tag<TAB>value` file; a line that does not parse is an error naming it.
pub fn read_scalars(path: &Path) -> Result<Scalars> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
    let mut out = Scalars::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut fields = line.split('\t');
        let parsed = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(step), Some(tag), Some(value), None) => step
                .parse::<u64>()
                .ok()
                .zip(value.parse::<f64>().ok())
                .map(|(s, v)| (s, tag, v)),
            _ => None,
        };
        let (step, tag, value) = parsed.ok_or_else(|| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "line {}: expected step<TAB>tag<TAB>value, got {line:?}",
                i + 1
            ),
        })?;
        out.entry(tag.to_string()).or_default().insert(step, value);
    }
    Ok(out)
}

/// Draws `scalars_file`'s curves into `png` (written atomically). Returns false, writing nothing,
/// when there is no loss to draw.
pub fn write_curves(scalars_file: &Path, png: &Path) -> Result<bool> {
    let scalars = read_scalars(scalars_file)?;
    let Some(bytes) = render_png(&scalars)? else {
        return Ok(false);
    };
    graft_data::atomic::write_atomic(png, &bytes)?;
    Ok(true)
}

/// One line of a chart: its name and finite points.
struct Curve {
    name: String,
    points: Vec<(f64, f64)>,
}

/// The curves of `scalars` whose tag passes `keep`, named by `name`.
fn curves(scalars: &Scalars, keep: impl Fn(&str) -> Option<String>) -> Vec<Curve> {
    scalars
        .iter()
        .filter_map(|(tag, values)| {
            let points: Vec<(f64, f64)> = values
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(&s, &v)| (s as f64, v))
                .collect();
            let name = keep(tag)?;
            (!points.is_empty()).then_some(Curve { name, points })
        })
        .collect()
}

/// The PNG of `scalars`' curves ([`CURVES_SIZE`]), or `None` when there is no loss to draw.
pub fn render_png(scalars: &Scalars) -> Result<Option<Vec<u8>>> {
    let losses = curves(scalars, |tag| match tag {
        "train/loss" => Some("train".into()),
        t => t
            .strip_prefix("eval/")
            .and_then(|t| t.strip_suffix("/loss"))
            .map(|s| format!("eval {s}")),
    });
    if losses.is_empty() {
        return Ok(None);
    }
    let mut losses = losses;
    losses.sort_by_key(|c| c.name != "train"); // training first: the first colour, the top of the legend
    let accuracies = curves(scalars, |tag| {
        tag.strip_prefix("eval/")
            .and_then(|t| t.strip_suffix("/acc"))
            .map(|s| format!("{s} acc"))
    });
    register_font();
    let (w, h) = CURVES_SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(&mut rgb, &losses, &accuracies)
        .map_err(|e| TrainError::Config(format!("drawing the curves: {e}")))?;
    encode_png(&rgb, w, h).map(Some)
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // the embedded font is a valid TrueType file: registration cannot fail
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn draw(rgb: &mut [u8], losses: &[Curve], accuracies: &[Curve]) -> DrawResult<()> {
    let root = BitMapBackend::with_buffer(rgb, CURVES_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let steps = step_range(losses.iter().chain(accuracies));
    if accuracies.is_empty() {
        panel(&root, "loss", losses, steps)?;
    } else {
        let (top, bottom) = root.split_vertically(CURVES_SIZE.1 * 3 / 5);
        panel(&top, "loss", losses, steps.clone())?;
        panel(&bottom, "accuracy", accuracies, steps)?;
    }
    root.present()?;
    Ok(())
}

/// One chart: `curves` against the step, labelled axes, a legend.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    y_desc: &str,
    curves: &[Curve],
    steps: Range<f64>,
) -> DrawResult<()> {
    let values = padded(curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(steps, values)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_desc(y_desc)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, curve) in curves.iter().enumerate() {
        let (r, g, b) = TAB10[i % TAB10.len()];
        let color = RGBColor(r, g, b);
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(curve.points.iter().copied(), style))?
            .label(curve.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if curve.points.len() <= 50 {
            // evaluations are few: mark each one
            chart.draw_series(
                curve
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Matplotlib's `tab10` colours: distinct, and all readable on white.
const TAB10: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// The steps all curves span (at least one step wide).
fn step_range<'a>(curves: impl Iterator<Item = &'a Curve>) -> Range<f64> {
    let (lo, hi) = curves
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
    if hi > lo {
        lo..hi
    } else {
        lo - 1.0..lo + 1.0
    }
}

/// The span of `values` with 5% room on each side (at least 0.1 wide).
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.05).max(0.05);
    lo - pad..hi + pad
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let err = |e: png::EncodingError| TrainError::Config(format!("encoding the curves PNG: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(rgb).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars_file(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join(SCALARS_FILE);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn writes_a_png_of_the_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for step in 1..=40u64 {
            text += &format!("{step}\ttrain/loss\t{}\n", 5.0 / (step as f64).sqrt());
            text += &format!("{step}\ttrain/lr\t0.001\n");
        }
        for step in [20u64, 40] {
            text += &format!("{step}\teval/finance/loss\t{}\n", 4.0 - step as f64 / 40.0);
            text += &format!("{step}\teval/finance-mc/acc\t0.{step}\n");
        }
        let png_path = dir.path().join(CURVES_FILE);
        assert!(write_curves(&scalars_file(dir.path(), &text), &png_path).unwrap());
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&png_path).unwrap(),
        ));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), CURVES_SIZE);
        // something is drawn: far more than a blank page of non-white pixels
        let inked = pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(inked > 5_000, "{inked} non-white pixels");
    }

    #[test]
    fn later_lines_win_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = scalars_file(
            dir.path(),
            "1\ttrain/loss\t3.0\n2\ttrain/loss\tNaN\n1\ttrain/loss\t2.5\n",
        );
        let scalars = read_scalars(&path).unwrap();
        assert_eq!(scalars["train/loss"][&1], 2.5);
        let bad = scalars_file(dir.path(), "1\ttrain/loss\t3.0\n2 train/loss 2.0\n");
        let err = read_scalars(&bad).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains(SCALARS_FILE),
            "{err}"
        );
        // nothing to draw: no file
        let none = scalars_file(dir.path(), "1\ttrain/lr\t0.1\n");
        let png = dir.path().join(CURVES_FILE);
        assert!(!write_curves(&none, &png).unwrap());
        assert!(!png.exists());
    }
}
