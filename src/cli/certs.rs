//! `tollgate certs generate`: the webhook's CA and serving certificate, written to a directory.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tollgate::admission::certs::{self, File, Request};

use super::{Exit, now, print};

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the four files were written
  2  an invalid name or validity, a file that exists (without --force), or a directory that
     cannot be written";

#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Write a CA (ca.crt, ca.key) and a serving certificate (tls.crt, tls.key) for the
    /// webhook's Service, and print the caBundle (base64 of ca.crt) on stdout.
    ///
    /// The serving certificate names NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.cluster.local.
    /// See webhook-certs/README.md for putting them into a Secret and the chart's values.
    #[command(after_help = EXIT_CODES_HELP)]
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The webhook's Service name (a DNS-1035 label).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The Service's namespace (a DNS-1123 label).
    #[arg(long, value_name = "NS")]
    pub namespace: String,
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Validity of the serving certificate, in days.
    #[arg(long, default_value_t = 365, value_name = "N")]
    pub days: u32,
    /// Validity of the CA, in days.
    #[arg(long, default_value_t = 3650, value_name = "N")]
    pub ca_days: u32,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: CertsCommand) -> anyhow::Result<Exit> {
    match cmd {
        CertsCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<Exit> {
    let req = Request::new(&args.service, &args.namespace, args.days, args.ca_days)?;
    let generated = certs::generate(&req, now())?;
    let files = generated.files();

    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create directory {}", args.out.display()))?;
    if !args.force {
        // Checked for all four first, so that a refusal leaves the directory as it was rather
        // than a new key next to an old certificate.
        let existing: Vec<String> = files
            .iter()
            .map(|f| args.out.join(f.name))
            .filter(|p| fs::symlink_metadata(p).is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            anyhow::bail!(
                "refusing to overwrite {} (use --force to replace them)",
                existing.join(", ")
            );
        }
    }
    for file in &files {
        write(&args.out, file, args.force)?;
    }

    eprintln!(
        "tollgate: wrote ca.crt, ca.key, tls.crt, tls.key in {}: a CA valid {} days and a \
         serving certificate valid {} days for {}",
        args.out.display(),
        req.ca_days,
        req.days,
        req.dns_names().join(", "),
    );
    eprintln!("tollgate: the caBundle (base64 of ca.crt) follows on stdout");
    print(&format!("{}\n", generated.ca_bundle()))?;
    Ok(Exit::Clean)
}

/// Write one file; keys are created with mode 0600 from the start, never chmod-ed afterwards.
///
/// Without `force` the file is created exclusively. With it, the new content goes to a
/// temporary file that is renamed over the old one: a running `tollgate serve` watching the
/// directory sees either the old file or the new one, never half of one, and an old key's
/// looser mode is not inherited.
fn write(dir: &Path, file: &File<'_>, force: bool) -> anyhow::Result<()> {
    let path = dir.join(file.name);
    let target = if force {
        dir.join(format!(".{}.tmp-{}", file.name, std::process::id()))
    } else {
        path.clone()
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if file.secret { 0o600 } else { 0o644 });
    }
    let written = opts
        .open(&target)
        .and_then(|mut f| f.write_all(file.pem.as_bytes()).and_then(|()| f.sync_all()));
    let result = written.and_then(|()| {
        if force {
            fs::rename(&target, &path)
        } else {
            Ok(())
        }
    });
    if let Err(e) = result {
        if force {
            let _ = fs::remove_file(&target);
        }
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
