//! `amiplan serve`: the distribution server. Answers every request from memory; a background task
//! refreshes the view on an interval and keeps the last good one when AWS cannot be reached.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query as Params, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::resolve::{Query, Unresolved, resolve_among};
use super::{Catalogue, files};

/// Reads the catalogue from AWS, once.
pub type Refresh = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Catalogue, String>> + Send>> + Send + Sync>;

/// One file as served: its body and validators.
#[derive(Debug, Clone)]
struct Served {
    body: Bytes,
    etag: String,
    /// When its content last changed (seconds since the epoch).
    modified: i64,
}

/// What the server knows, swapped whole by each refresh.
#[derive(Debug, Default)]
struct View {
    catalogue: Arc<Catalogue>,
    /// The entries of each (region, architecture): a request looks only at its own.
    by_place: Places,
    files: BTreeMap<String, Served>,
    /// When the view was last read from AWS (seconds since the epoch), if ever.
    refreshed: Option<i64>,
    /// Why the last refresh failed, if it did.
    error: Option<String>,
    /// The refresh interval: a view older than two of them is stale, even while a refresh is
    /// still retrying.
    interval: Duration,
}

type Shared = Arc<RwLock<View>>;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Where each region's and architecture's entries are in the catalogue.
type Places = BTreeMap<(String, String), Vec<usize>>;

/// What a refresh builds, off the request path: where entries are, and the files.
struct Built {
    by_place: Places,
    files: BTreeMap<String, Served>,
}

impl Built {
    /// The view of `catalogue`, keeping the validators of `previous` files whose content is
    /// unchanged.
    fn new(catalogue: &Catalogue, previous: &BTreeMap<String, Served>, at: i64) -> Built {
        let mut files = BTreeMap::new();
        for (path, body) in files::render(catalogue) {
            let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..12]));
            let modified = match previous.get(&path) {
                Some(old) if old.etag == etag => old.modified,
                _ => at,
            };
            files.insert(path, Served { body: Bytes::from(body), etag, modified });
        }
        let mut by_place: Places = BTreeMap::new();
        for (i, entry) in catalogue.entries.iter().enumerate() {
            by_place.entry((entry.region.clone(), entry.arch.clone())).or_default().push(i);
        }
        Built { by_place, files }
    }
}

impl View {
    /// Whether the view was built, and from this very catalogue.
    fn shows(&self, catalogue: &Catalogue) -> bool {
        self.refreshed.is_some() && *self.catalogue == *catalogue
    }

    /// Whether the view is not as fresh as it should be: the last refresh failed, or none has
    /// succeeded for two intervals.
    fn stale(&self) -> bool {
        let overdue = self.refreshed.is_some_and(|at| now() - at > 2 * self.interval.as_secs().max(1) as i64);
        self.error.is_some() || overdue
    }

    /// Headers every answer carries: how old the view is, and whether it is stale.
    fn freshness(&self, headers: &mut HeaderMap) {
        if let Some(at) = self.refreshed {
            headers.insert("amiplan-view-age", HeaderValue::from(now() - at));
        }
        if self.stale() {
            headers.insert(header::WARNING, HeaderValue::from_static("110 - \"Response is Stale\""));
        }
    }
}

/// Serves until `shutdown` completes, refreshing every `interval`. `bound` receives the address
/// actually listened on (for `--listen 127.0.0.1:0`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    refresh: Refresh,
    interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared: Shared = Arc::new(RwLock::new(View { interval, ..View::default() }));
    let refresher = tokio::spawn(refresh_forever(Arc::clone(&shared), refresh, interval));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/resolve", get(resolve))
        .fallback(get(file))
        .with_state(shared);
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    refresher.abort();
    served
}

async fn refresh_forever(shared: Shared, refresh: Refresh, interval: Duration) {
    loop {
        match refresh().await {
            // Most refreshes find nothing new: nothing to rebuild.
            Ok(catalogue) if shared.read().expect("view lock").shows(&catalogue) => {
                let mut view = shared.write().expect("view lock");
                (view.refreshed, view.error) = (Some(now()), None);
            }
            Ok(catalogue) => {
                // Built on a blocking thread and swapped in whole: requests keep being answered
                // from the old view meanwhile, never waiting for a render.
                let previous = shared.read().expect("view lock").files.clone();
                let (catalogue, built) = tokio::task::spawn_blocking(move || {
                    let built = Built::new(&catalogue, &previous, now());
                    (catalogue, built)
                })
                .await
                .expect("building a view does not panic");
                let old = {
                    let mut view = shared.write().expect("view lock");
                    (view.refreshed, view.error) = (Some(now()), None);
                    (
                        std::mem::replace(&mut view.catalogue, Arc::new(catalogue)),
                        std::mem::replace(&mut view.by_place, built.by_place),
                        std::mem::replace(&mut view.files, built.files),
                    )
                };
                // Freed outside the lock.
                drop(old);
            }
            Err(error) => {
                tracing::warn!(%error, "refreshing the catalogue failed: serving the last good view");
                shared.write().expect("view lock").error = Some(error);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

async fn healthz(State(shared): State<Shared>) -> Response {
    let view = shared.read().expect("view lock");
    let age = view.refreshed.map(|at| now() - at);
    let (status, body) = match (&view.refreshed, view.stale()) {
        (None, _) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "starting", "error": view.error })),
        (Some(_), false) => (StatusCode::OK, json!({ "status": "ok", "age_seconds": age })),
        (Some(_), true) => (StatusCode::OK, json!({ "status": "stale", "age_seconds": age, "error": view.error })),
    };
    let mut response = (status, axum::Json(body)).into_response();
    view.freshness(response.headers_mut());
    response
}

async fn resolve(State(shared): State<Shared>, Params(mut params): Params<BTreeMap<String, String>>) -> Response {
    let view = shared.read().expect("view lock");
    let (Some(region), Some(arch)) = (params.remove("region"), params.remove("arch")) else {
        return error(StatusCode::BAD_REQUEST, "region and arch are required", &view);
    };
    if view.refreshed.is_none() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the catalogue has not been read yet", &view);
    }
    let query = Query {
        stack: params.remove("stack"),
        channel: params.remove("channel"),
        version: params.remove("version"),
        region,
        arch,
        variant: params,
    };
    let place = view.by_place.get(&(query.region.clone(), query.arch.clone()));
    let entries = place.into_iter().flatten().map(|&i| &view.catalogue.entries[i]);
    let mut response = match resolve_among(entries, &query, now()) {
        Ok(found) => axum::Json(found).into_response(),
        Err(Unresolved::Ambiguous { what, candidates }) => {
            let body = json!({ "error": format!("{} AMIs match {what}", candidates.len()), "candidates": candidates });
            (StatusCode::CONFLICT, axum::Json(body)).into_response()
        }
        Err(missing @ Unresolved::NoMatch(_)) => return error(StatusCode::NOT_FOUND, &missing.to_string(), &view),
        Err(bad) => return error(StatusCode::BAD_REQUEST, &bad.to_string(), &view),
    };
    view.freshness(response.headers_mut());
    response
}

async fn file(State(shared): State<Shared>, uri: Uri, request: HeaderMap) -> Response {
    let view = shared.read().expect("view lock");
    let path = uri.path().trim_start_matches('/');
    let Some(served) = view.files.get(path) else {
        return error(StatusCode::NOT_FOUND, &format!("no file {path}"), &view);
    };
    let modified = jiff::Timestamp::from_second(served.modified).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let last_modified = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&modified);
    let unchanged = match request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(tags) => tags.split(',').any(|t| t.trim() == served.etag || t.trim() == "*"),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|since| jiff::fmt::rfc2822::parse(since).ok())
            .is_some_and(|since| since.timestamp().as_second() >= served.modified),
    };
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], served.body.clone()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_str(&served.etag).expect("hex is a header value"));
    if let Ok(value) = last_modified.map(|t| HeaderValue::from_str(&t)) {
        headers.extend(value.ok().map(|v| (header::LAST_MODIFIED, v)));
    }
    view.freshness(headers);
    response
}

fn error(status: StatusCode, message: &str, view: &View) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    view.freshness(response.headers_mut());
    response
}
