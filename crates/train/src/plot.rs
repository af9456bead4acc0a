//! The loss curve as a PNG: train loss per step and eval loss where measured, with axis ticks
//! and a legend, drawn on a pixel canvas and encoded as an RGB PNG (zlib via flate2). A plotting
//! crate would pull in a font stack for a picture that needs a dozen glyphs.

use crate::error::{Error, Result};
use crate::trainer::Record;
use std::io::Write;
use std::path::Path;

const W: usize = 800;
const H: usize = 480;
const LEFT: usize = 70;
const RIGHT: usize = 20;
const TOP: usize = 20;
const BOTTOM: usize = 40;
const TRAIN: [u8; 3] = [31, 119, 180];
const EVAL: [u8; 3] = [255, 127, 14];
const AXIS: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![255; W * H * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Bresenham, two pixels thick.
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: bool) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if thick {
                self.set(x, y + 1, c);
                self.set(x + 1, y, c);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text in a 5x7 pixel font (the characters the plot uses), top-left at (x, y).
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.set(x + k as i64 * 6 + col, y + r as i64, c);
                    }
                }
            }
        }
    }
}

fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'i' => [0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'n' => [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'r' => [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'v' => [0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04],
        _ => [0; 7],
    }
}

/// Renders the history's loss curves as PNG bytes.
pub fn loss_png(history: &[Record]) -> Result<Vec<u8>> {
    let mut canvas = Canvas::new();
    let train: Vec<(f64, f64)> = history.iter().map(|r| (r.step as f64, r.loss)).collect();
    let eval: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|r| r.eval_loss.map(|l| (r.step as f64, l)))
        .collect();
    let ys = train
        .iter()
        .chain(&eval)
        .map(|p| p.1)
        .filter(|v| v.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        let pad = ((hi - lo) * 0.05).max(1e-3);
        (lo - pad, hi + pad)
    } else {
        (0.0, 1.0)
    };
    let last = history.last().map_or(1.0, |r| r.step as f64).max(2.0);
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let to_px = |(x, y): (f64, f64)| {
        (
            LEFT as i64 + ((x - 1.0) / (last - 1.0) * pw).round() as i64,
            TOP as i64 + ((hi - y) / (hi - lo) * ph).round() as i64,
        )
    };
    let (x0, y0, x1, y1) = (
        LEFT as i64,
        TOP as i64,
        (W - RIGHT) as i64,
        (H - BOTTOM) as i64,
    );
    for k in 0..=5 {
        let y = lo + (hi - lo) * k as f64 / 5.0;
        let py = to_px((1.0, y)).1;
        canvas.line((x0, py), (x1, py), GRID, false);
        canvas.text(4, py - 3, &format!("{y:.3}"), AXIS);
        let step = 1.0 + (last - 1.0) * k as f64 / 5.0;
        let px = to_px((step, lo)).0;
        canvas.line((px, y0), (px, y1), GRID, false);
        let label = format!("{}", step.round() as u64);
        canvas.text(px - 3 * label.len() as i64, y1 + 6, &label, AXIS);
    }
    canvas.line((x0, y1), (x1, y1), AXIS, false);
    canvas.line((x0, y0), (x0, y1), AXIS, false);
    canvas.text(x1 - 24, y1 + 22, "step", AXIS);
    canvas.text(4, 4, "loss", AXIS);
    for (series, colour) in [(&train, TRAIN), (&eval, EVAL)] {
        for pair in series.windows(2) {
            canvas.line(to_px(pair[0]), to_px(pair[1]), colour, true);
        }
        if let [only] = series.as_slice() {
            let (x, y) = to_px(*only);
            canvas.line((x - 2, y), (x + 2, y), colour, true);
        }
    }
    for (k, (name, colour)) in [("train", TRAIN), ("eval", EVAL)].into_iter().enumerate() {
        let y = y0 + 8 + 14 * k as i64;
        canvas.line((x1 - 90, y), (x1 - 70, y), colour, true);
        canvas.text(x1 - 62, y - 3, name, AXIS);
    }
    encode_png(&canvas.px, W, H)
}

/// Writes the plot atomically.
pub fn write_loss_png(history: &[Record], path: &Path) -> Result<()> {
    crate::trainer::write_atomic(path, &loss_png(history)?)
}

/// An 8-bit RGB PNG: signature, IHDR, one zlib IDAT (filter 0 on every scanline), IEND.
fn encode_png(rgb: &[u8], w: usize, h: usize) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(h * (1 + 3 * w));
    for row in rgb.chunks(3 * w) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let err = |e: std::io::Error| Error::Options(format!("encoding the loss plot: {e}"));
    z.write_all(&raw).map_err(err)?;
    let idat = z.finish().map_err(err)?;

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &idat[..]),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32fast::hash(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn record(step: usize, loss: f64, eval_loss: Option<f64>) -> Record {
        Record {
            step,
            epoch: 0.0,
            lr: 0.0,
            loss,
            grad_norm: 0.0,
            tokens: 0,
            seconds: 0.0,
            eval_loss,
        }
    }

    #[test]
    fn png_is_well_formed_and_draws_both_curves() -> Result<()> {
        let history: Vec<Record> = (1..=20)
            .map(|s| record(s, 3.0 / s as f64, (s % 5 == 0).then(|| 2.0 / s as f64)))
            .collect();
        let png = loss_png(&history)?;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            W as u32
        );
        assert_eq!(
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
            H as u32
        );
        assert_eq!(
            u32::from_be_bytes(png[29..33].try_into().unwrap()),
            crc32fast::hash(&png[12..29])
        );
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), H * (1 + 3 * W));
        let count = |c: [u8; 3]| {
            raw.chunks(1 + 3 * W)
                .flat_map(|row| row[1..].chunks(3))
                .filter(|p| *p == c)
                .count()
        };
        assert!(count(TRAIN) > 100 && count(EVAL) > 50);
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
        Ok(())
    }
}
