//! XLSX/XLSM with calamine: one table per sheet, the sheet name as a heading, page = sheet
//! number. The archive passes the zip-bomb guard (declared and actual sizes) before
//! calamine inflates it.

use crate::builder::DocBuilder;
use crate::error::{Error, Result, Warning};
use crate::zipguard::{Archive, ZipLimits};
use calamine::{Data, Reader, SheetType, Xlsx};
use ragtune_core::{BlockKind, ExtractedDocument, Format};
use std::io::BufReader;
use std::path::Path;

pub(crate) fn load(
    path: &Path,
    limits: ZipLimits,
    warnings: &mut Vec<Warning>,
) -> Result<ExtractedDocument> {
    Archive::open(path, limits)?.verify_all()?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut book = Xlsx::new(BufReader::new(file))
        .map_err(|e| Error::malformed(path, format!("not a readable workbook ({e})")))?;
    let mut b = DocBuilder::new();
    let sheets: Vec<_> = book.sheets_metadata().to_vec();
    let mut names = Vec::new();
    for (i, sheet) in sheets.iter().enumerate() {
        if sheet.typ != SheetType::WorkSheet {
            continue;
        }
        let range = match book.worksheet_range(&sheet.name) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(Warning::new(
                    path,
                    format!("sheet {:?} could not be read ({e}); skipped", sheet.name),
                ));
                continue;
            }
        };
        b.page = Some(i as u32 + 1);
        b.push(BlockKind::Heading { level: 1 }, &sheet.name);
        for row in range.rows() {
            let cells: Vec<String> = row.iter().map(cell).collect();
            b.push_row(&cells);
        }
        names.push(sheet.name.clone());
    }
    b.page = None;
    b.metadata.insert("sheets".into(), names.join(", "));
    Ok(b.finish(path.display().to_string(), Format::Xlsx))
}

/// A cell as text; dates become ISO dates (calamine gives Excel serial numbers).
fn cell(d: &Data) -> String {
    match d {
        Data::DateTime(dt) if dt.is_datetime() => serial_to_iso(dt.as_f64()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}

/// Excel 1900-system serial date to `YYYY-MM-DD` (with ` HH:MM` when there is a time).
fn serial_to_iso(serial: f64) -> String {
    if !(1.0..2_958_466.0).contains(&serial) {
        return serial.to_string();
    }
    // Day 60 is the fictitious 1900-02-29; serials after it are one day ahead.
    let days = serial.trunc() as i64 - if serial >= 61.0 { 1 } else { 0 };
    let (y, m, d) = civil_from_days(days - 25_568); // 1900-01-01 is day 1
    let minutes = ((serial.fract() * 1440.0).round() as i64).min(1439);
    if minutes == 0 {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}",
            minutes / 60,
            minutes % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_serials_become_dates() {
        assert_eq!(serial_to_iso(1.0), "1900-01-01");
        assert_eq!(serial_to_iso(45_292.0), "2024-01-01");
        assert_eq!(serial_to_iso(45_292.5), "2024-01-01 12:00");
        assert_eq!(cell(&Data::Float(3.0)), "3");
        assert_eq!(cell(&Data::Float(2.5)), "2.5");
    }
}
