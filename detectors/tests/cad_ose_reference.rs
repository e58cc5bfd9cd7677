//! Exactness of the CAD OSE port: fed NAB's way (the file's minimum and maximum up front, rest
//! period `probationaryPeriod / 5` with NAB's probation of 15 % capped at 750 rows), its
//! scores on every file of the development corpus equal those of NAB's own Python code
//! (`data/nab/reference/contextOSE`) to 1e-9.
//!
//! The corpus is the shared data set beside the workspace (`../shared/data/nab`, as CI has
//! it); the test fails when it is missing rather than passing without checking anything.

use lookout_detectors::anomaly::cad_ose::CadOse;
use std::path::{Path, PathBuf};

fn nab_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab");
    assert!(
        root.join("reference/contextOSE").is_dir(),
        "NAB corpus with reference results not found at {} (CI copies shared/ beside the clone)",
        root.display()
    );
    root
}

fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            csv_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "csv") {
            out.push(p);
        }
    }
}

/// pandas' default float parser (`precise_xstrtod` of `pandas/_libs/src/parser/tokenizer.c`),
/// which is how NAB reads a CSV: up to 17 significant digits accumulated as `n·10 + d` in
/// doubles, then scaled by one power of ten. It differs from a correctly rounded parse by an
/// ulp on some 16–17-digit values, which moves a file's minimum or maximum and with it a
/// quantisation boundary.
fn pandas_float(text: &str) -> Option<f64> {
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let b = s.as_bytes();
    let (mut number, mut exponent, mut digits, mut i) = (0.0f64, 0i32, 0, 0);
    while i < b.len() && b[i].is_ascii_digit() {
        if digits < 17 {
            number = number * 10.0 + f64::from(b[i] - b'0');
            digits += 1;
        } else {
            exponent += 1;
        }
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while digits < 17 && i < b.len() && b[i].is_ascii_digit() {
            number = number * 10.0 + f64::from(b[i] - b'0');
            digits += 1;
            exponent -= 1;
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if digits == 0 || i != b.len() {
        // Exponents and other forms do not occur in the corpus: take the correctly rounded
        // value rather than guess.
        return text.trim().parse().ok();
    }
    let power: f64 = format!("1e{}", exponent.abs()).parse().ok()?;
    let number = if exponent >= 0 {
        number * power
    } else {
        number / power
    };
    Some(if negative { -number } else { number })
}

/// Column `col` of every data row.
fn column(path: &Path, col: usize) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .nth(col)
                .and_then(pandas_float)
                .unwrap_or_else(|| panic!("{}: bad row {l:?}", path.display()))
        })
        .collect()
}

#[test]
fn cad_ose_matches_nab_reference_on_every_dev_file() {
    let root = nab_root();
    let mut files = Vec::new();
    csv_files(&root.join("data"), &mut files);
    files.sort();
    assert_eq!(files.len(), 31, "the development corpus has 31 files");
    let mut rows = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root.join("data")).unwrap();
        let values = column(file, 1);
        let expected = column(&root.join("reference/contextOSE").join(rel), 2);
        assert_eq!(values.len(), expected.len(), "{}", rel.display());
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let n = values.len() as f64;
        let probation = (0.15 * n).floor().min(0.15 * 5000.0);
        let mut cad = CadOse::with_range(min, max, probation / 5.0);
        let first_wrong = values
            .iter()
            .zip(&expected)
            .enumerate()
            .find_map(|(i, (&v, &want))| {
                let got = cad.score(v);
                ((got - want).abs() > 1e-9)
                    .then(|| format!("{} row {}: got {got}, NAB {want}", rel.display(), i + 1))
            });
        wrong.extend(first_wrong);
        rows += values.len();
    }
    assert!(
        wrong.is_empty(),
        "{} files differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(rows, 139_187, "rows of the 31 files");
}
