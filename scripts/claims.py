"""Claims for the checker benchmark (`scripts/eval --sets claims-real,claims-edited`).

  scripts/claims.py edited [--split dev] [--seed 18] [--per-lang 330] [--negatives 200] --out FILE
      Article sentences with one controlled edit each (a person, place, number, day/month/year swapped, who
      did what swapped, a negation added or removed), and unedited sentences of the same articles as the
      negatives for the false-alarm rate. Deterministic: the same data and seed give the same file.

  scripts/claims.py draft-real --summaries OUT --translations OUT... --out FILE
      The sentences of polysum's own summaries and translations as unlabelled rows, ready to be labelled by
      reading each against its article (eval/claims/real-dev.jsonl is that, labelled).

Every row names its article by `source_set`, `source_id` and `article_field` in the shared evaluation data
(`../shared/eval/<split>/<source_set>.jsonl`); scripts/eval looks the article up there.
"""

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaltext import fold, paragraph_sentences, sentences  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Where each language's article sentences come from: (set, field). The long-* sets are subsets of these.
SOURCES = {
    "en": [("news-en", "text"), ("parallel-stories", "text")],
    "es": [("news-es", "text"), ("parallel-stories", "tgt_text")],
}

EDITS = ["person", "place", "number", "date", "role", "negation"]

WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "es": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
}
MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
}
NUMBER_WORDS = {
    "en": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen",
           "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "billion"],
    "es": ["dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce", "quince",
           "veinte", "treinta", "cuarenta", "cincuenta", "cien", "mil", "millones", "millón"],
}
# Word numbers swap only within their scale: "three" for "seven", "million" for "billion".
NUMBER_GROUPS = {
    "en": [NUMBER_WORDS["en"][:16], ["hundred", "thousand"], ["million", "billion"]],
    "es": [NUMBER_WORDS["es"][:16], ["cien", "mil"], ["millones"], ["millón"]],
}

# Places by kind, so that a swap stays grammatical (a country for a country). Names that are also common
# surnames or words (Jordan, Washington, Chad, Georgia) are left out.
PLACES = {
    "en": {
        "country": ["Afghanistan", "Argentina", "Australia", "Austria", "Belgium", "Brazil", "Canada", "Chile",
                    "China", "Colombia", "Cuba", "Denmark", "Egypt", "England", "Ethiopia", "Finland", "France",
                    "Germany", "Greece", "India", "Indonesia", "Iran", "Iraq", "Ireland", "Israel", "Italy",
                    "Japan", "Kenya", "Lebanon", "Libya", "Mexico", "Morocco", "Nepal", "Nigeria", "North Korea",
                    "Norway", "Pakistan", "Peru", "Poland", "Portugal", "Russia", "Saudi Arabia", "Scotland",
                    "South Africa", "South Korea", "Spain", "Sweden", "Switzerland", "Syria", "Turkey",
                    "Ukraine", "Venezuela", "Vietnam", "Wales", "Yemen"],
        "city": ["Amsterdam", "Athens", "Atlanta", "Baghdad", "Bangkok", "Barcelona", "Beijing", "Berlin",
                 "Boston", "Brussels", "Cairo", "Chicago", "Dallas", "Denver", "Detroit", "Dublin", "Edinburgh",
                 "Glasgow", "Houston", "Istanbul", "Jerusalem", "Kabul", "Las Vegas", "Lisbon", "London",
                 "Los Angeles", "Madrid", "Manchester", "Miami", "Moscow", "Mumbai", "New Delhi", "New York",
                 "Orlando", "Paris", "Philadelphia", "Rome", "San Francisco", "Seattle", "Seoul", "Singapore",
                 "Sydney", "Tehran", "Tokyo", "Toronto", "Vienna"],
        "state": ["Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Florida",
                  "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
                  "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana",
                  "Nebraska", "Nevada", "New Jersey", "New Mexico", "Ohio", "Oklahoma", "Oregon",
                  "Pennsylvania", "Tennessee", "Texas", "Utah", "Vermont", "Virginia", "Wisconsin"],
    },
    "es": {
        "country": ["Afganistán", "Alemania", "Argentina", "Australia", "Austria", "Bélgica", "Brasil", "Canadá",
                    "Chile", "China", "Colombia", "Corea del Norte", "Corea del Sur", "Cuba", "Dinamarca",
                    "Egipto", "Escocia", "Estados Unidos", "Finlandia", "Francia", "Grecia", "India",
                    "Indonesia", "Inglaterra", "Irak", "Irán", "Irlanda", "Israel", "Italia", "Japón", "Kenia",
                    "Líbano", "Libia", "Marruecos", "México", "Nigeria", "Noruega", "Pakistán", "Perú",
                    "Polonia", "Portugal", "Reino Unido", "Rusia", "Siria", "Sudáfrica", "Suecia", "Suiza",
                    "Turquía", "Ucrania", "Venezuela", "Vietnam"],
        "city": ["Ámsterdam", "Atenas", "Barcelona", "Berlín", "Bilbao", "Bogotá", "Bruselas", "Buenos Aires",
                 "Cádiz", "Caracas", "Córdoba", "Dublín", "Estambul", "Granada", "Lima", "Lisboa", "Londres",
                 "Madrid", "Málaga", "Moscú", "Múnich", "Nueva York", "Oviedo", "Pamplona", "París", "Pekín",
                 "Roma", "Salamanca", "San Sebastián", "Santander", "Santiago", "Sevilla", "Tokio", "Toledo",
                 "Valencia", "Valladolid", "Viena", "Washington", "Zaragoza"],
        "region": ["Andalucía", "Aragón", "Asturias", "Cantabria", "Castilla-La Mancha", "Castilla y León",
                   "Cataluña", "Extremadura", "Galicia", "Murcia", "Navarra", "País Vasco"],
    },
}

# Capitalized words that start no person's name: titles, articles, function words, institutions.
NOT_FIRST_NAME = set(fold(w) for w in """
the a an this that these those it its he she they we i you his her their our in on at of for by to from with
and but or as if when while after before during mr mrs ms dr sir lord lady president prime minister secretary
senator sen rep gov governor judge justice gen general col sgt lt capt officer police chief king queen prince
princess pope saint st mount lake river coach manager captain skipper professor doctor
so then now yes no oh well also even just here there what who why how north south east west new old great united national state federal
first second last former vice deputy democratic republican labour conservative liberal party army navy
el la los las un una unos unas este esta estos estas ese esa del al en con por para sin sobre tras según
pero y o ni que como cuando donde señor señora don doña presidente ministro ministra rey reina papa san santa
gobierno partido general juez jueza senador senadora diputado diputada alcalde alcaldesa secretario secretaria
american british english french german spanish italian chinese japanese russian pakistani indian christian
muslim jewish catholic islamic arab african european asian mexican canadian australian irish scottish welsh
syrian iranian iraqi israeli palestinian korean democrat democrats republicans senate house congress court
supreme church university college school street road avenue hospital department ministry club city fc cup
league premier champions games olympic olympics county airport station center centre institute foundation
company group news times post journal channel network council committee commission union
español española inglés francés alemán americano congreso senado tribunal supremo universidad calle ministerio
consejero consejera portavoz director directora doctora profesor profesora entrenador capitán sr sra
""".split())
NOT_FIRST_NAME |= set(fold(w) for lang in WEEKDAYS for w in WEEKDAYS[lang] + MONTHS[lang])
for _lang in PLACES:
    for _kind in PLACES[_lang].values():
        for _p in _kind:
            NOT_FIRST_NAME |= set(fold(w) for w in _p.split())

CAP = r"[A-ZÁÉÍÓÚÑ][a-záéíóúñüç'’-]+"
PERSON = re.compile(rf"(?<![\w’']){CAP}(?: {CAP}){{1,2}}(?![\w])")


def word_re(phrase):
    """A regex for a phrase as whole words, case-insensitive."""
    return re.compile(rf"(?<![\w]){re.escape(phrase)}(?![\w])", re.IGNORECASE)


def occurs(phrase, text):
    """Whether a phrase occurs in a text as whole words, ignoring case and accents."""
    return bool(word_re(fold(phrase)).search(fold(text)))


def alone_spans(word, text):
    """Spans where a name word stands alone, not inside a longer capitalized sequence ("Terry said", not
    "Gary Terry" or "Terry Jones")."""
    out = []
    for m in re.finditer(rf"(?<![\w’']){re.escape(word)}(?![\w’'-])", text):
        before = text[: m.start()]
        prev = re.search(rf"{CAP}\s$", before) if before.endswith(" ") else None
        if prev or re.match(rf"\s{CAP}", text[m.end():]):
            continue
        out.append((m.start(), m.end()))
    return out


def persons(article):
    """Full names in an article ("Gary Terry"): two or three capitalized words, none a title or function
    word, whose last word also occurs alone as a name elsewhere ("Terry said") — how news names a person."""
    out = {}
    for m in PERSON.finditer(article):
        words = m.group(0).split()
        # A sentence-initial "The Lamborghini" or "In Paris" starts with a stop word: drop it.
        while words and fold(words[0]) in NOT_FIRST_NAME:
            words = words[1:]
        if len(words) < 2 or any(fold(w) in NOT_FIRST_NAME or not re.fullmatch(r"[^\W\d_]{2,}(?:[-’'][^\W\d_]+)*", w)
                                 for w in words[:-1]):
            continue
        # A word also written in lower case in the article is a common word, not a name ("So", "Giants").
        if any(re.search(rf"(?<![\w]){re.escape(w.lower())}(?![\w])", article) for w in words):
            continue
        surname = re.sub(r"['’]s$", "", words[-1])
        if fold(surname) in NOT_FIRST_NAME or not re.fullmatch(r"[^\W\d_]{2,}(?:[-’'][^\W\d_]+)*", surname):
            continue
        words[-1] = surname
        rest = article[: m.start()] + "\n" + article[m.end():]
        if alone_spans(surname, rest):
            out[" ".join(words)] = surname
    return out


def find_places(lang, text):
    """(kind, place, start, end) for gazetteer places in a text, skipping those inside a longer name
    ("New York Times", "Real Madrid")."""
    found = []
    for kind, names in PLACES[lang].items():
        for name in names:
            for m in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
                before = text[: m.start()].split()
                # A capitalized word right before it, other than the text's first word ("In Paris").
                inside_after = re.match(rf" {CAP}", text[m.end():])
                inside_before = (len(before) > 1 and re.fullmatch(CAP, before[-1])
                                 and text[m.start() - 1] == " " and not before[-2].endswith((".", "!", "?")))
                if inside_after or inside_before:
                    continue
                found.append((kind, name, m.start(), m.end()))
    # Longest first, so "North Korea" wins over "Korea", and no overlaps.
    found.sort(key=lambda f: (f[2], -(f[3] - f[2])))
    out, end = [], -1
    for f in found:
        if f[2] >= end:
            out.append(f)
            end = f[3]
    return out


def replace_span(text, start, end, new):
    return text[:start] + new + text[end:]


def match_case(new, old):
    return new[0].upper() + new[1:] if old[:1].isupper() else new


class Editor:
    """The edits of one language, with the pools they draw replacements from."""

    def __init__(self, lang, person_pool, rng):
        self.lang = lang
        self.person_pool = person_pool
        self.rng = rng

    def person(self, sent, article, people):
        spans = []
        for full, surname in sorted(people.items()):
            for m in re.finditer(rf"(?<![\w]){re.escape(full)}(?![\w])", sent):
                spans.append((m.start(), m.end(), "full", full))
            for start, end in alone_spans(surname, sent):
                spans.append((start, end, "surname", surname))
        if not spans:
            return None
        start, end, form, old = self.rng.choice(sorted(spans))
        candidates = [p for p in self.person_pool if not any(occurs(w, article) for w in p.split())]
        if not candidates:
            return None
        new = self.rng.choice(candidates)
        if form == "surname":
            new = new.split()[-1]
        return replace_span(sent, start, end, new), old, new

    def place(self, sent, article):
        found = find_places(self.lang, sent)
        if not found:
            return None
        kind, old, start, end = self.rng.choice(found)
        candidates = [p for p in PLACES[self.lang][kind] if p != old and not occurs(p, article)]
        new = self.rng.choice(candidates)
        return replace_span(sent, start, end, new), old, new

    def number(self, sent, article):
        spans = []
        for m in re.finditer(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?![\w,.]\d)|(?<![\w.,])\d+(?![\w,.]?\d)", sent):
            digits = m.group(0)
            if re.fullmatch(r"(19|20)\d\d", digits):
                continue  # a year: a date edit
            spans.append((m.start(), m.end(), "digits", digits))
        for word in NUMBER_WORDS[self.lang]:
            for m in re.finditer(rf"(?<![\w]){word}(?![\w])", sent, re.IGNORECASE):
                spans.append((m.start(), m.end(), "word", m.group(0)))
        if not spans:
            return None
        start, end, form, old = self.rng.choice(sorted(spans))
        if form == "digits":
            n = int(old.replace(",", ""))
            options = sorted({n + d for d in (1, 2, 3, 5, 10) if n + d > 0} | {n * 2, n * 3} | ({n - 1} if n > 1 else set()))
            options = [o for o in options if o != n]
            self.rng.shuffle(options)
            for o in options:
                new = f"{o:,}" if "," in old else str(o)
                if self.lang == "es" and "," in old:
                    new = new.replace(",", ".")
                if not occurs(new, article) and not occurs(str(o), article):
                    return replace_span(sent, start, end, new), old, new
            return None
        group = next(g for g in NUMBER_GROUPS[self.lang] if fold(old) in g)
        candidates = [w for w in group if w != fold(old) and not occurs(w, article)]
        if not candidates:
            return None
        new = match_case(self.rng.choice(candidates), old)
        return replace_span(sent, start, end, new), old, new

    def date(self, sent, article):
        spans = []
        for names in (WEEKDAYS[self.lang], MONTHS[self.lang]):
            for name in names:
                flags = re.IGNORECASE if self.lang == "es" else 0
                for m in re.finditer(rf"(?<![\w]){name}(?![\w])", sent, flags):
                    # "May" at a sentence start may be the verb.
                    if name == "May" and m.start() == 0:
                        continue
                    spans.append((m.start(), m.end(), names, m.group(0)))
        for m in re.finditer(r"(?<![\w.,])(19|20)\d\d(?![\w]|[.,]\d)", sent):
            spans.append((m.start(), m.end(), None, m.group(0)))
        if not spans:
            return None
        start, end, names, old = self.rng.choice(sorted(spans, key=lambda s: s[:2]))
        if names is None:
            y = int(old)
            candidates = [str(y + d) for d in (-3, -2, -1, 1, 2, 3) if not occurs(str(y + d), article)]
        else:
            candidates = [match_case(n, old) for n in names if fold(n) != fold(old) and not occurs(n, article)]
        if not candidates:
            return None
        new = self.rng.choice(candidates)
        return replace_span(sent, start, end, new), old, new

    def role(self, sent, article, people):
        """Swap two entities of one kind (two people, two countries) when the first is the subject: "Russia
        accused Ukraine" → "Ukraine accused Russia". Symmetric links ("X and Y", "X met Y") are skipped."""
        entities = []
        for full, surname in sorted(people.items()):
            for name in (full, surname):
                for m in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])(?! {CAP})", sent):
                    if not sent[: m.start()].endswith(full[: -len(surname)]) or name == full:
                        entities.append(("person", m.start(), m.end(), name))
        entities += [(kind, s, e, name) for kind, name, s, e in find_places(self.lang, sent)]
        entities.sort(key=lambda x: (x[1], -(x[2] - x[1])))
        kept, end = [], -1
        for ent in entities:
            if ent[1] >= end:
                kept.append(ent)
                end = ent[2]
        symmetric = {"en": r"\b(and|or|with|between|both|vs|versus|met|meet|meeting|married|against|nor|,)\b|,",
                     "es": r"\b(y|e|o|u|con|entre|ambos|contra|frente|reunió|reunieron|casó|ni)\b|,"}[self.lang]
        for i, a in enumerate(kept):
            for b in kept[i + 1:]:
                if b[0] != a[0] or fold(b[3]) == fold(a[3]) or fold(a[3]) in fold(b[3]) or fold(b[3]) in fold(a[3]):
                    continue
                between = sent[a[2]: b[1]]
                if len(between.split()) < 2 or re.search(symmetric, between, re.IGNORECASE):
                    continue
                new = sent[: a[1]] + b[3] + between + a[3] + sent[b[2]:]
                return new, f"{a[3]} … {b[3]}", f"{b[3]} … {a[3]}"
        return None

    def negation(self, sent, article):
        if self.lang == "en":
            removals = [(r"\b(is|was|were|are|has|have|had|will|would|can|could|should|does|do|did) not\b", r"\1"),
                        (r"\b(is|was|were|are|has|have|had|would|could|should|does|do|did)n't\b", r"\1"),
                        (r"\bwon't\b", "will"), (r"\bcan't\b", "can"), (r"\bcannot\b", "can")]
            for pattern, repl in removals:
                m = re.search(pattern, sent)
                if m:
                    return sent[: m.start()] + m.expand(repl) + sent[m.end():], m.group(0), m.expand(repl)
            if re.search(r"\b(not|no|never|none|nobody|nothing|neither|nor)\b|n't\b", sent, re.IGNORECASE):
                return None
            m = re.search(r"\b(is|was|were|are|has|have|had|will|would|can|could|should|must|might)\b(?! to\b)", sent)
            if m:
                new = m.group(0) + " not"
                return replace_span(sent, m.start(), m.end(), new), m.group(0), new
            m = re.search(r"\b(said|says)\b", sent)
            if m:
                new = "did not say" if m.group(0) == "said" else "does not say"
                return replace_span(sent, m.start(), m.end(), new), m.group(0), new
            return None
        m = re.search(r"(?<![\w])[Nn]o ((?:se|le|lo|la|les|los|me|te|nos) )?(?=\w)", sent)
        verbs = (r"es|fue|era|son|fueron|eran|está|están|estaba|estaban|estuvo|ha|han|había|habían|hay|habrá|será|"
                 r"serán|sería|puede|pueden|podrá|podría|tiene|tienen|tenía|tuvo|debe|deben|dijo|quiere|quería|va|van")
        if m and re.match(rf"(?:(?:se|le|lo|la|les|los|me|te|nos) )?(?:{verbs}|\w+(?:ó|aron|ía|ían|an|en|ará))\b",
                          sent[m.end() - len(m.group(1) or ""):]):
            old = sent[m.start(): m.end()]
            new = m.group(1) or ""
            if old[0] == "N" and new:
                new = new[0].upper() + new[1:]
            rest = sent[m.end():]
            if old[0] == "N" and not new:
                rest = rest[:1].upper() + rest[1:]
            return sent[: m.start()] + new + rest, old.strip(), new.strip() or "(no negation)"
        if re.search(r"(?<![\w])(no|nunca|nadie|nada|ningún|ninguna|ninguno|tampoco|ni)(?![\w])", sent, re.IGNORECASE):
            return None
        m = re.search(rf"(?<![\w])((?i:se|le|lo|les|me|te|nos) )?({verbs})(?![\w])", sent)
        if not m or (m.start() == 0 and not m.group(1)):
            return None
        old = m.group(0)
        # "Se ha abierto" → "No se ha abierto": the negation goes before the clitic, and takes its capital.
        new = ("No " + old[0].lower() + old[1:]) if old[0].isupper() else "no " + old
        return replace_span(sent, m.start(), m.end(), new), old, new


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def clean_sentence(s):
    return re.sub(r"^\((?:CNN|AP|AFP|EFE|Reuters)\)\s*(?:--\s*)?", "", s).strip()


def usable(s):
    """Sentences worth a claim: a statement of 8 to 45 words, not a photo credit or a byline."""
    words = s.split()
    return (8 <= len(words) <= 45 and s[-1:] in ".!”\"»" and "?" not in s and "contributed to this report" not in s
            and not re.search(r"(?i)\bfoto:|vídeo:|\bclick\b|\bphoto\b", s) and s.count("“") == s.count("”"))


def cmd_edited(a):
    data = Path(a.data) / a.split
    rows = []
    for lang in ["en", "es"]:
        rng = random.Random(f"{a.seed}-{lang}")
        articles = []
        for set_name, field in SOURCES[lang]:
            for it in read_jsonl(data / f"{set_name}.jsonl"):
                if it.get(field):
                    articles.append((set_name, it["id"], field, it[field]))
        people = {art[1] + art[2]: persons(art[3]) for art in articles}
        pool = sorted({p for ps in people.values() for p in ps})
        editor = Editor(lang, pool, rng)
        cands = []
        for set_name, aid, field, text in articles:
            for i, s in enumerate(paragraph_sentences(text)):
                s = clean_sentence(s)
                if usable(s):
                    cands.append((set_name, aid, field, text, i, s))
        rng.shuffle(cands)
        counts = {e: 0 for e in EDITS}
        per_article = {}
        used = set()
        edited = []
        # First pass: each kind up to its share; second pass: the rest from any kind, so that the kinds that
        # most sentences allow (negation) do not crowd out the rarer ones (who did what).
        for quota in (-(-a.per_lang // len(EDITS)), a.per_lang):
            for set_name, aid, field, text, i, s in cands:
                if len(edited) >= a.per_lang:
                    break
                if per_article.get(aid, 0) >= a.max_per_article or (aid, i) in used:
                    continue
                options = []
                for kind in EDITS:
                    if counts[kind] >= quota:
                        continue
                    if kind in ("person", "role"):
                        r = getattr(editor, kind)(s, text, people[aid + field])
                    else:
                        r = getattr(editor, kind)(s, text)
                    if r and r[0] != s and r[0] not in text:
                        options.append((kind, r))
                if not options:
                    continue
                kind, (new, old, repl) = min(options, key=lambda o: (counts[o[0]], EDITS.index(o[0])))
                counts[kind] += 1
                per_article[aid] = per_article.get(aid, 0) + 1
                used.add((aid, i))
                edited.append({"lang": lang, "source_set": set_name, "source_id": aid, "article_field": field,
                               "sentence_index": i, "kind": "edited", "edit": kind, "claim": new, "original": s,
                               "edit_from": old, "edit_to": repl, "label": "unsupported"})
        # Negatives: unedited sentences of the articles that have edited ones, so one call checks both.
        edited_articles = {e["source_id"] for e in edited}
        negatives = [c for c in cands if c[1] in edited_articles and (c[1], c[4]) not in used]
        negatives = negatives[: a.negatives]
        unedited = [{"lang": lang, "source_set": set_name, "source_id": aid, "article_field": field,
                     "sentence_index": i, "kind": "unedited", "edit": None, "claim": s, "original": s,
                     "label": "supported"} for set_name, aid, field, _, i, s in negatives]
        both = sorted(edited + unedited, key=lambda r: (r["source_set"], r["source_id"], r["sentence_index"]))
        for n, r in enumerate(both):
            rows.append({"id": f"edited-{lang}-{n:04d}", **r})
        print(f"{lang}: {len(edited)} edited ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
              f"{len(unedited)} unedited, {len(edited_articles)} articles", file=sys.stderr)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def cmd_draft_real(a):
    """Unlabelled rows from polysum's output folders: every sentence of every summary and translation."""
    data = Path(a.data) / a.split
    by_id = {}
    for set_name in ["news-en", "news-es", "long-en", "long-es", "parallel-stories", "translation-en-es"]:
        for it in read_jsonl(data / f"{set_name}.jsonl"):
            by_id.setdefault(it["id"], (set_name, it))
    rows = []
    for out in a.summaries:
        for rec in read_jsonl(Path(out) / "index.jsonl"):
            set_name, it = by_id[rec["input_id"]]
            for lang, summ in sorted(rec.get("summaries", {}).items()):
                for i, s in enumerate(sentences(" ".join((summ.get("text") or "").split()))):
                    rows.append({"lang": lang, "source_set": set_name, "source_id": it["id"], "article_field": "text",
                                 "source_lang": it["lang"], "kind": "summary", "sentence_index": i, "claim": s,
                                 "label": None, "reason": None})
    for out in a.translations:
        for rec in read_jsonl(Path(out) / "index.jsonl"):
            # Inputs written for this carry "ID:FIELD" ids; scripts/eval's translation inputs the plain id
            # of the English side.
            input_id, _, field = rec["input_id"].partition(":")
            set_name, it = by_id[input_id]
            field = field or ("text" if rec.get("source_lang", it["lang"]) == it["lang"] else "tgt_text")
            t = rec.get("translation") or {}
            src_lang = it["lang"] if field == "text" else it["tgt_lang"]
            body = paragraph_sentences(t.get("text") or "")
            # A story's title is translated apart (a one-sentence input is its own title).
            title = " ".join((t.get("title") or "").split())
            if title and "\n" in it[field]:
                rows.append({"lang": t.get("lang") or rec.get("lang"), "source_set": set_name, "source_id": it["id"],
                             "article_field": field, "source_lang": src_lang, "kind": "translation", "sentence_index": None,
                             "part": "title", "claim": title, "label": None, "reason": None})
            for i, s in enumerate(body):
                rows.append({"lang": t.get("lang") or rec.get("lang"), "source_set": set_name, "source_id": it["id"],
                             "article_field": field, "source_lang": src_lang, "kind": "translation", "sentence_index": i,
                             "claim": s, "label": None, "reason": None})
    for n, r in enumerate(rows):
        r["id"] = f"real-{n:04d}"
    Path(a.out).write_text("".join(json.dumps({"id": r.pop("id"), **r}, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} sentences", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "eval"))
    ap.add_argument("--split", default="dev", choices=["dev"], help="claims are made from dev only")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("edited")
    e.add_argument("--seed", type=int, default=18)
    e.add_argument("--per-lang", type=int, default=330, help="edited claims per language")
    e.add_argument("--negatives", type=int, default=200, help="unedited sentences per language")
    e.add_argument("--max-per-article", type=int, default=8, help="edited claims per article at most")
    e.add_argument("--out", required=True)
    d = sub.add_parser("draft-real")
    d.add_argument("--summaries", nargs="*", default=[], help="output folders of polysum summarize")
    d.add_argument("--translations", nargs="*", default=[], help="output folders of polysum translate")
    d.add_argument("--out", required=True)
    a = ap.parse_args()
    {"edited": cmd_edited, "draft-real": cmd_draft_real}[a.cmd](a)


if __name__ == "__main__":
    main()
