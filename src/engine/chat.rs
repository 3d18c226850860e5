//! Chat templates: the model's own Jinja template (`tokenizer.chat_template`), rendered the way Hugging Face
//! transformers' `apply_chat_template` does, or a plain completion prompt for base models that have none.
use anyhow::{anyhow, Result};
use candle_core::quantized::gguf_file;
use minijinja::value::Kwargs;
use minijinja::{context, Environment, Error, ErrorKind, Value};

use crate::engine::tokenizer::Tokenizer;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub(crate) role: String,
    pub(crate) content: String,
}

impl Message {
    pub fn system(c: &str) -> Self {
        Self { role: "system".into(), content: c.into() }
    }
    pub fn user(c: &str) -> Self {
        Self { role: "user".into(), content: c.into() }
    }
    pub fn assistant(c: &str) -> Self {
        Self { role: "assistant".into(), content: c.into() }
    }
}

const TEMPLATE_NAME: &str = "chat_template";

/// The cue that starts the answer in the [`ChatTemplate::Plain`] format.
pub(crate) const PLAIN_ANSWER_CUE: &str = "Answer:\n";

pub enum ChatTemplate {
    /// A compiled template; the environment owns its source, so this is `'static` and `Send + Sync`.
    /// Boxed: an environment is large, and a template is built once per engine.
    Jinja { env: Box<Environment<'static>>, bos_token: Option<String>, eos_token: Option<String> },
    /// For models without a template (base models such as gemma-3-270m). The format, with each content
    /// trimmed of surrounding whitespace and every block followed by a blank line:
    ///
    /// ```text
    /// {system content}\n\n        (each system message)
    /// {user content}\n\n          (each user message)
    /// Answer:\n{assistant content}\n\n   (each assistant message, an earlier turn)
    /// Answer:\n                   (only with add_generation_prompt)
    /// ```
    ///
    /// A base model reads this as a document with the answer to be continued after the cue. The cue ends
    /// with a newline rather than a space so the first answer word keeps its own leading-space token (and a
    /// started answer appended by the caller begins on a fresh line). Without add_generation_prompt the
    /// last block's blank line is kept, so a prompt can be extended block by block.
    Plain,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jinja { bos_token, eos_token, .. } => f
                .debug_struct("Jinja")
                .field("bos_token", bos_token)
                .field("eos_token", eos_token)
                .finish_non_exhaustive(),
            Self::Plain => f.write_str("Plain"),
        }
    }
}

impl ChatTemplate {
    /// The template in `tokenizer.chat_template`, else [`ChatTemplate::Plain`].
    pub fn from_gguf(content: &gguf_file::Content, tokenizer: &Tokenizer) -> Result<Self> {
        match content.metadata.get("tokenizer.chat_template") {
            None => Ok(Self::Plain),
            Some(v) => {
                let source =
                    v.to_string().map_err(|_| anyhow!("the GGUF's tokenizer.chat_template is not a string"))?;
                if source.trim().is_empty() {
                    return Ok(Self::Plain);
                }
                Self::from_source(source, tokenizer.bos_token(), tokenizer.eos_token())
            }
        }
    }

    /// Compile a Jinja chat template once; `bos`/`eos` become the template's `bos_token`/`eos_token`.
    pub fn from_source(source: &str, bos: Option<String>, eos: Option<String>) -> Result<Self> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks on, keep_trailing_newline off (minijinja's
        // default), and the loopcontrols extension (the `loop_controls` feature).
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        // Templates are written against Python's str/dict/list methods (`.strip()`, `.items()`, ...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned()).map_err(|e| {
            anyhow!(
                "the model's chat template does not compile: {e:#}; pass a GGUF with a valid tokenizer.chat_template"
            )
        })?;
        Ok(Self::Jinja { env: Box::new(env), bos_token: bos, eos_token: eos })
    }

    /// The prompt for `messages`; with `add_generation_prompt` it ends exactly where the assistant's answer
    /// starts (a started answer is appended by the caller).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        match self {
            Self::Plain => Ok(render_plain(messages, add_generation_prompt)),
            Self::Jinja { env, bos_token, eos_token } => {
                let template = env.get_template(TEMPLATE_NAME).map_err(|e| anyhow!("chat template: {e}"))?;
                template
                    .render(context! {
                        messages => messages,
                        add_generation_prompt => add_generation_prompt,
                        bos_token => bos_token,
                        eos_token => eos_token,
                    })
                    .map_err(|e| anyhow!("rendering the chat template failed: {e}"))
            }
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, Self::Plain)
    }
}

fn render_plain(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for m in messages {
        if m.role == "assistant" {
            out.push_str(PLAIN_ANSWER_CUE);
        }
        out.push_str(m.content.trim());
        out.push_str("\n\n");
    }
    if add_generation_prompt {
        out.push_str(PLAIN_ANSWER_CUE);
    }
    out
}

/// transformers' `raise_exception`: templates use it to reject conversations they cannot format.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, format!("the chat template raised an exception: {message}")))
}

/// transformers' `strftime_now(format)`. It uses local time; we use UTC, which is what a server without a
/// configured zone has anyway. Supports the directives templates use for dates.
fn strftime_now(format: String) -> Result<String, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("system clock before 1970: {e}")))?
        .as_secs() as i64;
    strftime(&format, secs)
}

fn strftime(format: &str, unix_secs: i64) -> Result<String, Error> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('B') => out.push_str(MONTHS[month as usize - 1]),
            Some('b') | Some('h') => out.push_str(&MONTHS[month as usize - 1][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('I') => out.push_str(&format!("{:02}", (h + 11) % 12 + 1)),
            Some('p') => out.push_str(if h < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{m:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('F') => out.push_str(&format!("{year}-{month:02}-{day:02}")),
            Some('%') => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported directive %{}", other.map(String::from).unwrap_or_default()),
                ))
            }
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// transformers' `tojson`: Python's `json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys)`
/// rather than minijinja's HTML-safe variant, which would write `<tool_call>` as `\u003ctool_call\u003e`.
/// Separators are Python's defaults (", " and ": ", or "," at line ends when indenting). Map keys come out
/// sorted (minijinja keeps no insertion order without its `preserve_order` feature).
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let _sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Some(" ".repeat(n as usize)),
            _ => match v.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    return Err(Error::new(ErrorKind::InvalidOperation, "tojson: indent must be a number or a string"))
                }
            },
        },
    };
    let json =
        serde_json::to_value(value).map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_py_json(&json, indent.as_deref(), 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_py_json(v: &serde_json::Value, indent: Option<&str>, level: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                write_py_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
        // Scalars and empty containers print the same as serde_json's compact form ("[]", "{}", "null").
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_format_is_exact() {
        let t = ChatTemplate::Plain;
        let msgs = [Message::system(" Be brief. "), Message::user("Summarize:\nThe text.\n")];
        assert_eq!(t.render(&msgs, true).unwrap(), "Be brief.\n\nSummarize:\nThe text.\n\nAnswer:\n");
        assert_eq!(t.render(&msgs, false).unwrap(), "Be brief.\n\nSummarize:\nThe text.\n\n");
        let turns = [Message::user("Q1"), Message::assistant("A1"), Message::user("Q2")];
        assert_eq!(t.render(&turns, true).unwrap(), "Q1\n\nAnswer:\nA1\n\nQ2\n\nAnswer:\n");
        assert_eq!(t.render(&[], true).unwrap(), "Answer:\n");
        assert!(t.is_plain());
    }

    #[test]
    fn strftime_formats_a_known_instant() {
        // 2024-02-29 13:05:09 UTC, a Thursday, day 60 of a leap year.
        let t = 1_709_211_909;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t).unwrap(), "2024-02-29 13:05:09");
        assert_eq!(strftime("%d %b %Y, %A %j %I%p %%", t).unwrap(), "29 Feb 2024, Thursday 060 01PM %");
        assert_eq!(strftime("%B %e", 0).unwrap(), "January  1");
        assert!(strftime("%Q", t).is_err());
    }

    #[test]
    fn tojson_writes_python_json() {
        let t =
            ChatTemplate::from_source(r#"{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ [] | tojson }}"#, None, None)
                .unwrap();
        let ChatTemplate::Jinja { env, .. } = &t else { panic!() };
        let out = env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(context! { x => serde_json::json!({"b": [1, "<é>"], "a": null}) })
            .unwrap();
        assert_eq!(
            out,
            "{\"a\": null, \"b\": [1, \"<é>\"]}|{\n  \"a\": null,\n  \"b\": [\n    1,\n    \"<é>\"\n  ]\n}|[]"
        );
    }

    #[test]
    fn jinja_template_has_hf_settings_and_python_methods() {
        let src = "{% for m in messages %}\n  {{ m.role.upper() }}: {{ m.content.strip() }}\n{% endfor %}\n    {% if \
        add_generation_prompt %}\n{{ bos_token }}>\n    {% endif %}\n.\n";
        let t = ChatTemplate::from_source(src, Some("<s>".into()), None).unwrap();
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before one (not
        // before a {{ }}), and the template's final newline is dropped.
        assert_eq!(t.render(&[Message::user(" hi ")], true).unwrap(), "  USER: hi\n<s>>\n.");
        assert_eq!(t.render(&[Message::user(" hi ")], false).unwrap(), "  USER: hi\n.");
        assert!(!t.is_plain());
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_errors() {
        let t = ChatTemplate::from_source("{{ raise_exception('System role not supported') }}", None, None).unwrap();
        let err = t.render(&[Message::user("x")], true).unwrap_err().to_string();
        assert!(err.contains("System role not supported"), "{err}");
        let err = ChatTemplate::from_source("{% if %}", None, None).unwrap_err().to_string();
        assert!(err.contains("does not compile"), "{err}");
    }

    #[test]
    fn chat_template_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ChatTemplate>();
    }
}
