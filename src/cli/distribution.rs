//! The distribution commands: `catalog`, `resolve` and `serve`.

use std::sync::Arc;

use anyhow::{Context, anyhow};

use super::args::{CatalogArgs, ResolveArgs, ServeArgs};
use crate::cloud::aws::AwsCloud;
use crate::console::{errln, outln};
use crate::distribution::resolve::Query;
use crate::distribution::{Catalogue, files, serve};
use crate::pipeline::{Workspace, exit};

/// Writes the catalogue tree from live state.
pub async fn catalog(cloud: &AwsCloud, workspace: &Workspace, args: &CatalogArgs) -> anyhow::Result<u8> {
    let catalogue = workspace.catalogue(cloud, &[]).await?;
    let tree = files::render(&catalogue);
    let warnings = files::write_tree(&args.out, &tree)?;
    for warning in &warnings {
        errln!("warning: {warning}");
    }
    outln!("{} AMI(s) in {} file(s) under {}", catalogue.entries.len(), tree.len(), args.out.display());
    Ok(exit::OK)
}

/// Prints the one AMI the request names, from live state or a catalogue file or URL.
pub async fn resolve(catalogue: &Catalogue, args: &ResolveArgs) -> anyhow::Result<u8> {
    let query = Query {
        stack: args.stack.clone(),
        region: args.region.clone(),
        arch: args.arch.clone(),
        variant: args.variants.iter().cloned().collect(),
        channel: args.channel.clone(),
        version: args.version.clone(),
    };
    let found = catalogue.resolve(&query, crate::deprecation::now())?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        outln!("{}", found.image_id);
    }
    if found.deprecated {
        errln!("warning: {} is deprecated ({})", found.image_id, found.deprecation.unwrap_or_default());
    }
    Ok(exit::OK)
}

/// The catalogue of `amis.json` at a path or an http(s) URL.
pub async fn read_catalogue(from: &str) -> anyhow::Result<Catalogue> {
    let text = if from.starts_with("http://") || from.starts_with("https://") {
        let url = from.to_string();
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let mut answer = ureq::get(&url).call().with_context(|| format!("fetching {url}"))?;
            answer.body_mut().read_to_string().with_context(|| format!("reading {url}"))
        })
        .await??
    } else {
        std::fs::read_to_string(from).with_context(|| format!("reading {from}"))?
    };
    files::read_flat(&text).map_err(|problem| anyhow!("{from}: {problem}"))
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(cloud: AwsCloud, workspace: Workspace, args: &ServeArgs) -> anyhow::Result<u8> {
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    errln!("amiplan serve: listening on http://{address} (refreshing every {:?})", args.refresh);
    let (cloud, workspace) = (Arc::new(cloud), Arc::new(workspace));
    let refresh: serve::Refresh = Box::new(move || {
        let (cloud, workspace) = (Arc::clone(&cloud), Arc::clone(&workspace));
        Box::pin(async move { workspace.catalogue(&*cloud, &[]).await.map_err(|e| format!("{e:#}")) })
    });
    serve::serve(listener, refresh, args.refresh, stopped()).await.context("serving")?;
    errln!("amiplan serve: stopped");
    Ok(exit::OK)
}

/// Completes on SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
