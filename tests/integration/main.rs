//! Integration tests: the amiplan binary against a real moto server.

mod aws_rules;
mod boots;
mod call_record;
mod catalog;
mod changes;
mod distribution;
mod errors;
mod executor;
mod fake;
mod faults;
mod formats;
mod helper;
mod hostile;
mod job;
mod lifecycle;
mod machines;
mod manifests;
mod pipeline;
mod proxy;
mod publish;
mod support;
mod upstream;
