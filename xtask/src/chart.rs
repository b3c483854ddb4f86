//! `cargo xtask chart LOG [-o OUT.svg]`: a boot chart (SVG timeline) from a
//! QEMU serial log, such as `target/qemu-tests/<scenario>/serial.log`.

use std::path::{Path, PathBuf};

pub mod parse;
pub mod svg;

#[cfg(test)]
mod tests;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("usage: cargo xtask chart LOG [-o OUT.svg]")]
    Usage,
    #[error("unknown chart option {0:?}")]
    UnknownOption(String),
    #[error("-o needs a file name")]
    MissingOutput,
    #[error("reading the boot log {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no kernel-timestamped line: not a serial log of a boot")]
    NoTimestamps { path: PathBuf },
    #[error("writing the chart {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the chart of `log` goes when `-o` is not given: beside it, same
/// name with `.svg` (`serial.log` -> `serial.svg`).
pub fn default_output(log: &Path) -> PathBuf {
    log.with_extension("svg")
}

/// Reads `log` and writes its chart to `out`.
pub fn write_chart(log: &Path, out: &Path) -> Result<(), ChartError> {
    let text = std::fs::read(log).map_err(|source| ChartError::Read {
        path: log.to_path_buf(),
        source,
    })?;
    // Serial logs can carry stray non-UTF-8 bytes (line noise, apk's
    // progress bars); they never sit inside the records read here.
    let text = String::from_utf8_lossy(&text);
    if !text.lines().any(|l| parse::timestamped(l).is_some()) {
        return Err(ChartError::NoTimestamps {
            path: log.to_path_buf(),
        });
    }
    let timeline = parse::parse(&text);
    let title = format!("alpinit boot chart: {}", log.display());
    std::fs::write(out, svg::render(&timeline, &title)).map_err(|source| ChartError::Write {
        path: out.to_path_buf(),
        source,
    })
}

/// The command line: `LOG [-o OUT.svg]`.
pub fn command(args: &[String]) -> Result<(), ChartError> {
    let mut log = None;
    let mut out = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-o" | "--output" => {
                out = Some(PathBuf::from(iter.next().ok_or(ChartError::MissingOutput)?));
            }
            a if a.starts_with('-') => return Err(ChartError::UnknownOption(a.to_string())),
            a if log.is_none() => log = Some(PathBuf::from(a)),
            _ => return Err(ChartError::Usage),
        }
    }
    let log = log.ok_or(ChartError::Usage)?;
    let out = out.unwrap_or_else(|| default_output(&log));
    write_chart(&log, &out)?;
    println!("chart: {}", out.display());
    Ok(())
}
