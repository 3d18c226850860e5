//! `polysum models`: list, pull, verify, path, rm.

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::HumanBytes;

use super::Outcome;
use crate::registry::cache::{CacheStatus, ModelCache};
use crate::registry::catalog::{Registry, SourceKind};
use crate::registry::config::Config;
use crate::registry::pull::{self, Verdict};
use crate::registry::spec::ModelSpec;

#[derive(Args, Debug)]
pub(crate) struct ModelsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<ModelsCommand>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ModelsCommand {
    /// The registry: name, size, whether it is cached, where it comes from (the default subcommand).
    List {
        /// Also show architecture, quantization, context length, licence, aliases and notes.
        #[arg(long, short)]
        long: bool,
    },
    /// Download models into the cache (registry names, or hf:ORG/REPO/FILE[@REVISION]).
    Pull {
        #[arg(required = true)]
        names: Vec<String>,
        /// Use only this kind of source.
        #[arg(long)]
        source: Option<SourceKind>,
    },
    /// Re-hash cached models against the registry (all cached ones when no name is given).
    Verify { names: Vec<String> },
    /// Print the path of a cached model (exit 1 when it is not cached).
    Path { name: String },
    /// Remove models from the cache.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub(crate) fn run(args: ModelsArgs) -> Result<Outcome> {
    let registry = Registry::from_env()?;
    let cfg = Config::from_env();
    run_with(args.command.unwrap_or(ModelsCommand::List { long: false }), &registry, &cfg)
}

pub(crate) fn run_with(command: ModelsCommand, registry: &Registry, cfg: &Config) -> Result<Outcome> {
    match command {
        ModelsCommand::List { long } => list(registry, cfg, long),
        ModelsCommand::Pull { names, source } => pull_cmd(registry, cfg, &names, source),
        ModelsCommand::Verify { names } => verify(registry, cfg, &names),
        ModelsCommand::Path { name } => path(registry, cfg, &name),
        ModelsCommand::Rm { names } => rm(registry, cfg, &names),
    }
}

fn list(registry: &Registry, cfg: &Config, long: bool) -> Result<Outcome> {
    let cache = ModelCache::new(cfg);
    let default = std::env::var("POLYSUM_MODEL").ok().filter(|s| !s.is_empty()).unwrap_or(crate::DEFAULT_MODEL.into());
    let mut rows = vec![["NAME", "SIZE", "CACHED", "SOURCES", "NOTES"].map(String::from).to_vec()];
    for m in &registry.models {
        let status = match cache.status(m) {
            CacheStatus::Cached { .. } => "yes".to_string(),
            CacheStatus::Partial { bytes } => format!("partial ({})", HumanBytes(bytes)),
            CacheStatus::Missing => "no".to_string(),
        };
        let mut notes = Vec::new();
        if registry.find(&default).is_some_and(|d| d.name == m.name) {
            notes.push("default".to_string());
        }
        if !m.tested {
            notes.push("not tested here".to_string());
        }
        notes.push(m.description.clone());
        rows.push(vec![
            m.name.clone(),
            m.size.map(|s| HumanBytes(s).to_string()).unwrap_or_else(|| "?".into()),
            status,
            m.sources.iter().map(|s| s.short()).collect::<Vec<_>>().join(", "),
            notes.into_iter().filter(|n| !n.is_empty()).collect::<Vec<_>>().join("; "),
        ]);
    }
    let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for c in 0..4 {
            line.push_str(&format!("{:<w$}  ", row[c], w = widths[c]));
        }
        line.push_str(&row[4]);
        println!("{}", line.trim_end());
        if long && i > 0 {
            let m = &registry.models[i - 1];
            println!(
                "    {} {} | context {} | licence {} | file {}{}",
                m.architecture,
                m.quantization,
                m.context_length,
                m.license,
                m.file,
                if m.aliases.is_empty() { String::new() } else { format!(" | aliases {}", m.aliases.join(", ")) }
            );
            for s in &m.sources {
                println!("    source: {}", pull::describe(cfg, s));
            }
            if !m.notes.is_empty() {
                println!("    {}", m.notes);
            }
        }
    }
    println!("\ncache: {}{}", cache.root().display(), if cfg.offline { " (offline)" } else { "" });
    Ok(Outcome::Done)
}

fn pull_cmd(registry: &Registry, cfg: &Config, names: &[String], only: Option<SourceKind>) -> Result<Outcome> {
    for name in names {
        if let ModelSpec::Hub(_) = ModelSpec::parse(name)? {
            let m = crate::registry::resolve(name, registry, cfg)?;
            println!("{}", m.gguf.display());
            continue;
        }
        let entry = registry.get(name)?;
        let started = std::time::Instant::now();
        let pulled = pull::pull(cfg, entry, only)?;
        match &pulled.source {
            None => eprintln!("{}: already cached", entry.name),
            Some(src) => eprintln!("{}: pulled from {src} in {:.1} s", entry.name, started.elapsed().as_secs_f64()),
        }
        println!("{}", pulled.path.display());
    }
    Ok(Outcome::Done)
}

fn verify(registry: &Registry, cfg: &Config, names: &[String]) -> Result<Outcome> {
    let entries = if names.is_empty() {
        let cache = ModelCache::new(cfg);
        registry.models.iter().filter(|m| cache.cached(m).is_some()).collect::<Vec<_>>()
    } else {
        names.iter().map(|n| registry.get(n)).collect::<Result<Vec<_>, _>>()?
    };
    if entries.is_empty() {
        println!("no model is cached in {}", cfg.models_dir().display());
        return Ok(Outcome::Done);
    }
    let mut failed = 0;
    for m in entries {
        match pull::verify(cfg, m)? {
            Verdict::Ok => println!("{}: ok", m.name),
            Verdict::NoChecksum => println!("{}: ok (header and size; the registry has no sha256 for it)", m.name),
            Verdict::NotCached => {
                failed += 1;
                println!("{}: not cached (run `polysum models pull {}`)", m.name, m.name);
            }
            Verdict::Mismatch { expected, actual } => {
                failed += 1;
                println!(
                    "{}: CORRUPT: sha256 expected {expected}, actual {actual}; run `polysum models rm {0}` and \
                        `polysum models pull {0}`",
                    m.name
                );
            }
            Verdict::Damaged(reason) => {
                failed += 1;
                println!("{}: CORRUPT: {reason}; run `polysum models rm {0}` and `polysum models pull {0}`", m.name);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of the models checked cannot be used as they are (see above)");
    }
    Ok(Outcome::Done)
}

fn path(registry: &Registry, cfg: &Config, name: &str) -> Result<Outcome> {
    if let ModelSpec::Hub(hf) = ModelSpec::parse(name)? {
        return match crate::registry::source::hub::cached(cfg, &hf) {
            Some(p) => {
                println!("{}", p.display());
                Ok(Outcome::Done)
            }
            None => anyhow::bail!(
                "{hf} is not in the Hugging Face cache {}: run `polysum models pull {name}`",
                cfg.hf_cache_dir.display()
            ),
        };
    }
    let entry = registry.get(name)?;
    let cache = ModelCache::new(cfg);
    match cache.cached(entry) {
        Some(p) => {
            println!("{}", p.display());
            Ok(Outcome::Done)
        }
        None => {
            let e =
                crate::registry::RegistryError::NotCached { name: entry.name.clone(), path: cache.final_path(entry) };
            Err(e.into())
        }
    }
}

fn rm(registry: &Registry, cfg: &Config, names: &[String]) -> Result<Outcome> {
    let cache = ModelCache::new(cfg);
    let entries = names.iter().map(|n| registry.get(n)).collect::<Result<Vec<_>, _>>()?;
    for m in entries {
        if !cache.model_dir(m).exists() {
            println!("{}: not cached, nothing to remove", m.name);
            continue;
        }
        // Waits for a pull of the same model in progress.
        let lock = cache.lock(m, cfg.progress)?;
        let had = cache.remove(m)?;
        drop(lock);
        if had {
            println!("{}: removed {}", m.name, cache.model_dir(m).display());
        } else {
            println!("{}: not cached, nothing to remove", m.name);
        }
    }
    Ok(Outcome::Done)
}
