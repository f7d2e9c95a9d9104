//! wren's images: a content store with one unpacked snapshot per layer,
//! shared between images, that containers use as overlayfs lower layers.
//!
//! - [`store`]: the on-disk layout, locks, the name index, blobs, layer
//!   installs and prune;
//! - [`unpack`]: one layer blob streamed, verified and unpacked (whiteouts
//!   as overlayfs reads them);
//! - [`import`]: OCI layouts and `docker save` archives; [`save`]: back out;
//! - [`runconfig`]: the image config turned into a container's process;
//! - [`reference`], [`platform`]: names and platforms as users type them;
//! - `pull`, `registries`, `endpoint` and `auth` (feature `pull`): a
//!   registry client; registries.conf's mirrors, locations and insecure or
//!   blocked names; how a registry is reached (TLS, insecure, a login
//!   checked); credentials in Docker's and Podman's files and helpers.
//!
//! Runs in the `wren` CLI process only: wrend links none of it (its idle
//! RSS budget), it gets layer paths and a resolved process from the CLI.

#[cfg(feature = "pull")]
pub mod auth;
pub mod copyout;
#[cfg(feature = "pull")]
pub mod endpoint;
pub mod import;
pub mod platform;
#[cfg(feature = "pull")]
pub mod pull;
pub mod reference;
#[cfg(feature = "pull")]
pub mod registries;
pub mod runconfig;
pub mod save;
pub mod store;
pub mod unpack;

pub use store::{Image, Store, StoreError};
