//! Wire definitions for wren: containerd's shim Task, Events, bootstrap and
//! metrics APIs, plus the few option messages containerd sends a non-runc shim
//! that `containerd-shim-protos` does not generate. No logic lives here.
//!
//! What comes from where:
//!
//! | module | messages | source |
//! |---|---|---|
//! | [`task`] | `containerd.task.v3.Task` requests/responses (identical to v2) | containerd-shim-protos |
//! | [`task_types`] | `Status`, `ProcessInfo` | containerd-shim-protos |
//! | [`mount`] | `Mount` | containerd-shim-protos |
//! | [`events`] | `/tasks/*` event payloads | containerd-shim-protos |
//! | [`envelope`], [`forward`] | `Envelope`, `ForwardRequest` (events ttrpc service) | containerd-shim-protos |
//! | [`runc_options`] | `containerd.runc.v1.Options`, `ProcessDetails`, `CheckpointOptions` | containerd-shim-protos |
//! | [`bootstrap`] | containerd 2.3's `BootstrapParams` / `BootstrapResult` | containerd-shim-protos |
//! | [`introspection`] | `RuntimeInfo` for `-info` | containerd-shim-protos |
//! | [`cgroups_v1_metrics`], [`cgroups_v2_metrics`] | Stats payloads | containerd-shim-protos |
//! | [`cri_runtime_options`] | CRI's `runtimeoptions.v1.Options` (TOML body) | vendored `proto/runtimeoptions/v1/api.proto` |
//! | [`runctypes`] | old `containerd.linux.runc.CreateOptions` | vendored `proto/runctypes/runc.proto` |
//! | [`manager`] | wrend's `wren.manager.v1.Manager` API | wren's own `proto/wren/manager/v1/manager.proto` |
//!
//! The generated `create_task` ttrpc service table is deliberately not used by
//! the shim (see `shim/src/ttrpc/`), so only messages are re-exported here.

/// The environment variable through which containerd (and wrend) tell a shim
/// where to publish events: the shim contract, not a message.
pub const TTRPC_ADDRESS_ENV: &str = "TTRPC_ADDRESS";

pub use containerd_shim_protos as shim_protos;
pub use protobuf;

/// containerd 2.3's start-time bootstrap protocol.
pub use containerd_shim_protos::bootstrap_api as bootstrap;
/// `io.containerd.cgroups.v1.Metrics`.
pub use containerd_shim_protos::cgroups::metrics as cgroups_v1_metrics;
/// `io.containerd.cgroups.v2.Metrics`.
pub use containerd_shim_protos::cgroups_v2::metrics as cgroups_v2_metrics;
/// `/tasks/*` event payloads.
pub use containerd_shim_protos::events::task as events;
/// The event envelope forwarded to containerd.
pub use containerd_shim_protos::shim::event as envelope;
/// `containerd.services.events.ttrpc.v1.Events/Forward` request.
pub use containerd_shim_protos::shim::events as forward;
/// `containerd.runc.v1.*`: runtime options, exec process details, checkpoint options.
pub use containerd_shim_protos::shim::oci as runc_options;
/// Task service messages (package `containerd.task.v3`, wire-identical to v2).
pub use containerd_shim_protos::shim::shim as task;
/// `containerd.types.RuntimeInfo`, printed by `-info`.
pub use containerd_shim_protos::types::introspection;
/// Rootfs mount descriptions carried by Create.
pub use containerd_shim_protos::types::mount;
/// Process status and process info shared by the Task API.
pub use containerd_shim_protos::types::task as task_types;

mod vendored {
    include!(concat!(env!("OUT_DIR"), "/vendored/mod.rs"));
}

/// CRI's `runtimeoptions.v1.Options`: what a non-runc runtime gets through CRI.
pub use vendored::api as cri_runtime_options;
/// wrend's own API (`wren.manager.v1.Manager`), spoken by the `wren` CLI.
pub use vendored::manager;
/// The old v1 linux runtime's `containerd.linux.runc.*` messages.
pub use vendored::runc as runctypes;

/// Full type names as they appear in `Any.type_url` (containerd omits the
/// `types.googleapis.com/` prefix for its own types).
pub mod type_urls {
    /// `containerd.runc.v1.Options`.
    pub const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
    /// `containerd.runc.v1.ProcessDetails`, attached to exec pids by Pids.
    pub const RUNC_PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";
    /// `containerd.runc.v1.CheckpointOptions`.
    pub const RUNC_CHECKPOINT_OPTIONS: &str = "containerd.runc.v1.CheckpointOptions";
    /// CRI's runtime options for non-runc runtimes.
    pub const CRI_RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";
    /// Old v1 linux runtime create options.
    pub const RUNCTYPES_CREATE_OPTIONS: &str = "containerd.linux.runc.CreateOptions";
    /// JSON OCI `specs.Process`, the Exec spec.
    pub const OCI_PROCESS: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
    /// JSON OCI `specs.LinuxResources`, the Update payload.
    pub const OCI_LINUX_RESOURCES: &str =
        "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
    /// JSON OCI runtime features, in `RuntimeInfo.features`.
    pub const OCI_FEATURES: &str =
        "types.containerd.io/opencontainers/runtime-spec/1/features/Features";
    /// cgroup v1 metrics, the Stats payload on v1/hybrid hosts.
    pub const CGROUPS_V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
    /// cgroup v2 metrics, the Stats payload on unified hosts.
    pub const CGROUPS_V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";
    /// Prefix of every event payload type (`containerd.events.TaskExit`, ...).
    pub const EVENTS_PREFIX: &str = "containerd.events.";
}

/// ttrpc service and method names the shim serves and calls.
pub mod services {
    /// The Task service as containerd 1.6 / 1.7 (and 2.x with version 2) calls it.
    pub const TASK_V2: &str = "containerd.task.v2.Task";
    /// The Task service as containerd 2.x calls it for version-3 shims.
    pub const TASK_V3: &str = "containerd.task.v3.Task";
    /// containerd's events service on `TTRPC_ADDRESS`.
    pub const EVENTS: &str = "containerd.services.events.ttrpc.v1.Events";
    /// The one method of [`EVENTS`] a shim calls.
    pub const EVENTS_FORWARD: &str = "Forward";
    /// wrend's own API, served on its socket next to [`EVENTS`].
    pub const MANAGER: &str = "wren.manager.v1.Manager";
    /// The ttrpc metadata key carrying the containerd namespace.
    pub const NAMESPACE_METADATA_KEY: &str = "containerd-namespace-ttrpc";
}

/// ttrpc's own framing messages (`Request`, `Response`, `Status`, `Code`,
/// `KeyValue`) and frame constants, for the shim's own ttrpc server and
/// publisher client.
pub mod ttrpc_wire {
    pub use ttrpc::proto::{
        Code, KeyValue, Request, Response, Status, FLAG_NO_DATA, FLAG_REMOTE_CLOSED,
        MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_DATA, MESSAGE_TYPE_REQUEST,
        MESSAGE_TYPE_RESPONSE,
    };
}
