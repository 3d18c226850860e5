"""Text helpers the evaluation scripts share (standard library only, so that scripts/claims.py runs without
the evaluation venv): the sentence splitter and accent folding."""

import re
import unicodedata

SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”»)]*\s+(?=[\"“«¿¡(]?[A-ZÁÉÍÓÚÑ0-9])")

# "Lt.", "Dr.", "U.S.": a period after these does not end a sentence.
ABBREVIATION = re.compile(r"\(?[A-Z][a-z]{0,2}\.|(?:[A-Z]\.)+|\(?[A-Z]{2,}\)[A-Z][a-z]{0,2}\.")


def sentences(text):
    """Sentences of a text whose paragraphs are already joined (a newline does not end a sentence)."""
    out, start = [], 0
    for m in SENTENCE_END.finditer(text):
        words = text[start:m.start()].split()
        if words and ABBREVIATION.fullmatch(words[-1]):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def paragraph_sentences(text):
    """Sentences of a text with one paragraph (or title) per line: a line end always ends a sentence."""
    return [s for line in text.split("\n") for s in sentences(line)]


def fold(text):
    """Lower case without accents, so that "México" and "mexico" compare equal."""
    nfkd = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in nfkd if not unicodedata.combining(c))


def fmt(v):
    """A table cell: a dash for a missing figure, one decimal for a float."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)
