//! amiplan: declarative AMI builds. The pipeline reads off the module tree:
//! `manifest` → `model` → `graph` → `observe` → `plan` → `apply`, over the `cloud` seam; each
//! kind of resource is one module of `resource`; `pipeline` runs the steps for the commands and
//! `cli` is the edge.

pub mod apply;
pub mod cli;
pub mod cloud;
mod console;
pub mod deprecation;
pub mod distribution;
pub mod duration;
pub mod events;
pub mod graph;
pub mod job;
pub mod lock;
pub mod manifest;
pub mod model;
pub mod observe;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod render;
pub mod resource;
pub mod source;
mod spelling;
pub mod tags;
