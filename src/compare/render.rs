//! The report as a terminal table, as JSON, and as one self-contained HTML page.

use anyhow::Result;
use minijinja::{context, AutoEscape, Environment};
use serde::Serialize;

use crate::compare::report::{segments, PairCheck, Report, Segment, Verdict};

// ---------------------------------------------------------------- terminal

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn verdict(&self, v: Verdict) -> String {
        match v {
            Verdict::Consistent => self.wrap("32", "consistent"),
            Verdict::Check => self.wrap("1;33", "check"),
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    fn flag(&self, s: &str) -> String {
        self.wrap("31", s)
    }
}

/// Text from articles, summaries or files, made safe to print on a terminal: control characters (escape
/// sequences start with one) and the invisible characters that reorder or hide text (bidi overrides and
/// isolates, zero-width characters) are shown as `\u{...}`; line breaks and tabs become spaces.
pub(crate) fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' | '\r' => out.push(' '),
            c if c.is_control() || is_invisible_format(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// Bidi embeddings, overrides and isolates, marks, zero-width characters and the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}')
}

/// Break `text` into lines of at most `width` characters (longer words are cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word[..width].iter().collect());
            word.drain(..width);
        }
        let w: String = word.into_iter().collect();
        if line.is_empty() {
            line = w;
        } else if line.chars().count() + 1 + w.chars().count() <= width {
            line.push(' ');
            line.push_str(&w);
        } else {
            lines.push(std::mem::replace(&mut line, w));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n >= width {
        s.chars().take(width).collect()
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

fn side_by_side(
    out: &mut String,
    p: &Paint,
    left_title: &str,
    left: &str,
    right_title: &str,
    right: &str,
    width: usize,
) {
    let col = (width.saturating_sub(3) / 2).max(20);
    let l = wrap(left, col);
    let r = wrap(right, col);
    out.push_str(&format!("  {} │ {}\n", p.bold(&pad(left_title, col)), p.bold(right_title)));
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).map(String::as_str).unwrap_or("");
        let b = r.get(i).map(String::as_str).unwrap_or("");
        out.push_str(&format!("  {} │ {}\n", pad(a, col), b));
    }
}

fn scores_line(c: &PairCheck) -> String {
    let mut parts: Vec<String> = c.scores.iter().map(|s| format!("{} {:.1}", s.label, s.chrf)).collect();
    parts.push(format!("length ratio {:.2}", c.length_ratio));
    parts.join("  ")
}

fn fmt_score(c: Option<&PairCheck>, label: &str) -> String {
    c.and_then(|c| c.scores.iter().find(|s| s.label == label))
        .map(|s| format!("{:.1}", s.chrf))
        .unwrap_or_else(|| "-".into())
}

/// The terminal report: per article the summaries side by side with the checks, then a table.
pub(crate) fn terminal(r: &Report, color: bool, width: usize) -> String {
    let p = Paint { on: color };
    let width = width.clamp(60, 200);
    // Every text below that comes from an input goes through `t` before it is printed.
    let t = terminal_safe;
    let mut out = String::new();
    for w in &r.warnings {
        out.push_str(&format!("{} {}\n", p.flag("warning:"), t(w)));
    }
    for a in &r.articles {
        out.push_str(&format!("\n{} [{}]", p.bold(&t(&a.id)), p.verdict(a.verdict)));
        if let Some(title) = &a.title {
            out.push_str(&format!("  {}", p.dim(&t(title))));
        }
        out.push('\n');
        side_by_side(
            &mut out,
            &p,
            "EN",
            &t(a.en.as_deref().unwrap_or("(none)")),
            "ES",
            &t(a.es.as_deref().unwrap_or("(none)")),
            width,
        );
        if let Some(c) = &a.check {
            out.push_str(&format!("  {}\n", p.dim(&scores_line(c))));
        }
        for reason in &a.reasons {
            out.push_str(&format!("  {} {}\n", p.flag("✗"), t(reason)));
        }
    }
    for s in &r.stories {
        out.push_str(&format!(
            "\n{} {} [{}]  {} + {}\n",
            p.bold("story"),
            p.bold(&t(&s.key)),
            p.verdict(s.verdict),
            t(&s.en_article),
            t(&s.es_article)
        ));
        for c in &s.checks {
            out.push_str(&format!("  {} vs {}: {}\n", c.left.label, c.right.label, scores_line(c)));
        }
        for reason in &s.reasons {
            out.push_str(&format!("  {} {}\n", p.flag("✗"), t(reason)));
        }
    }

    // The table.
    let idw = r
        .articles
        .iter()
        .map(|a| a.id.chars().count())
        .chain(r.stories.iter().map(|s| s.key.chars().count()))
        .max()
        .unwrap_or(7)
        .clamp(7, 40);
    out.push_str(&format!(
        "\n{}\n",
        p.bold(&format!(
            "{}  {:<10}  {:>6}  {:>6}  {:>5}  {:>7}  {:>5}",
            pad("article", idw),
            "verdict",
            "ES→EN",
            "EN→ES",
            "ratio",
            "numbers",
            "names"
        ))
    ));
    for a in &r.articles {
        let c = a.check.as_ref();
        let (nums, names) = c
            .map(|c| {
                (
                    c.numbers_only_left.len() + c.numbers_only_right.len(),
                    c.names_only_left.len() + c.names_only_right.len(),
                )
            })
            .unwrap_or((0, 0));
        let verdict = pad(a.verdict.as_str(), 10);
        let verdict = if a.verdict == Verdict::Check { p.wrap("1;33", &verdict) } else { p.wrap("32", &verdict) };
        out.push_str(&format!(
            "{}  {}  {:>6}  {:>6}  {:>5}  {:>7}  {:>5}\n",
            pad(&t(&a.id), idw),
            verdict,
            fmt_score(c, "ES→EN"),
            fmt_score(c, "EN→ES"),
            c.map(|c| format!("{:.2}", c.length_ratio)).unwrap_or_else(|| "-".into()),
            nums,
            names
        ));
    }
    if !r.stories.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            p.bold(&format!(
                "{}  {:<10}  {:>6}  {:>6}  {:>6}  {:>6}",
                pad("story", idw),
                "verdict",
                "ES→EN",
                "EN→ES",
                "EN/EN",
                "ES/ES"
            ))
        ));
        for s in &r.stories {
            let native = s.checks.iter().find(|c| c.left.lang != c.right.lang);
            let same = |lang: &str| s.checks.iter().find(|c| c.left.lang == lang && c.right.lang == lang);
            let verdict = pad(s.verdict.as_str(), 10);
            let verdict = if s.verdict == Verdict::Check { p.wrap("1;33", &verdict) } else { p.wrap("32", &verdict) };
            out.push_str(&format!(
                "{}  {}  {:>6}  {:>6}  {:>6}  {:>6}\n",
                pad(&t(&s.key), idw),
                verdict,
                fmt_score(native, "ES→EN"),
                fmt_score(native, "EN→ES"),
                fmt_score(same("en"), "chrF"),
                fmt_score(same("es"), "chrF")
            ));
        }
    }
    let t = &r.totals;
    out.push_str(&format!("\narticles: {} consistent, {} check", t.articles_consistent, t.articles_check));
    if t.stories > 0 {
        out.push_str(&format!("; stories: {} consistent, {} check", t.stories_consistent, t.stories_check));
    }
    for (label, mean) in &t.mean_backtranslation_chrf {
        out.push_str(&format!("; mean {label} chrF {mean:.1}"));
    }
    if !r.backtranslation {
        out.push_str("; back-translation skipped");
    }
    out.push('\n');
    out
}

// ---------------------------------------------------------------- JSON

pub(crate) fn json(r: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(r)? + "\n")
}

// ---------------------------------------------------------------- HTML

#[derive(Serialize)]
struct HtmlSide {
    label: String,
    segments: Vec<Segment>,
    back_translation: Option<String>,
    missing: Option<String>,
    /// Each sentence beside its evidence in the article, when the summary was checked.
    support: Vec<crate::compare::report::SentenceView>,
}

#[derive(Serialize)]
struct HtmlPair {
    title: String,
    left: HtmlSide,
    right: HtmlSide,
    scores: Vec<String>,
}

#[derive(Serialize)]
struct HtmlCard {
    anchor: String,
    kind: &'static str,
    id: String,
    title: Option<String>,
    subtitle: Option<String>,
    verdict: &'static str,
    reasons: Vec<String>,
    pairs: Vec<HtmlPair>,
}

#[derive(Serialize)]
struct Bar {
    y: f64,
    width: f64,
    value: String,
    class: &'static str,
    label: String,
}

#[derive(Serialize)]
struct Row {
    y: f64,
    label: String,
    anchor: String,
    check: bool,
}

#[derive(Serialize)]
struct Chart {
    width: f64,
    height: f64,
    left: f64,
    plot: f64,
    bars: Vec<Bar>,
    rows: Vec<Row>,
    threshold_x: f64,
    threshold: String,
    ticks: Vec<(f64, String)>,
}

fn html_pair(c: &PairCheck, title: String) -> HtmlPair {
    let side = |t: &crate::compare::report::Text| HtmlSide {
        label: t.label.clone(),
        segments: segments(&t.text, &t.marks),
        back_translation: t.back_translation.clone(),
        missing: None,
        support: t.support.clone(),
    };
    let mut scores: Vec<String> = c.scores.iter().map(|s| format!("{} {:.1}", s.label, s.chrf)).collect();
    scores.push(format!("length ratio {:.2}", c.length_ratio));
    HtmlPair { title, left: side(&c.left), right: side(&c.right), scores }
}

fn plain_side(label: &str, text: Option<&str>, why: &str) -> HtmlSide {
    HtmlSide {
        label: label.into(),
        segments: text.map(|t| vec![Segment { text: t.into(), mark: false }]).unwrap_or_default(),
        back_translation: None,
        missing: text.is_none().then(|| why.to_string()),
        support: vec![],
    }
}

fn anchor(prefix: &str, n: usize) -> String {
    format!("{prefix}-{n}")
}

/// A horizontal bar chart of the back-translation scores (one row per article with both directions, one
/// per story with its native pair), with the threshold drawn as a line.
fn chart(r: &Report) -> Chart {
    let (left, plot, row_h, bar_h) = (150.0, 300.0, 30.0, 11.0);
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    let mut y = 24.0;
    let mut add =
        |label: &str, anchor: String, check: bool, c: Option<&PairCheck>, rows: &mut Vec<Row>, bars: &mut Vec<Bar>| {
            let Some(c) = c else { return };
            if c.scores.is_empty() {
                return;
            }
            rows.push(Row { y: y + row_h / 2.0, label: label.chars().take(22).collect(), anchor, check });
            for (k, s) in c.scores.iter().enumerate() {
                bars.push(Bar {
                    y: y + 3.0 + k as f64 * (bar_h + 2.0),
                    width: (s.chrf.clamp(0.0, 100.0) / 100.0 * plot).max(1.0),
                    value: format!("{:.0}", s.chrf),
                    class: if s.chrf < s.min {
                        "low"
                    } else if k == 0 {
                        "a"
                    } else {
                        "b"
                    },
                    label: s.label.clone(),
                });
            }
            y += row_h;
        };
    for (i, a) in r.articles.iter().enumerate() {
        add(&a.id, anchor("a", i), a.verdict == Verdict::Check, a.check.as_ref(), &mut rows, &mut bars);
    }
    for (i, s) in r.stories.iter().enumerate() {
        add(
            &format!("story {}", s.key),
            anchor("s", i),
            s.verdict == Verdict::Check,
            s.checks.iter().find(|c| c.left.lang != c.right.lang),
            &mut rows,
            &mut bars,
        );
    }
    let threshold = r.thresholds.backtranslation_chrf_min;
    Chart {
        width: left + plot + 40.0,
        height: y + 24.0,
        left,
        plot,
        bars,
        rows,
        threshold_x: left + threshold / 100.0 * plot,
        threshold: format!("{threshold:.0}"),
        ticks: (0..=4).map(|k| (left + k as f64 * 0.25 * plot, format!("{}", k * 25))).collect(),
    }
}

/// The HTML report: one page, no external resources, every text escaped by the template engine.
pub(crate) fn html(r: &Report) -> Result<String> {
    let mut cards = Vec::new();
    for (i, a) in r.articles.iter().enumerate() {
        let pairs = match &a.check {
            Some(c) => vec![html_pair(c, "EN summary vs ES summary".into())],
            None => vec![HtmlPair {
                title: "EN summary vs ES summary".into(),
                left: plain_side("EN", a.en.as_deref(), "no usable EN summary"),
                right: plain_side("ES", a.es.as_deref(), "no usable ES summary"),
                scores: vec![],
            }],
        };
        cards.push(HtmlCard {
            anchor: anchor("a", i),
            kind: "article",
            id: a.id.clone(),
            title: a.title.clone(),
            subtitle: Some(format!(
                "{}{}",
                a.source,
                a.source_lang.as_deref().map(|l| format!(" · {l}")).unwrap_or_default()
            )),
            verdict: a.verdict.as_str(),
            reasons: a.reasons.clone(),
            pairs,
        });
    }
    for (i, s) in r.stories.iter().enumerate() {
        cards.push(HtmlCard {
            anchor: anchor("s", i),
            kind: "story",
            id: s.key.clone(),
            title: None,
            subtitle: Some(format!(
                "{} + {} (paired by {})",
                s.en_article,
                s.es_article,
                if matches!(s.paired_by, crate::compare::pairs::PairedBy::StoryId) { "story_id" } else { "file stem" }
            )),
            verdict: s.verdict.as_str(),
            reasons: s.reasons.clone(),
            pairs: s.checks.iter().map(|c| html_pair(c, format!("{} vs {}", c.left.label, c.right.label))).collect(),
        });
    }
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("report.html", include_str!("report.html"))?;
    let mean_scores: Vec<String> =
        r.totals.mean_backtranslation_chrf.iter().map(|(l, m)| format!("mean {l} chrF {m:.1}")).collect();
    let page = env.get_template("report.html")?.render(context! {
        report => r,
        cards => cards,
        chart => chart(r),
        mean_scores => mean_scores,
    })?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghijkl", 8), vec!["abcdefgh", "ijkl"]);
        assert_eq!(wrap("", 8), Vec::<String>::new());
    }
}
