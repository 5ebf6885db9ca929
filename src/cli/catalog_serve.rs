//! `tollgate catalog serve`: the catalog's JSON API, `POST /v1/builds` and the web page
//! ([`tollgate::catalog::server`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tollgate::catalog::server::{CatalogServer, ServeConfig, read_token};
use tollgate::catalog::{Catalog, Create};

use super::super::args::positive_duration;
use super::super::{Exit, runtime};
use super::CatalogArgs;

pub const EXIT_CODES_HELP: &str = "\
Plain HTTP: keep it on loopback, or behind an ingress or proxy that terminates TLS. Without
--builds-token-file, POST /v1/builds is refused (403). See docs/catalog.md.

Exit codes:
  0  stopped by SIGTERM or SIGINT
  2  cannot start: an invalid, unreachable or unmigrated catalog, an unreadable or empty
     token file, or the address in use";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Address to listen on (port 0: a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// File holding the bearer token `POST /v1/builds` needs (a mounted Secret); read at start
    /// and again at each write, so a rotated Secret takes effect without a restart. Without
    /// it the server takes no writes.
    #[arg(long, value_name = "FILE")]
    pub builds_token_file: Option<PathBuf>,
    /// Rows per page (repositories, runs) when a request does not say (at most 500).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub page_size: usize,
    /// Longest one request's queries may take.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = positive_duration)]
    pub query_timeout: Duration,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<Exit> {
    let url = args.catalog.url()?;
    let config = ServeConfig {
        listen: args.listen,
        builds_token_file: args.builds_token_file.clone(),
        page_size: args.page_size,
        query_timeout: args.query_timeout,
    };
    runtime()?.block_on(async {
        if let Some(path) = &config.builds_token_file {
            // Read now too, so that a missing or empty Secret stops the start.
            read_token(path).await.context("--builds-token-file")?;
        }
        let catalog = Catalog::open(&url, Create::No)
            .await
            .with_context(|| format!("cannot open the catalog {url}"))?;
        catalog
            .check_schema()
            .await
            .with_context(|| format!("cannot serve the catalog {url}"))?;
        let writes = config.builds_token_file.is_some();
        let server = CatalogServer::bind(catalog.clone(), config)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "tollgate catalog serve: listening on http://{} ({url}; POST /v1/builds {})",
            server.local_addr()?,
            if writes {
                "with the token"
            } else {
                "refused: no --builds-token-file"
            }
        );
        server.run(stop()).await;
        catalog.close().await;
        anyhow::Ok(())
    })?;
    Ok(Exit::Clean)
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
