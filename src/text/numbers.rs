//! Numbers in a summary, normalized so that the same quantity matches across English and Spanish.
//!
//! - Digits: "14,000" = "14.000" = "14 000" = 14000; a separator followed by exactly three digits (in a
//!   consistent 1–3 digit + 3-digit grouping) is a thousands separator in both conventions, any other
//!   separator is the decimal mark ("3,5" = "3.5"). "1,234.5" and "1.234,5" both read 1234.5: when both
//!   marks occur, the last one is the decimal mark.
//! - Percentages: "12%", "12 %", "12 percent", "12 per cent", "12 por ciento" (matched on the value).
//! - Number words up to the millions and beyond in both languages: "sixty-five", "one hundred and twenty",
//!   "sesenta y cinco", "dos mil", "doscientos treinta", "tres millones", and digits with a scale word:
//!   "14 million", "3,5 millones", "2.000 millones" (Spanish "mil millones" is 10⁹, "billón" 10¹²).
//! - A lone "one" / "un" / "una" / "uno" is not taken as a number: it is an article or pronoun far more often.

/// One number found in a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Number {
    /// The normalized value.
    pub(crate) value: f64,
    /// Written as a percentage.
    pub(crate) percent: bool,
    /// The text as written.
    pub(crate) surface: String,
    /// Byte range of `surface` in the text.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Number {
    /// The key two numbers match on: the value, to a thousandth.
    pub(crate) fn key(&self) -> i64 {
        (self.value * 1000.0).round() as i64
    }
}

pub(crate) use crate::text::lang::Lang;

#[derive(Debug, Clone)]
enum Tok {
    /// A numeral as written with digits, already normalized.
    Digits(f64),
    Word(String),
    Percent,
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn is_group_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}')
}

/// Parse a numeral starting at `i` (a digit); returns its value and end byte.
fn scan_numeral(text: &str, i: usize) -> (f64, usize) {
    let b = text.as_bytes();
    let digits_at = |p: usize| -> usize { b[p..].iter().take_while(|c| c.is_ascii_digit()).count() };
    let first = digits_at(i);
    let mut groups: Vec<&str> = vec![&text[i..i + first]];
    let mut seps: Vec<char> = Vec::new();
    let mut p = i + first;
    while let Some(c) = text[p..].chars().next() {
        if !(c == ',' || c == '.' || is_group_space(c)) {
            break;
        }
        let q = p + c.len_utf8();
        let n = if q < b.len() { digits_at(q) } else { 0 };
        if n == 0 {
            break;
        }
        // A space only groups thousands: a 1–3 digit group followed by exactly three digits.
        if is_group_space(c) && (n != 3 || groups.last().unwrap().len() > 3 || seps.iter().any(|s| !is_group_space(*s)))
        {
            break;
        }
        seps.push(c);
        groups.push(&text[q..q + n]);
        p = q + n;
    }
    let value = interpret(&groups, &seps);
    (value, p)
}

/// Read digit groups joined by separators as one number (see the module notes).
fn interpret(groups: &[&str], seps: &[char]) -> f64 {
    let parse = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    if seps.is_empty() {
        return parse(groups[0]);
    }
    let norm = |c: char| if is_group_space(c) { ' ' } else { c };
    let last = norm(*seps.last().unwrap());
    let mixed = seps.iter().any(|&c| norm(c) != last);
    // With two kinds of mark, the last one is the decimal mark and the others group thousands.
    let (int_groups, frac): (&[&str], Option<&str>) = if mixed {
        (&groups[..groups.len() - 1], Some(groups[groups.len() - 1]))
    } else {
        let thousands = groups[0].len() <= 3
            && groups[0] != "0"
            && groups[1..].iter().all(|g| g.len() == 3)
            // A repeated mark ("1.234.567") can only be grouping; a single one with three digits is read as
            // grouping too, in both conventions.
            && (seps.len() > 1 || groups[1].len() == 3);
        if thousands || last == ' ' {
            (groups, None)
        } else if seps.len() == 1 {
            (&groups[..1], Some(groups[1]))
        } else {
            // "1.2.3": not a number format; keep the first group only.
            (&groups[..1], None)
        }
    };
    let int: String = int_groups.concat();
    match frac {
        Some(f) => parse(&format!("{int}.{f}")),
        None => parse(&int),
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        if c.is_ascii_digit() {
            let (value, end) = scan_numeral(text, i);
            out.push(Token { tok: Tok::Digits(value), start: i, end });
            while it.peek().is_some_and(|&(j, _)| j < end) {
                it.next();
            }
        } else if c.is_alphabetic() {
            let mut end = i;
            while let Some(&(j, d)) = it.peek() {
                if d.is_alphabetic() {
                    end = j + d.len_utf8();
                    it.next();
                } else {
                    break;
                }
            }
            // Hyphenated number words ("sixty-five") become separate words.
            out.push(Token { tok: Tok::Word(text[i..end].to_lowercase()), start: i, end });
        } else if c == '%' {
            out.push(Token { tok: Tok::Percent, start: i, end: i + 1 });
            it.next();
        } else if c.is_whitespace() || c == '-' {
            it.next();
        } else {
            out.push(Token { tok: Tok::Other, start: i, end: i + c.len_utf8() });
            it.next();
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum W {
    /// 0–99 (units, teens, tens, Spanish compounds like "veintitrés").
    Small(u64),
    /// A tens word that can take "y" + unit in Spanish.
    Tens(u64),
    /// English "hundred": multiplies the group.
    Hundred,
    /// Spanish "cien", "doscientos", ...: adds to the group.
    Hundreds(u64),
    /// "thousand" / "mil".
    Thousand,
    /// million and above.
    Scale(f64),
}

fn word(lang: Lang, w: &str) -> Option<W> {
    use W::*;
    let en = |w: &str| -> Option<W> {
        Some(match w {
            "zero" => Small(0),
            "one" => Small(1),
            "two" => Small(2),
            "three" => Small(3),
            "four" => Small(4),
            "five" => Small(5),
            "six" => Small(6),
            "seven" => Small(7),
            "eight" => Small(8),
            "nine" => Small(9),
            "ten" => Small(10),
            "eleven" => Small(11),
            "twelve" => Small(12),
            "thirteen" => Small(13),
            "fourteen" => Small(14),
            "fifteen" => Small(15),
            "sixteen" => Small(16),
            "seventeen" => Small(17),
            "eighteen" => Small(18),
            "nineteen" => Small(19),
            "twenty" => Tens(20),
            "thirty" => Tens(30),
            "forty" => Tens(40),
            "fifty" => Tens(50),
            "sixty" => Tens(60),
            "seventy" => Tens(70),
            "eighty" => Tens(80),
            "ninety" => Tens(90),
            "hundred" => Hundred,
            "thousand" => Thousand,
            "million" | "millions" => Scale(1e6),
            "billion" | "billions" => Scale(1e9),
            "trillion" | "trillions" => Scale(1e12),
            _ => return None,
        })
    };
    let es = |w: &str| -> Option<W> {
        let w = fold_accents(w);
        Some(match w.as_str() {
            "cero" => Small(0),
            "un" | "uno" | "una" => Small(1),
            "dos" => Small(2),
            "tres" => Small(3),
            "cuatro" => Small(4),
            "cinco" => Small(5),
            "seis" => Small(6),
            "siete" => Small(7),
            "ocho" => Small(8),
            "nueve" => Small(9),
            "diez" => Small(10),
            "once" => Small(11),
            "doce" => Small(12),
            "trece" => Small(13),
            "catorce" => Small(14),
            "quince" => Small(15),
            "dieciseis" => Small(16),
            "diecisiete" => Small(17),
            "dieciocho" => Small(18),
            "diecinueve" => Small(19),
            "veinte" => Small(20),
            "veintiun" | "veintiuno" | "veintiuna" => Small(21),
            "veintidos" => Small(22),
            "veintitres" => Small(23),
            "veinticuatro" => Small(24),
            "veinticinco" => Small(25),
            "veintiseis" => Small(26),
            "veintisiete" => Small(27),
            "veintiocho" => Small(28),
            "veintinueve" => Small(29),
            "treinta" => Tens(30),
            "cuarenta" => Tens(40),
            "cincuenta" => Tens(50),
            "sesenta" => Tens(60),
            "setenta" => Tens(70),
            "ochenta" => Tens(80),
            "noventa" => Tens(90),
            "cien" | "ciento" => Hundreds(100),
            "doscientos" | "doscientas" => Hundreds(200),
            "trescientos" | "trescientas" => Hundreds(300),
            "cuatrocientos" | "cuatrocientas" => Hundreds(400),
            "quinientos" | "quinientas" => Hundreds(500),
            "seiscientos" | "seiscientas" => Hundreds(600),
            "setecientos" | "setecientas" => Hundreds(700),
            "ochocientos" | "ochocientas" => Hundreds(800),
            "novecientos" | "novecientas" => Hundreds(900),
            "mil" => Thousand,
            "millon" | "millones" => Scale(1e6),
            "billon" | "billones" => Scale(1e12),
            _ => return None,
        })
    };
    // Languages without their own number words read as English.
    match lang {
        Lang::Es => es(w),
        _ => en(w),
    }
}

/// Lowercase ASCII-ish folding of Spanish accents (á→a, ñ kept as n), for matching words and names.
pub(crate) fn fold_accents(s: &str) -> String {
    s.chars()
        .flat_map(|c| c.to_lowercase())
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' | 'ã' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            c => c,
        })
        .collect()
}

/// Accumulates a number phrase: `total` (millions and up) + `thousands` + `group` (< 1000).
#[derive(Default)]
struct Acc {
    total: f64,
    thousands: f64,
    group: f64,
    words: usize,
    has_digits: bool,
    lone_one: bool,
}

impl Acc {
    fn value(&self) -> f64 {
        self.total + self.thousands + self.group
    }
}

/// Every number in `text`, read as `lang`.
pub(crate) fn extract(text: &str, lang: Lang) -> Vec<Number> {
    let toks = tokenize(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let start_tok = i;
        let mut acc = Acc::default();
        let mut last: Option<W> = None;
        let mut j = i;
        // A numeral may start a phrase ("14 million", "3,5 millones", "2.000 millones").
        if let Tok::Digits(v) = toks[j].tok {
            acc.group = v;
            acc.has_digits = true;
            j += 1;
            // Only scale words may follow digits.
            while j < toks.len() {
                let Tok::Word(w) = &toks[j].tok else { break };
                match word(lang, w) {
                    Some(W::Thousand) if lang == Lang::Es || w == "thousand" => {
                        acc.thousands = (acc.thousands + acc.group) * 1000.0;
                        acc.group = 0.0;
                    }
                    Some(W::Scale(s)) => {
                        acc.total += (acc.thousands + acc.group) * s;
                        acc.thousands = 0.0;
                        acc.group = 0.0;
                    }
                    Some(W::Hundred) => acc.group *= 100.0,
                    _ => break,
                }
                j += 1;
            }
        } else {
            while j < toks.len() {
                let Tok::Word(w) = &toks[j].tok else { break };
                // Connectors: English "and" after a hundred/thousand, Spanish "y" after a tens word.
                if (lang == Lang::En && w == "and" && matches!(last, Some(W::Hundred | W::Thousand | W::Scale(_))))
                    || (lang == Lang::Es && w == "y" && matches!(last, Some(W::Tens(_))))
                {
                    let next_ok = match toks.get(j + 1).map(|t| &t.tok) {
                        Some(Tok::Word(n)) => match word(lang, n) {
                            Some(W::Small(v)) => lang == Lang::En || (1..=9).contains(&v),
                            Some(W::Tens(_)) => lang == Lang::En,
                            _ => false,
                        },
                        _ => false,
                    };
                    if next_ok {
                        j += 1;
                        continue;
                    }
                    break;
                }
                let Some(wv) = word(lang, w) else { break };
                // "one hundred" and "un millón" are fine; "twenty twenty" is two numbers.
                let fits = match (last, wv) {
                    (None, _) => true,
                    (Some(W::Small(_)), W::Small(_) | W::Tens(_)) => false,
                    (Some(W::Tens(_)), W::Small(v)) => {
                        v < 10 && lang == Lang::En || (lang == Lang::Es && v < 10 && toks[j - 1].tok_is_word("y"))
                    }
                    (Some(W::Tens(_)), W::Tens(_)) => false,
                    (Some(W::Hundreds(_)), W::Hundreds(_) | W::Hundred) => false,
                    (Some(W::Hundred), W::Hundred) => false,
                    _ => true,
                };
                if !fits {
                    break;
                }
                match wv {
                    W::Small(v) | W::Tens(v) => acc.group += v as f64,
                    W::Hundreds(v) => acc.group += v as f64,
                    W::Hundred => acc.group = acc.group.max(1.0) * 100.0,
                    W::Thousand => {
                        acc.thousands += acc.group.max(1.0) * 1000.0;
                        acc.group = 0.0;
                        // Spanish "dos mil millones": "mil" stays in the group that a scale word multiplies.
                    }
                    W::Scale(s) => {
                        acc.total += (acc.thousands + acc.group).max(1.0) * s;
                        acc.thousands = 0.0;
                        acc.group = 0.0;
                    }
                }
                acc.words += 1;
                acc.lone_one = acc.words == 1 && matches!(wv, W::Small(1));
                last = Some(wv);
                j += 1;
            }
            if acc.words == 1 && acc.lone_one {
                // A lone "one" / "un": an article or pronoun, not a figure.
                i += 1;
                continue;
            }
        }
        if j == start_tok {
            i += 1;
            continue;
        }
        // A trailing connector was not consumed (the loop breaks before it), so toks[j-1] is a number token.
        let mut end = toks[j - 1].end;
        let mut percent = false;
        match toks.get(j).map(|t| &t.tok) {
            Some(Tok::Percent) => {
                percent = true;
                end = toks[j].end;
                j += 1;
            }
            Some(Tok::Word(w)) if w == "percent" || w == "porciento" => {
                percent = true;
                end = toks[j].end;
                j += 1;
            }
            Some(Tok::Word(w))
                if (w == "per" || w == "por")
                    && toks.get(j + 1).is_some_and(|t| t.tok_is_word(if w == "per" { "cent" } else { "ciento" })) =>
            {
                percent = true;
                end = toks[j + 1].end;
                j += 2;
            }
            _ => {}
        }
        let value = acc.value();
        let _ = acc.has_digits;
        out.push(Number {
            value,
            percent,
            surface: text[toks[start_tok].start..end].to_string(),
            start: toks[start_tok].start,
            end,
        });
        i = j;
    }
    out
}

impl Token {
    fn tok_is_word(&self, w: &str) -> bool {
        matches!(&self.tok, Tok::Word(x) if x == w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, lang: Lang) -> Vec<f64> {
        extract(text, lang).iter().map(|n| n.value).collect()
    }

    #[test]
    fn thousands_separators_in_both_conventions() {
        assert_eq!(values("About 14,000 people", Lang::En), vec![14000.0]);
        assert_eq!(values("Unas 14.000 personas", Lang::Es), vec![14000.0]);
        assert_eq!(values("Unas 14 000 personas", Lang::Es), vec![14000.0]);
        assert_eq!(values("Unas 14\u{a0}000 personas", Lang::Es), vec![14000.0]);
        assert_eq!(values("1,234,567 votes and 1.234.567 votos", Lang::En), vec![1234567.0, 1234567.0]);
        assert_eq!(values("In 2019 the plan", Lang::En), vec![2019.0]);
    }

    #[test]
    fn decimals_in_both_conventions() {
        assert_eq!(values("grew 3.5 points", Lang::En), vec![3.5]);
        assert_eq!(values("creció 3,5 puntos", Lang::Es), vec![3.5]);
        assert_eq!(values("1,234.5 and 1.234,5", Lang::En), vec![1234.5, 1234.5]);
        assert_eq!(values("0,750", Lang::Es), vec![0.75]);
        // A sentence-ending period or a list comma is not a decimal mark.
        assert_eq!(values("It cost 40. Then 12, 13 and 14.", Lang::En), vec![40.0, 12.0, 13.0, 14.0]);
    }

    #[test]
    fn percentages() {
        let en = extract("Unemployment fell to 12% and then 3.5 percent, or 7 per cent.", Lang::En);
        assert_eq!(
            en.iter().map(|n| (n.value, n.percent)).collect::<Vec<_>>(),
            vec![(12.0, true), (3.5, true), (7.0, true)]
        );
        assert_eq!(en[0].surface, "12%");
        assert_eq!(en[2].surface, "7 per cent");
        let es = extract("El paro bajó al 12 % y al 3,5 por ciento.", Lang::Es);
        assert_eq!(es.iter().map(|n| (n.value, n.percent)).collect::<Vec<_>>(), vec![(12.0, true), (3.5, true)]);
        assert_eq!(es[1].surface, "3,5 por ciento");
    }

    #[test]
    fn english_number_words() {
        assert_eq!(values("sixty-five people", Lang::En), vec![65.0]);
        assert_eq!(values("sixty five people", Lang::En), vec![65.0]);
        assert_eq!(values("two thousand homes", Lang::En), vec![2000.0]);
        assert_eq!(values("one hundred and twenty days", Lang::En), vec![120.0]);
        assert_eq!(values("three hundred thousand two hundred", Lang::En), vec![300200.0]);
        assert_eq!(values("two million five hundred thousand", Lang::En), vec![2500000.0]);
        assert_eq!(values("14 million dollars and 1.5 billion", Lang::En), vec![14e6, 1.5e9]);
        assert_eq!(values("twelve", Lang::En), vec![12.0]);
        // Lone "one" is a pronoun far more often than a figure; "one million" is a figure.
        assert_eq!(values("One of them said one million", Lang::En), vec![1e6]);
        // "and" only joins inside a number.
        assert_eq!(values("five and six", Lang::En), vec![5.0, 6.0]);
    }

    #[test]
    fn spanish_number_words() {
        assert_eq!(values("sesenta y cinco personas", Lang::Es), vec![65.0]);
        assert_eq!(values("dos mil viviendas", Lang::Es), vec![2000.0]);
        assert_eq!(values("veintitrés años", Lang::Es), vec![23.0]);
        assert_eq!(values("doscientos treinta y cuatro", Lang::Es), vec![234.0]);
        assert_eq!(values("ciento veinte días", Lang::Es), vec![120.0]);
        assert_eq!(values("tres millones doscientos mil", Lang::Es), vec![3200000.0]);
        assert_eq!(values("dos mil millones", Lang::Es), vec![2e9]);
        assert_eq!(values("un millón de euros", Lang::Es), vec![1e6]);
        assert_eq!(values("14 millones y 3,5 millones y 2.000 millones", Lang::Es), vec![14e6, 3.5e6, 2e9]);
        assert_eq!(values("14 mil", Lang::Es), vec![14000.0]);
        // Articles are not figures; "y" between two units is a conjunction.
        assert_eq!(values("Un hombre y una mujer", Lang::Es), Vec::<f64>::new());
        assert_eq!(values("cinco y seis", Lang::Es), vec![5.0, 6.0]);
    }

    #[test]
    fn same_quantity_same_key_across_languages() {
        let pairs = [
            ("14,000 homes", "14.000 viviendas"),
            ("sixty-five votes", "sesenta y cinco votos"),
            ("65 votes", "sesenta y cinco votos"),
            ("two thousand", "dos mil"),
            ("3.5%", "3,5 %"),
            ("$2 billion", "2.000 millones de dólares"),
        ];
        for (en, es) in pairs {
            let a: Vec<i64> = extract(en, Lang::En).iter().map(|n| n.key()).collect();
            let b: Vec<i64> = extract(es, Lang::Es).iter().map(|n| n.key()).collect();
            assert_eq!(a, b, "{en:?} vs {es:?}");
            assert_eq!(a.len(), 1);
        }
    }

    #[test]
    fn surfaces_and_spans() {
        let text = "Mexico will build 14,000 homes, sesenta y cinco";
        let n = extract(text, Lang::En);
        assert_eq!(n[0].surface, "14,000");
        assert_eq!(&text[n[0].start..n[0].end], "14,000");
        let es = extract("con sesenta y cinco votos", Lang::Es);
        assert_eq!(es[0].surface, "sesenta y cinco");
    }
}
