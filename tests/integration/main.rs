//! Integration tests: the amiplan binary against a real moto server.

mod changes;
mod executor;
mod fake;
mod lifecycle;
mod manifests;
mod support;
