//! The embedded-DataFusion peer of the TPC-H benchmark: the same DataFusion
//! version ciab runs, over the same Parquet files, with no server between the
//! query and the engine. What ciab costs on top of this is our own overhead.
//!
//! ```text
//! ciab-bench-datafusion --parquet DIR --queries DIR --runs N --out FILE.json
//! ```
//!
//! Writes, per query, the time of every run in milliseconds (the first is
//! the cold one) and the rows of the last run as text, for the harness to
//! compare with the other engines.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde_json::{Value, json};

const TABLES: [&str; 8] = [
    "region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

struct Args {
    parquet: PathBuf,
    queries: PathBuf,
    runs: usize,
    out: PathBuf,
}

fn args() -> Result<Args> {
    let mut parquet = None;
    let mut queries = None;
    let mut runs = 3;
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--parquet" => parquet = Some(PathBuf::from(value)),
            "--queries" => queries = Some(PathBuf::from(value)),
            "--runs" => runs = value.parse()?,
            "--out" => out = Some(PathBuf::from(value)),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(Args {
        parquet: parquet.context("--parquet DIR is required")?,
        queries: queries.context("--queries DIR is required")?,
        runs,
        out: out.context("--out FILE is required")?,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let ctx = SessionContext::new();
    for table in TABLES {
        let path = args.parquet.join(format!("{table}.parquet"));
        ctx.register_parquet(
            table,
            path.to_str().context("a UTF-8 path")?,
            ParquetReadOptions::default(),
        )
        .await?;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.queries)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    let mut report = serde_json::Map::new();
    for file in files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a query file name")?
            .to_string();
        let sql = std::fs::read_to_string(&file)?;
        let mut times = Vec::with_capacity(args.runs);
        let mut rows = Vec::new();
        for _ in 0..args.runs {
            let started = Instant::now();
            let batches = ctx.sql(&sql).await?.collect().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            rows = text_rows(&batches)?;
        }
        report.insert(name, json!({ "times_ms": times, "rows": rows }));
    }
    std::fs::write(
        &args.out,
        serde_json::to_vec_pretty(&Value::Object(report))?,
    )?;
    Ok(())
}

fn text_rows(batches: &[datafusion::arrow::array::RecordBatch]) -> Result<Vec<Vec<Value>>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| Value::String(f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(rows)
}
