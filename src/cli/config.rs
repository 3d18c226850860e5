//! `polysum.toml`: the same settings as the `summarize` flags, for cron. Flags win over the file.
//!
//! ```toml
//! inputs = ["/srv/news/incoming"]
//! out = "/srv/news/summaries"
//! model = "qwen2.5-coder-1.5b"
//! langs = "en,es"          # or ["en", "es"]
//! format = "json,md"
//! sentences = 3            # or max_words = 60
//! strategy = "translate"   # or "direct"
//! verify = "fix"           # or "flag", "off"
//! grounding = "article"    # or "key-sentences"
//! candidates = 1           # translations per piece, one chosen
//! max_context = 4096       # lower the model's context
//! jobs = 1
//! quiet = true
//! log_format = "json"
//! backend = "openai"       # with endpoint, remote_model, api_key_env, max_inflight, timeout,
//! endpoint = "http://vllm:8000"   # retries, remote_context, remote_dialect (see docs/SCALE-OUT.md)
//! remote_model = "Qwen/Qwen2.5-1.5B-Instruct"
//! shard = "0/4"
//! ```
//!
//! Relative paths are taken from the folder the file is in.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) inputs: Vec<PathBuf>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) model: Option<String>,
    pub(crate) device: Option<String>,
    pub(crate) threads: Option<usize>,
    #[serde(alias = "no-requantize")]
    pub(crate) no_requantize: Option<bool>,
    pub(crate) draft: Option<usize>,
    #[serde(default, deserialize_with = "list_or_string")]
    pub(crate) langs: Option<String>,
    #[serde(default, deserialize_with = "list_or_string")]
    pub(crate) format: Option<String>,
    pub(crate) sentences: Option<usize>,
    #[serde(alias = "max-words")]
    pub(crate) max_words: Option<usize>,
    pub(crate) jobs: Option<usize>,
    pub(crate) force: Option<bool>,
    pub(crate) quiet: Option<bool>,
    #[serde(alias = "log-format")]
    pub(crate) log_format: Option<String>,
    #[serde(alias = "max-input-tokens")]
    pub(crate) max_input_tokens: Option<usize>,
    #[serde(alias = "max-bytes")]
    pub(crate) max_bytes: Option<u64>,
    #[serde(alias = "max-context")]
    pub(crate) max_context: Option<usize>,
    pub(crate) strategy: Option<crate::summarize::pipeline::SummaryStrategy>,
    pub(crate) verify: Option<crate::verify::Mode>,
    pub(crate) grounding: Option<crate::summarize::ground::Grounding>,
    pub(crate) candidates: Option<usize>,
    pub(crate) backend: Option<String>,
    pub(crate) endpoint: Option<String>,
    #[serde(alias = "api-key-env")]
    pub(crate) api_key_env: Option<String>,
    #[serde(alias = "remote-model")]
    pub(crate) remote_model: Option<String>,
    #[serde(alias = "max-inflight")]
    pub(crate) max_inflight: Option<usize>,
    pub(crate) timeout: Option<f64>,
    pub(crate) retries: Option<u32>,
    #[serde(alias = "remote-context")]
    pub(crate) remote_context: Option<usize>,
    #[serde(alias = "remote-dialect")]
    pub(crate) remote_dialect: Option<crate::backend::openai::Dialect>,
    pub(crate) shard: Option<String>,
}

fn list_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        L(Vec<String>),
    }
    Ok(Option::<V>::deserialize(d)?.map(|v| match v {
        V::S(s) => s,
        V::L(l) => l.join(","),
    }))
}

pub(crate) const FILE_NAME: &str = "polysum.toml";

impl Config {
    pub(crate) fn parse(text: &str, base: &Path) -> Result<Config> {
        let mut c: Config = toml::from_str(text)?;
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        c.inputs.iter_mut().for_each(fix);
        if let Some(o) = c.out.as_mut() {
            fix(o);
        }
        Ok(c)
    }

    pub(crate) fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base).with_context(|| format!("in {}", path.display()))
    }

    /// The file named by `--config` (must exist), else `./polysum.toml` when there is one.
    pub(crate) fn find(explicit: Option<&Path>) -> Result<Option<Config>> {
        if let Some(p) = explicit {
            if !p.is_file() {
                bail!("config file {} does not exist", p.display());
            }
            return Config::load(p).map(Some);
        }
        let local = Path::new(FILE_NAME);
        if local.is_file() {
            return Config::load(local).map(Some);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings_and_resolves_paths() {
        let c = Config::parse(
            "inputs = [\"news\", \"/abs\"]\nout = \"sum\"\nlangs = [\"en\", \"es\"]\nmax-words = 40\nquiet = true\n",
            Path::new("/etc/polysum"),
        )
        .unwrap();
        assert_eq!(c.inputs, [PathBuf::from("/etc/polysum/news"), PathBuf::from("/abs")]);
        assert_eq!(c.out, Some(PathBuf::from("/etc/polysum/sum")));
        assert_eq!(c.langs.as_deref(), Some("en,es"));
        assert_eq!((c.max_words, c.quiet), (Some(40), Some(true)));
        let err = Config::parse("outt = \"x\"", Path::new(".")).unwrap_err();
        assert!(format!("{err:#}").contains("outt"), "{err:#}");
    }

    /// Every key the file takes, each set once, read into its field (a new field without a line here
    /// stays `Default` and fails the comparison with the full struct below).
    #[test]
    fn every_key_is_read() {
        let text =
            "inputs = [\"in\"]\nout = \"o\"\nmodel = \"m\"\ndevice = \"cpu\"\nthreads = 2\nno_requantize = true\n\
draft = 4\nlangs = \"en\"\nformat = \"md\"\nsentences = 2\nmax_words = 30\njobs = 3\nforce = true\nquiet = true\n\
log_format = \"json\"\nmax_input_tokens = 500\nmax_bytes = 1000\nmax_context = 1024\nstrategy = \"direct\"\n\
verify = \"flag\"\ngrounding = \"key-sentences\"\ncandidates = 3\n\
backend = \"openai\"\nendpoint = \"http://h\"\napi_key_env = \"K\"\nremote_model = \"r\"\n\
max_inflight = 4\n\
timeout = 7.5\nretries = 1\nremote_context = 2048\nremote_dialect = \"llama.cpp\"\nshard = \"1/2\"\n";
        let c = Config::parse(text, Path::new("/b")).unwrap();
        let expected = Config {
            inputs: vec![PathBuf::from("/b/in")],
            out: Some(PathBuf::from("/b/o")),
            model: Some("m".into()),
            device: Some("cpu".into()),
            threads: Some(2),
            no_requantize: Some(true),
            draft: Some(4),
            langs: Some("en".into()),
            format: Some("md".into()),
            sentences: Some(2),
            max_words: Some(30),
            jobs: Some(3),
            force: Some(true),
            quiet: Some(true),
            log_format: Some("json".into()),
            max_input_tokens: Some(500),
            max_bytes: Some(1000),
            max_context: Some(1024),
            strategy: Some(crate::summarize::pipeline::SummaryStrategy::Direct),
            verify: Some(crate::verify::Mode::Flag),
            grounding: Some(crate::summarize::ground::Grounding::KeySentences),
            candidates: Some(3),
            backend: Some("openai".into()),
            endpoint: Some("http://h".into()),
            api_key_env: Some("K".into()),
            remote_model: Some("r".into()),
            max_inflight: Some(4),
            timeout: Some(7.5),
            retries: Some(1),
            remote_context: Some(2048),
            remote_dialect: Some(crate::backend::openai::Dialect::LlamaCpp),
            shard: Some("1/2".into()),
        };
        assert_eq!(c, expected);
    }
}
