//! Countries as a summary names them, from the ISO 3166 data of the `keshvar` crate: every form a country
//! goes by (its English and Spanish names, and the other names the data lists, which a translation back
//! may keep), and the English words for its people ("Cuban", "Japanese"), which English capitalizes and
//! Spanish does not ("cubano"), so that they are not taken for names.
//!
//! Nothing here folds or matches: `text::names` reads these lists its own way.

use std::collections::HashMap;
use std::sync::OnceLock;

/// One country: its names, and the English word for its people when the data has one.
pub(crate) struct Country {
    /// Every name in Latin script, as written, each once; a name the data gives to two countries (the
    /// bare "Korea", "Congo") belongs to neither, so that one never stands for the other.
    pub(crate) names: Vec<&'static str>,
    pub(crate) demonym: Option<&'static str>,
}

/// Every country of the data, read once.
pub(crate) fn all() -> &'static [Country] {
    static ALL: OnceLock<Vec<Country>> = OnceLock::new();
    ALL.get_or_init(read)
}

fn read() -> Vec<Country> {
    let mut countries: Vec<Country> = keshvar::CountryIterator::new()
        .map(|c| {
            let translations = c.translations();
            let mut names: Vec<&'static str> = Vec::new();
            let listed = [c.iso_short_name()]
                .into_iter()
                .chain(["en", "es"].iter().filter_map(|l| translations.get(l).copied()))
                .chain(c.unofficial_name_list().iter().copied());
            for name in listed.map(str::trim) {
                if plain_name(name) && !names.contains(&name) {
                    names.push(name);
                }
            }
            Country { names, demonym: c.maybe_nationality() }
        })
        .collect();
    let mut holders: HashMap<String, usize> = HashMap::new();
    for name in countries.iter().flat_map(|c| c.names.iter()) {
        *holders.entry(name.to_lowercase()).or_default() += 1;
    }
    for c in &mut countries {
        c.names.retain(|n| holders[&n.to_lowercase()] == 1);
    }
    countries
}

/// A name as it stands in running text: Latin letters, spaces, hyphens and apostrophes only. The data's
/// inverted and qualified forms ("Korea, Republic of", "Iran (Islamic Republic of)") are never written so
/// in a sentence, and cut short they would name two countries at once.
fn plain_name(name: &str) -> bool {
    name.chars().any(char::is_alphabetic)
        && name
            .chars()
            .all(|c| c.is_ascii_alphabetic() || (c.is_alphabetic() && (c as u32) < 0x250) || " -'".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(name: &str) -> &'static Country {
        all().iter().find(|c| c.names.contains(&name)).unwrap_or_else(|| panic!("no country named {name}"))
    }

    #[test]
    fn a_country_has_its_english_and_spanish_names_and_its_demonym() {
        let germany = country("Germany");
        assert!(germany.names.contains(&"Alemania"), "{:?}", germany.names);
        assert_eq!(germany.demonym, Some("German"));
        assert!(country("South Korea").names.contains(&"Corea del Sur"));
        assert!(country("Netherlands").names.contains(&"Países Bajos"));
        assert_eq!(country("Cuba").demonym, Some("Cuban"));
    }

    #[test]
    fn forms_that_name_two_countries_or_do_not_stand_in_text_are_left_out() {
        for c in all() {
            assert!(!c.names.iter().any(|n| n.contains(',') || n.contains('(')), "{:?}", c.names);
        }
        let korea = |n: &str| all().iter().filter(|c| c.names.iter().any(|x| x.eq_ignore_ascii_case(n))).count();
        assert_eq!(korea("Korea"), 0);
        assert_eq!(korea("North Korea"), 1);
        assert!(all().len() > 200);
    }
}
