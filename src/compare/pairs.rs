//! Parallel stories: two inputs that are one story in English and in Spanish, found by the same `story_id`
//! or by the same stem with language suffixes (`story.en.txt` and `story.es.txt` give the ids `story.en`
//! and `story.es`).

use crate::compare::record;
use crate::job::record::ArticleRecord;
use crate::text::lang::Lang;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PairedBy {
    StoryId,
    Stem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoryPair {
    /// The story_id, or the shared stem.
    pub(crate) key: String,
    pub(crate) by: PairedBy,
    /// Index of the English article in the records.
    pub(crate) en: usize,
    pub(crate) es: usize,
}

/// The language suffix of an id ("dir/story.en" → ("dir/story", "en")).
fn split_suffix(id: &str) -> Option<(&str, &str)> {
    let (stem, suffix) = id.rsplit_once('.')?;
    // The suffix belongs to the last path component only.
    if stem.is_empty() || stem.ends_with('/') || suffix.contains('/') {
        return None;
    }
    matches!(suffix, "en" | "es").then_some((stem, suffix))
}

/// Find the parallel stories among `records`; `warnings` gets a line for every ambiguous group.
pub(crate) fn find(records: &[ArticleRecord], warnings: &mut Vec<String>) -> Vec<StoryPair> {
    let mut pairs = Vec::new();
    let mut used = vec![false; records.len()];

    // 1. story_id: within a group, the English and the Spanish article by their language.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(sid) = r.story_id.as_deref().filter(|s| !s.is_empty()) {
            match groups.iter_mut().find(|(k, _)| *k == sid) {
                Some((_, v)) => v.push(i),
                None => groups.push((sid, vec![i])),
            }
        }
    }
    for (sid, members) in groups {
        let lang_of = |i: usize| {
            record::lang(&records[i]).or_else(|| split_suffix(&records[i].id).and_then(|(_, l)| l.parse().ok()))
        };
        let en: Vec<usize> = members.iter().copied().filter(|&i| lang_of(i) == Some(Lang::En)).collect();
        let es: Vec<usize> = members.iter().copied().filter(|&i| lang_of(i) == Some(Lang::Es)).collect();
        if en.is_empty() || es.is_empty() {
            if members.len() > 1 {
                warnings.push(format!(
                    "story_id {sid}: {} articles but not one English and one Spanish; not paired",
                    members.len()
                ));
            }
            continue;
        }
        if en.len() > 1 || es.len() > 1 {
            warnings.push(format!(
                "story_id {sid}: {} English and {} Spanish articles; pairing {} with {}",
                en.len(),
                es.len(),
                records[en[0]].id,
                records[es[0]].id
            ));
        }
        used[en[0]] = true;
        used[es[0]] = true;
        pairs.push(StoryPair { key: sid.to_string(), by: PairedBy::StoryId, en: en[0], es: es[0] });
    }

    // 2. Stems with .en / .es suffixes, among the articles not paired by story_id.
    for (i, r) in records.iter().enumerate() {
        if used[i] {
            continue;
        }
        let Some((stem, "en")) = split_suffix(&r.id) else { continue };
        let partner = records
            .iter()
            .enumerate()
            .find(|(j, o)| !used[*j] && split_suffix(&o.id) == Some((stem, "es")))
            .map(|(j, _)| j);
        if let Some(j) = partner {
            used[i] = true;
            used[j] = true;
            pairs.push(StoryPair { key: stem.to_string(), by: PairedBy::Stem, en: i, es: j });
        }
    }
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, lang: Option<&str>, story: Option<&str>) -> ArticleRecord {
        ArticleRecord {
            id: id.into(),
            source_lang: lang.map(|l| l.parse().unwrap()),
            story_id: story.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn pairs_by_stem_suffix() {
        let recs = vec![
            rec("news/quake.en", Some("en"), None),
            rec("other.en", None, None),
            rec("news/quake.es", Some("es"), None),
            rec("quake.es", None, None),
        ];
        let mut w = vec![];
        let p = find(&recs, &mut w);
        assert_eq!(p, vec![StoryPair { key: "news/quake".into(), by: PairedBy::Stem, en: 0, es: 2 }]);
        assert!(w.is_empty());
    }

    #[test]
    fn pairs_by_story_id_before_stems() {
        let recs = vec![
            rec("feed/3", Some("es"), Some("s-1")),
            rec("feed/1", Some("en"), Some("s-1")),
            rec("feed/2", Some("en"), Some("s-2")),
            rec("a.en", Some("en"), None),
            rec("a.es", Some("es"), None),
        ];
        let mut w = vec![];
        let p = find(&recs, &mut w);
        assert_eq!(
            p,
            vec![
                StoryPair { key: "a".into(), by: PairedBy::Stem, en: 3, es: 4 },
                StoryPair { key: "s-1".into(), by: PairedBy::StoryId, en: 1, es: 0 },
            ]
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn ambiguous_story_id_is_warned() {
        let recs =
            vec![rec("x", Some("en"), Some("s")), rec("y", Some("en"), Some("s")), rec("z", Some("es"), Some("s"))];
        let mut w = vec![];
        let p = find(&recs, &mut w);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].en, p[0].es), (0, 2));
        assert_eq!(w.len(), 1);
        let recs = vec![rec("x", Some("en"), Some("s")), rec("y", Some("en"), Some("s"))];
        assert!(find(&recs, &mut w).is_empty());
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn suffix_only_on_last_component() {
        assert_eq!(split_suffix("a.en"), Some(("a", "en")));
        assert_eq!(split_suffix("dir.en/a"), None);
        assert_eq!(split_suffix(".en"), None);
        assert_eq!(split_suffix("a.fr"), None);
    }
}
