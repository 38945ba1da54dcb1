//! The evaluation as text: the results table printed by `rrra eval` and `rrra demo`, and the
//! report directory (Markdown plus SVG figures) they write.

use super::evaluate::Evaluation;
use super::svg::{Bar, BarChart, BarSeries, LineChart, Series};
use rrra::eval::classes::CLASS_NAMES;
use std::fmt::Write;
use std::path::Path;

fn interval(i: &rrra::eval::stats::Interval) -> String {
    format!("{:.3} [{:.3}, {:.3}]", i.mean, i.lo, i.hi)
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The results as Markdown tables (also fine to read in a terminal).
pub fn tables(e: &Evaluation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Reranking the retriever's top-{} on the test split ({} queries); 95% bootstrap intervals, two-sided paired tests:\n", e.k, e.test_queries);
    let _ = writeln!(s, "| metric | base retriever | reranked | Δ | p (randomization) | p (sign test) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for m in &e.metrics {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:+.3} | {} | {} |",
            m.name,
            interval(&m.base),
            interval(&m.reranked),
            m.reranked.mean - m.base.mean,
            p_value(m.p_randomization),
            p_value(m.p_sign)
        );
    }
    let _ = writeln!(
        s,
        "\nWhat stands first, as shares of the test queries. A near-duplicate is listed in likely_false_negatives.tsv (likely relevant, but not judged); reranking the top-{} can lift only the queries of the two \"relevant at rank\" rows:\n",
        e.k
    );
    let _ = writeln!(s, "| first result | base retriever | reranked |");
    let _ = writeln!(s, "|---|---|---|");
    let rows = [
        "a relevant document".to_string(),
        "a near-duplicate of a relevant document".to_string(),
        "otherwise; relevant at rank 2–10".to_string(),
        format!("otherwise; relevant at rank 11–{}", e.k),
        format!("otherwise; none relevant in the top-{}", e.k),
    ];
    for (row, (b, r)) in rows.iter().zip(e.first_base.shares().into_iter().zip(e.first_reranked.shares())) {
        let _ = writeln!(s, "| {row} | {:.1}% | {:.1}% |", 100.0 * b, 100.0 * r);
    }
    let c = &e.confusion;
    let _ = writeln!(
        s,
        "\nAdapter 4-way classification on the test pairs (top-{} plus missed relevant documents): accuracy {:.3}; false-negative class precision {:.3}, recall {:.3}, F1 {:.3}.\n",
        e.k,
        c.accuracy(),
        c.precision(1),
        c.recall(1),
        c.f1(1)
    );
    if let Some(sep) = &e.fn_separation {
        let _ = writeln!(
            s,
            "Ranked by s_FN instead of the argmax, the false-negative pairs come first with ROC AUC {:.3} and average precision {:.3} (a random order: {:.3}).\n",
            sep.roc_auc, sep.average_precision, sep.base_rate
        );
    }
    let _ = writeln!(s, "| truth \\ predicted | {} |", CLASS_NAMES.join(" | "));
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (t, row) in c.counts.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(u64::to_string).collect();
        let _ = writeln!(s, "| {} | {} |", CLASS_NAMES[t], cells.join(" | "));
    }
    let _ = writeln!(
        s,
        "\nReranking latency, one query of {} candidates per call on one thread ({} engine): median {:.0} µs, p90 {:.0} µs.\n",
        e.k, e.engine, e.latency_us.0, e.latency_us.1
    );
    let _ = writeln!(
        s,
        "Negative sampling: {} negatives per training query from its top-{}; the share that are listed near-duplicates of the query's package (likely false negatives; lower is better at equal hardness):\n",
        e.negatives_per_query, e.k
    );
    let _ = writeln!(
        s,
        "| strategy | near-duplicates (any reason) | same source package | mean base score | negatives drawn |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for r in &e.samplers {
        let _ = writeln!(
            s,
            "| {} | {:.2}% | {:.2}% | {:.3} | {} |",
            r.name,
            100.0 * r.near_duplicate_rate,
            100.0 * r.same_source_rate,
            r.mean_base_score,
            r.drawn
        );
    }
    s
}

/// Writes `report.md`, `recall.svg`, `metrics.svg` and `adapter-scores.svg` into `dir`.
pub fn write(dir: &Path, title: &str, preamble: &str, e: &Evaluation) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let curve = |name: &str, ys: &[f64]| Series {
        name: name.into(),
        points: ys.iter().enumerate().map(|(i, &y)| ((i + 1) as f64, y)).collect(),
    };
    let recall = LineChart {
        title: "Recall@k on the test split".into(),
        x_label: "k".into(),
        y_label: "mean recall@k".into(),
        log_x: true,
        series: vec![curve("base retriever", &e.recall_curve_base), curve("reranked", &e.recall_curve_reranked)],
    };
    let bars = |name: &str, pick: fn(&super::evaluate::MetricRow) -> &rrra::eval::stats::Interval| BarSeries {
        name: name.into(),
        bars: e.metrics.iter().map(pick).map(|i| Bar { value: i.mean, lo: i.lo, hi: i.hi }).collect(),
    };
    let metrics = BarChart {
        title: "Test metrics with 95% bootstrap intervals".into(),
        y_label: "mean over queries".into(),
        groups: e.metrics.iter().map(|m| m.name.to_string()).collect(),
        series: vec![bars("base retriever", |m| &m.base), bars("reranked", |m| &m.reranked)],
    };
    const BINS: usize = 40;
    let histogram = |values: &[f32]| -> Vec<(f64, f64)> {
        let mut counts = [0usize; BINS];
        for &v in values {
            counts[((v as f64 * BINS as f64) as usize).min(BINS - 1)] += 1;
        }
        let n = values.len().max(1) as f64;
        counts.iter().enumerate().map(|(b, &c)| ((b as f64 + 0.5) / BINS as f64, c as f64 / n)).collect()
    };
    let scores = LineChart {
        title: "Adapter score s_A by class (test pairs)".into(),
        x_label: "s_A".into(),
        y_label: "share of the class's pairs".into(),
        log_x: false,
        series: CLASS_NAMES
            .iter()
            .zip(&e.s_a_by_class)
            .map(|(name, v)| Series { name: format!("{name} ({})", v.len()), points: histogram(v) })
            .collect(),
    };
    let mut md = format!("# {title}\n\n{preamble}\n");
    md.push_str(&tables(e));
    md.push_str("\n![Recall@k, base against reranked](recall.svg)\n\n![Metrics with intervals](metrics.svg)\n\n![s_A by class](adapter-scores.svg)\n");
    for (name, body) in [
        ("report.md", md),
        ("recall.svg", recall.render()),
        ("metrics.svg", metrics.render()),
        ("adapter-scores.svg", scores.render()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    Ok(())
}
