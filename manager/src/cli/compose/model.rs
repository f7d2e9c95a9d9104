//! The Compose subset `wren apply` accepts, as serde types that refuse any
//! other key by name (`deny_unknown_fields`), and each service turned into
//! the `wren run` command line that makes its container (so every flag is
//! checked exactly as on the command line).
//!
//! Runs in `wren`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::network::store;

/// A compose file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    /// The project name (default: the file's directory name).
    #[serde(default)]
    pub name: Option<String>,
    /// Obsolete in the Compose spec; accepted and ignored.
    #[serde(default)]
    pub version: Option<String>,
    pub services: BTreeMap<String, Ext<Service>>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Empty>>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<NetworkDef>>,
    /// File-based secrets (`file:`), bind-mounted read-only at
    /// /run/secrets/NAME, as Compose does without a swarm.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileSource>,
    /// File-based configs, bind-mounted read-only at /NAME (or a target).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileSource>,
}

/// A top-level secret or config: a file beside the compose file (the
/// swarm's `external`, and `environment`/`content` sources, are refused by
/// name).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    pub file: String,
}

/// A service's secret or config: the top-level name, where it goes, and
/// the swarm's ownership settings, which a bind mount cannot apply (Compose
/// ignores them too, with a warning).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Scalar>,
}

/// `T` read from a map whose `x-` keys are skipped: Compose's extension
/// fields (often a YAML anchor that services merge), which Compose ignores
/// at the top level and in a service. Every other key still reaches `T`'s
/// derived deserializer, which refuses an unknown one by name and line;
/// values are read straight from the YAML, so their errors keep theirs.
/// Serialized as `T` (the services' change hashes do not move).
#[derive(Debug, Clone)]
pub struct Ext<T>(pub T);

impl<T> std::ops::Deref for Ext<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Ext<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Serialize> Serialize for Ext<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ext<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ext<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Ext<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(SkipExtensions(map))).map(Ext)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A map without its `x-` entries (their values read and dropped).
struct SkipExtensions<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipExtensions<A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.0.next_key::<String>()? {
            if key.starts_with("x-") {
                self.0.next_value::<de::IgnoredAny>()?;
                continue;
            }
            return seed
                .deserialize(de::value::StringDeserializer::<A::Error>::new(key))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// A top-level entry that takes no settings here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    /// Only `bridge`.
    #[serde(default)]
    pub driver: Option<String>,
    /// A network made outside the file (`wren network create`), used as
    /// it is: never made or removed by `apply` and `down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// Its name on the host instead of `PROJECT_KEY` (of an external one:
    /// instead of `KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// No way out of its subnet (`wren network create --internal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// The subnet (one `config` entry with `subnet`, and its `gateway`
    /// and `ip_range`); without it wren picks a free 10.89.N.0/24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// The bridge driver's options (`wren network create -o`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<BTreeMap<String, Scalar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Pairs>,
    /// Only false: wren's networks are IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Swarm's: a bridge network can always be joined. Accepted and
    /// changes nothing, as Docker does for a bridge network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
}

/// `ipam:` of a top-level network.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    /// `default` only (host-local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfig {
    pub subnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

impl NetworkDef {
    pub fn is_external(&self) -> bool {
        self.external == Some(true)
    }

    /// What the network is made with (`wren network create`'s flags); an
    /// error names what wren cannot make.
    pub fn spec(&self, key: &str) -> Result<store::Spec, String> {
        if self.enable_ipv6 == Some(true) {
            return Err(format!(
                "networks.{key}.enable_ipv6: IPv6 is outside the subset (wren's networks are IPv4)"
            ));
        }
        let mut spec = store::Spec {
            internal: self.internal == Some(true),
            ..store::Spec::default()
        };
        for (k, v) in self.driver_opts.iter().flatten() {
            spec.options.insert(k.clone(), v.text());
        }
        for p in self.labels.iter().flat_map(Pairs::pairs) {
            let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
            spec.labels.insert(k.to_string(), v.to_string());
        }
        let Some(ipam) = &self.ipam else {
            return Ok(spec);
        };
        if !matches!(ipam.driver.as_deref(), None | Some("default")) {
            return Err(format!(
                "networks.{key}.ipam.driver: only default (host-local) is in the subset"
            ));
        }
        match ipam.config.as_slice() {
            [] => {}
            [c] => {
                spec.subnet = Some(c.subnet.clone());
                spec.gateway = c.gateway.clone();
                spec.ip_range = c.ip_range.clone();
            }
            _ => {
                return Err(format!(
                    "networks.{key}.ipam.config: one subnet per network is in the subset"
                ))
            }
        }
        Ok(spec)
    }
}

/// `env_file`: one path, or a list whose entries are paths or long forms.
/// Serialized as written, so the change hash of a short form is the one an
/// older wren computed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EnvFiles {
    One(String),
    Many(Vec<ShortOrLong<EnvFileLong>>),
}

/// An `env_file` entry's long form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFileLong {
    pub path: String,
    /// false: a missing file is skipped (Compose 2.24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StrOrList {
    Str(String),
    List(Vec<String>),
}

impl StrOrList {
    /// The strings, one for the single form.
    fn items(&self) -> Vec<String> {
        match self {
            Self::Str(s) => vec![s.clone()],
            Self::List(l) => l.clone(),
        }
    }
}

/// A YAML scalar a map value may be.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Str(s) => s.clone(),
        }
    }
}

/// A list of strings or a mapping `M` (`environment`, `labels`,
/// `depends_on`, `networks`). Read by shape, not as a serde untagged enum:
/// an untagged enum reports a mapping with a key outside the subset only as
/// "did not match any variant", where this names the key.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ListOrMap<M> {
    List(Vec<String>),
    Map(M),
}

impl<'de, M: Deserialize<'de>> Deserialize<'de> for ListOrMap<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<M>(PhantomData<M>);
        impl<'de, M: Deserialize<'de>> Visitor<'de> for V<M> {
            type Value = ListOrMap<M>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list or a mapping")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(a)).map(ListOrMap::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                M::deserialize(MapAccessDeserializer::new(a)).map(ListOrMap::Map)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An entry in Compose's short syntax (a scalar: `"8080:80"`, `data:/www`)
/// or long syntax (a mapping `L`, whose keys outside the subset are named).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ShortOrLong<L> {
    Short(Scalar),
    Long(L),
}

impl<'de, L: Deserialize<'de>> Deserialize<'de> for ShortOrLong<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<L>(PhantomData<L>);
        impl<'de, L: Deserialize<'de>> Visitor<'de> for V<L> {
            type Value = ShortOrLong<L>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a number or a mapping")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ShortOrLong::Short(Scalar::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ShortOrLong::Short(Scalar::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(|v| ShortOrLong::Short(Scalar::Int(v)))
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ShortOrLong::Short(Scalar::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ShortOrLong::Short(Scalar::Str(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                L::deserialize(MapAccessDeserializer::new(a)).map(ShortOrLong::Long)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// `ports:` long syntax. `mode` (`host`, `ingress`) only matters to a
/// swarm and is accepted as Docker Compose accepts it without one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortLong {
    pub target: Scalar,
    #[serde(default)]
    pub published: Option<Scalar>,
    #[serde(default)]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

/// `volumes:` long syntax of a service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeLong {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tmpfs: Option<TmpfsLong>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindLong>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptsLong>,
}

/// `bind:` of a long-syntax volume.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BindLong {
    /// A propagation (`rslave`, `rshared`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Make a missing host path as a directory (the short syntax always does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_host_path: Option<bool>,
    /// `z` or `Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

/// `volume:` of a long-syntax volume.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptsLong {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocopy: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsLong {
    #[serde(default)]
    pub size: Option<Scalar>,
    #[serde(default)]
    pub mode: Option<Scalar>,
}

/// `environment` and `labels`: `KEY=VALUE` lines or a map.
impl ListOrMap<BTreeMap<String, Scalar>> {
    /// The list as written, or the map as `KEY=VALUE` lines.
    fn lines(&self) -> Vec<String> {
        match self {
            Self::List(l) => l.clone(),
            Self::Map(m) => m.iter().map(|(k, v)| format!("{k}={}", v.text())).collect(),
        }
    }
}

pub type Pairs = ListOrMap<BTreeMap<String, Option<Scalar>>>;

impl Pairs {
    fn pairs(&self) -> Vec<String> {
        match self {
            Self::List(l) => l.clone(),
            Self::Map(m) => m
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={}", v.text()),
                    None => k.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Option<StrOrList>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: bool,
}

/// `depends_on`: service names, or a map of them to their condition.
pub type DependsOn = ListOrMap<BTreeMap<String, Dependency>>;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    #[serde(default = "started")]
    pub condition: String,
    /// Compose's "restart this service when the dependency is updated":
    /// accepted; `apply` recreates only what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<bool>,
    /// Only `true` (the default) is in the subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

fn started() -> String {
    "service_started".into()
}

/// A service, with the keys of the subset.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default)]
    pub command: Option<StrOrList>,
    #[serde(default)]
    pub entrypoint: Option<StrOrList>,
    #[serde(default)]
    pub environment: Option<Pairs>,
    /// A path, or a list of paths and `{path, required}` entries.
    #[serde(default)]
    pub env_file: Option<EnvFiles>,
    #[serde(default)]
    pub ports: Vec<ShortOrLong<PortLong>>,
    #[serde(default)]
    pub volumes: Vec<ShortOrLong<VolumeLong>>,
    #[serde(default)]
    pub networks: Option<ServiceNetworks>,
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    #[serde(default)]
    pub user: Option<Scalar>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub tmpfs: Option<StrOrList>,
    #[serde(default)]
    pub mem_limit: Option<Scalar>,
    #[serde(default)]
    pub cpus: Option<Scalar>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub labels: Option<Pairs>,
    // Keys added later: left out of the serialized form when unset, so the
    // hash of a service that does not use them (its change detection) stays
    // what an older wren computed.
    /// The container's hostname (default: the service's name, which peers
    /// find it by either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The container's name instead of `PROJECT-SERVICE-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `NAME:IP` / `NAME=IP` lines, or a map of names to addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<ListOrMap<BTreeMap<String, Scalar>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<StrOrList>,
    /// `host` or `private` (`--pid`, `--ipc`, `--uts`); each also
    /// `service:NAME` or `container:NAME`, `ipc` also `shareable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<StrOrList>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `host`, `none`, `service:NAME` or `container:NAME` (instead of
    /// `networks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `SERVICE` or `SERVICE:ALIAS` (Compose's legacy links): SERVICE is
    /// started first, and found by ALIAS too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Top-level secrets it gets, by name or long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ShortOrLong<FileRef>>,
    /// Top-level configs it gets, by name or long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ShortOrLong<FileRef>>,
    /// `missing` (or `if_not_present`), `always` or `never`: whether
    /// `apply` pulls the image first. Not hashed (the container is the
    /// same either way).
    #[serde(default, skip_serializing)]
    pub pull_policy: Option<String>,
    /// More supplementary groups (names or GIDs): `--group-add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<Scalar>,
    /// Host devices, `HOST[:CONTAINER[:PERMS]]` each: `--device`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// `NAME: N` or `NAME: {soft, hard}`: `--ulimit`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, ShortOrLong<UlimitLong>>,
    /// `KEY=VALUE` lines or a map: `--sysctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<ListOrMap<BTreeMap<String, Scalar>>>,
    /// `--shm-size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Scalar>,
    /// `--memory-swap`, `--memory-reservation`, `--cpuset-cpus`,
    /// `--oom-score-adj`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// `--cgroup-parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `--platform`: the image is pulled for it, and one in the store for
    /// another platform is pulled again (or refused with `pull_policy:
    /// never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// `--cpu-shares`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// `driver: json-file|local` (wren's own rotated files either way)
    /// and `options` `max-size`, `max-file`: `--log-opt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// The service is made only when one of these profiles is active
    /// (`--profile`, `COMPOSE_PROFILES`); none: always. Not part of the
    /// change hash: it says whether the container exists, not what it is.
    #[serde(default, skip_serializing)]
    pub profiles: Vec<String>,
    /// Only `resources.limits` (as Docker Compose applies it without a
    /// swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// A terminal (`-t`): its output goes to the log; `wren attach` joins it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Keep stdin open (`-i`), for `wren attach`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// Ports the service listens on, for its peers: documentation only, as
    /// in Compose (peers reach every port of a service on its network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<Scalar>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UlimitLong {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, Scalar>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub cpus: Option<Scalar>,
    #[serde(default)]
    pub memory: Option<Scalar>,
    #[serde(default)]
    pub pids: Option<i64>,
}

/// `networks:` of a service: a list of names, or a map of names to their
/// settings there (aliases, address, priorities).
pub type ServiceNetworks = ListOrMap<BTreeMap<String, Option<NetworkAttach>>>;

/// A service's settings on one network: more names peers find it by.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttach {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Its address on the network (`--ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Of several networks, the one with the highest has the default
    /// route (and the published ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw_priority: Option<i64>,
    /// Of several networks, those with higher ones are attached first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

impl ServiceNetworks {
    /// The networks in the order they are attached, as Compose orders
    /// them: the one with the highest `gw_priority` first (it has the
    /// default route and the published ports), then by `priority`, then
    /// by name.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::List(l) => {
                let mut l = l.clone();
                l.sort();
                l
            }
            Self::Map(m) => {
                let mut v: Vec<(&String, NetworkAttach)> = m
                    .iter()
                    .map(|(k, a)| (k, a.clone().unwrap_or_default()))
                    .collect();
                v.sort_by_key(|(k, a)| {
                    (
                        std::cmp::Reverse(a.gw_priority.unwrap_or(0)),
                        std::cmp::Reverse(a.priority.unwrap_or(0)),
                        (*k).clone(),
                    )
                });
                v.into_iter().map(|(k, _)| k.clone()).collect()
            }
        }
    }
}

impl Service {
    /// (dependency, condition) pairs.
    /// The env files to read, resolved against `dir`: every required one,
    /// and an optional one (`required: false`) only if it is there.
    pub fn env_files(&self, dir: &Path) -> Vec<std::path::PathBuf> {
        let entries: Vec<(String, bool)> = match &self.env_file {
            None => Vec::new(),
            Some(EnvFiles::One(p)) => vec![(p.clone(), true)],
            Some(EnvFiles::Many(l)) => l
                .iter()
                .map(|e| match e {
                    ShortOrLong::Short(p) => (p.text(), true),
                    ShortOrLong::Long(l) => (l.path.clone(), l.required != Some(false)),
                })
                .collect(),
        };
        entries
            .into_iter()
            .map(|(p, required)| (dir.join(p), required))
            .filter(|(p, required)| *required || p.exists())
            .map(|(p, _)| p)
            .collect()
    }

    /// The services it waits for, with the condition: its `depends_on`,
    /// and (started) the services whose namespaces it joins.
    pub fn depends(&self) -> Vec<(String, String)> {
        let mut deps: Vec<(String, String)> = match &self.depends_on {
            None => Vec::new(),
            Some(ListOrMap::List(l)) => l.iter().map(|s| (s.clone(), started())).collect(),
            Some(ListOrMap::Map(m)) => m
                .iter()
                .map(|(k, d)| (k.clone(), d.condition.clone()))
                .collect(),
        };
        for other in self.joins() {
            if !deps.iter().any(|(d, _)| d == other) {
                deps.push((other.to_string(), started()));
            }
        }
        for (other, _) in self.links() {
            if !deps.iter().any(|(d, _)| *d == other) {
                deps.push((other, started()));
            }
        }
        deps
    }

    /// Its `links`, as (service, alias): `db` is (db, db).
    pub fn links(&self) -> Vec<(String, String)> {
        self.links
            .iter()
            .map(|l| match l.split_once(':') {
                Some((svc, alias)) => (svc.to_string(), alias.to_string()),
                None => (l.clone(), l.clone()),
            })
            .collect()
    }

    /// The services whose namespaces it joins (`network_mode`, `pid`,
    /// `ipc` or `uts` `service:NAME`).
    pub fn joins(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for mode in [&self.network_mode, &self.pid, &self.ipc, &self.uts]
            .into_iter()
            .flatten()
        {
            if let Some(other) = mode.strip_prefix("service:") {
                if !out.contains(&other) {
                    out.push(other);
                }
            }
        }
        out
    }
}

/// A shell-like split of a string command (quotes and backslashes).
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                have = true;
            }
            (None, c) if c.is_whitespace() => {
                if have || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {s:?}"));
    }
    if have || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Names given to what a project makes: a service's container is its
/// `container_name`, else `PROJECT-SERVICE-1`.
pub fn container_name(project: &str, service: &str, s: &Service) -> String {
    s.container_name
        .clone()
        .unwrap_or_else(|| format!("{project}-{service}-1"))
}

/// `service:NAME` (a service of the file) or `container:NAME` (any
/// container) as wren's `container:NAME`.
fn joined_mode(project: &str, file: &ComposeFile, at: &str, mode: &str) -> Result<String, String> {
    match mode.split_once(':') {
        Some(("service", other)) => match file.services.get(other) {
            Some(o) => Ok(format!("container:{}", container_name(project, other, o))),
            None => Err(format!("{at}: {mode:?}: no service {other:?} in the file")),
        },
        Some(("container", other)) if !other.is_empty() => Ok(mode.to_string()),
        _ => Err(format!(
            "{at}: {mode:?}: want service:NAME or container:NAME"
        )),
    }
}

/// The host's name of network `net` of the file (`default` too): its
/// `name`, else `net` itself if it is external, else `PROJECT_NET`.
pub fn network_name(project: &str, file: &ComposeFile, net: &str) -> String {
    let name = file
        .networks
        .get(net)
        .and_then(|d| d.as_ref()?.name.clone());
    match (name, file.network_is_external(net)) {
        (Some(n), _) => n,
        (None, true) => net.to_string(),
        (None, false) => format!("{project}_{net}"),
    }
}

impl ComposeFile {
    /// Whether network `net` of the file is made elsewhere.
    pub fn network_is_external(&self, net: &str) -> bool {
        self.networks
            .get(net)
            .is_some_and(|d| d.as_ref().is_some_and(NetworkDef::is_external))
    }
}

pub fn volume_name(project: &str, vol: &str) -> String {
    format!("{project}_{vol}")
}

/// A long-syntax port as `-p` text: `[IP:][PUBLISHED]:TARGET[/PROTO]`.
fn port_text(p: &PortLong) -> Result<String, String> {
    if let Some(m) = &p.mode {
        if !matches!(m.as_str(), "host" | "ingress") {
            return Err(format!("mode {m:?}: want host or ingress"));
        }
    }
    let mut t = String::new();
    if let Some(ip) = &p.host_ip {
        if ip.contains(':') {
            t.push_str(&format!("[{ip}]:"));
        } else {
            t.push_str(&format!("{ip}:"));
        }
    }
    let published = p.published.as_ref().map(Scalar::text).unwrap_or_default();
    if !t.is_empty() || !published.is_empty() {
        t.push_str(&format!("{published}:"));
    }
    t.push_str(&p.target.text());
    if let Some(proto) = &p.protocol {
        t.push_str(&format!("/{proto}"));
    }
    Ok(t)
}

/// The `wren run -d` arguments (after `run`) that make service `name`.
/// `dir` is the compose file's directory (relative paths start there).
/// A bind volume's host path: `~/` from $HOME, relative ones from the
/// compose file's directory.
fn bind_source(dir: &Path, src: &str) -> std::path::PathBuf {
    let p = match src.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(rest),
            None => dir.join(src),
        },
        None => dir.join(src),
    };
    std::path::absolute(&p).unwrap_or(p)
}

/// The bind sources of `s` that do not exist and are to be made as
/// directories first, as Docker Compose makes them: every short-syntax
/// one, and long-syntax ones with `bind: {create_host_path: true}`.
pub fn missing_bind_sources(s: &Service, dir: &Path) -> Vec<std::path::PathBuf> {
    s.volumes
        .iter()
        .filter_map(|v| match v {
            ShortOrLong::Short(v) => {
                let v = v.text();
                let (src, _) = v.split_once(':')?;
                (src.starts_with('.') || src.starts_with('/') || src.starts_with('~'))
                    .then(|| bind_source(dir, src))
            }
            ShortOrLong::Long(l) => {
                let create = l.bind.as_ref().and_then(|b| b.create_host_path) == Some(true);
                let src = l.source.as_deref().filter(|_| l.kind == "bind" && create)?;
                Some(bind_source(dir, src))
            }
        })
        .filter(|p| !p.exists())
        .collect()
}

/// The names other services link service `name` by (`links: [name:ALIAS]`),
/// besides its own: more aliases of it on its networks. Compose scopes a
/// link's alias to the linking container; here every peer on the network
/// finds it so (wren's /etc/hosts is per network, not per peer).
pub fn linked_aliases(file: &ComposeFile, name: &str) -> Vec<String> {
    let mut out: Vec<String> = file
        .services
        .values()
        .flat_map(|s| s.links())
        .filter(|(svc, alias)| svc == name && alias != name)
        .map(|(_, alias)| alias)
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn run_args(
    project: &str,
    name: &str,
    s: &Service,
    file: &ComposeFile,
    dir: &Path,
    hash: &str,
) -> Result<Vec<String>, String> {
    let at = |key: &str| format!("services.{name}.{key}");
    for (svc, alias) in s.links() {
        if !file.services.contains_key(&svc) {
            return Err(format!(
                "{}: {svc:?} is not a service of the file",
                at("links")
            ));
        }
        if !crate::network::valid_network_name(&alias) {
            return Err(format!(
                "{}: alias {alias:?}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit",
                at("links")
            ));
        }
        if file.services[&svc].network_mode.is_some() {
            return Err(format!(
                "{}: {svc} has a network_mode: it is on no network of the file",
                at("links")
            ));
        }
    }
    let linked = linked_aliases(file, name);
    let mut a: Vec<String> = vec![
        "-d".into(),
        "--name".into(),
        container_name(project, name, s),
    ];
    // A service in another's network or UTS namespace has that one's name
    // (an explicit hostname there is refused, as by Docker).
    let joins_name = [&s.network_mode, &s.uts]
        .into_iter()
        .flatten()
        .any(|m| m.starts_with("service:") || m.starts_with("container:"));
    if s.hostname.is_some() || !joins_name {
        a.extend([
            "--hostname".into(),
            s.hostname.clone().unwrap_or_else(|| name.to_string()),
        ]);
    }
    a.extend(["--label".into(), format!("wren.compose.project={project}")]);
    a.extend(["--label".into(), format!("wren.compose.service={name}")]);
    a.extend(["--label".into(), format!("wren.compose.hash={hash}")]);
    if let Some(l) = &s.labels {
        for p in l.pairs() {
            a.extend(["--label".into(), p]);
        }
    }
    if let Some(e) = &s.environment {
        for p in e.pairs() {
            a.extend(["-e".into(), p]);
        }
    }
    for f in s.env_files(dir) {
        if !f.is_file() {
            return Err(format!("{}: {} is not a file", at("env_file"), f.display()));
        }
        a.extend(["--env-file".into(), f.display().to_string()]);
    }
    for p in &s.ports {
        let text = match p {
            ShortOrLong::Short(p) => p.text(),
            ShortOrLong::Long(p) => port_text(p).map_err(|e| format!("{}: {e}", at("ports")))?,
        };
        a.extend(["-p".into(), text]);
    }
    for v in &s.volumes {
        let (kind, src, target, opts, tmpfs) = match v {
            ShortOrLong::Short(v) => {
                let v = v.text();
                let (src, rest) = v.split_once(':').ok_or_else(|| {
                    format!("{}: {v:?}: want SOURCE:TARGET[:OPTIONS]", at("volumes"))
                })?;
                let kind = if src.starts_with('.') || src.starts_with('/') || src.starts_with('~') {
                    "bind"
                } else {
                    "volume"
                };
                let (target, opts) = rest.split_once(':').unwrap_or((rest, ""));
                // `wren run -v` checks the options themselves.
                let opts: Vec<String> = opts
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(String::from)
                    .collect();
                (kind, Some(src.to_string()), target.to_string(), opts, None)
            }
            ShortOrLong::Long(v) => {
                let mut opts = Vec::new();
                if v.read_only {
                    opts.push("ro".to_string());
                }
                if let Some(b) = &v.bind {
                    opts.extend(b.propagation.clone());
                    opts.extend(b.selinux.clone());
                }
                if v.volume.as_ref().and_then(|o| o.nocopy) == Some(true) {
                    opts.push("nocopy".to_string());
                }
                (
                    v.kind.as_str(),
                    v.source.clone(),
                    v.target.clone(),
                    opts,
                    v.tmpfs.as_ref(),
                )
            }
        };
        if let ShortOrLong::Long(l) = v {
            let misplaced = match kind {
                "bind" => l.volume.is_some().then_some("volume"),
                "volume" => l.bind.is_some().then_some("bind"),
                _ => (l.bind.is_some() || l.volume.is_some()).then_some("bind/volume"),
            };
            if let Some(k) = misplaced {
                return Err(format!(
                    "{}: {target}: the {k} key does not apply to type {kind}",
                    at("volumes")
                ));
            }
        }
        let ro = opts.iter().any(|o| o == "ro");
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!(":{}", opts.join(","))
        };
        match (kind, src) {
            ("bind", Some(src)) => {
                let p = bind_source(dir, &src);
                a.extend(["-v".into(), format!("{}:{target}{opts}", p.display())]);
            }
            ("volume", Some(src)) if file.volumes.contains_key(&src) => {
                a.extend([
                    "-v".into(),
                    format!("{}:{target}{opts}", volume_name(project, &src)),
                ]);
            }
            ("volume", Some(src)) => {
                return Err(format!(
                    "{}: volume {src:?} is not declared under the top-level volumes",
                    at("volumes")
                ))
            }
            ("tmpfs", None) => {
                let mut opts = Vec::new();
                if ro {
                    opts.push("ro".to_string());
                }
                if let Some(t) = tmpfs {
                    if let Some(size) = &t.size {
                        opts.push(format!("size={}", size.text()));
                    }
                    if let Some(mode) = &t.mode {
                        opts.push(format!("mode={}", mode.text()));
                    }
                }
                let opts = if opts.is_empty() {
                    String::new()
                } else {
                    format!(":{}", opts.join(","))
                };
                a.extend(["--tmpfs".into(), format!("{target}{opts}")]);
            }
            ("bind" | "volume", None) => {
                return Err(format!(
                "{}: {target}: a {kind} needs a source (anonymous volumes are not in the subset)",
                at("volumes")
            ))
            }
            ("tmpfs", Some(_)) => {
                return Err(format!(
                    "{}: {target}: a tmpfs takes no source",
                    at("volumes")
                ))
            }
            (other, _) => {
                return Err(format!(
                    "{}: {target}: type {other:?} is not in the subset (bind, volume, tmpfs)",
                    at("volumes")
                ))
            }
        }
    }
    let nets = s.networks.as_ref().map(|n| n.names()).unwrap_or_default();
    for one in &nets {
        if !file.networks.contains_key(one) && one != "default" {
            return Err(format!(
                "{}: network {one:?} is not declared under the top-level networks",
                at("networks")
            ));
        }
    }
    let net = match (s.network_mode.as_deref(), nets.as_slice()) {
        (Some(m @ ("host" | "none")), []) => m.to_string(),
        (Some(m), []) if m.starts_with("service:") || m.starts_with("container:") => {
            joined_mode(project, file, &at("network_mode"), m)?
        }
        (Some(m), []) => {
            return Err(format!(
                "{}: {m:?} is not in the subset (host, none, service:NAME, container:NAME)",
                at("network_mode")
            ))
        }
        (Some(_), _) => {
            return Err(format!(
                "{}: give network_mode or networks, not both",
                at("network_mode")
            ))
        }
        (None, []) => network_name(project, file, "default"),
        (None, [one, ..]) => network_name(project, file, one),
    };
    let settings = |n: &str| match &s.networks {
        Some(ListOrMap::Map(m)) => m.get(n).cloned().flatten().unwrap_or_default(),
        _ => NetworkAttach::default(),
    };
    if nets.len() > 1 {
        // Each network with its own aliases and address, in Docker's
        // per-network form; peers on each find the service by its name.
        for n in &nets {
            let set = settings(n);
            let mut v = format!("name={},alias={name}", network_name(project, file, n));
            let mut aliases: Vec<&String> = set.aliases.iter().filter(|a| *a != name).collect();
            for l in &linked {
                if !aliases.contains(&l) {
                    aliases.push(l);
                }
            }
            for alias in aliases {
                v.push_str(&format!(",alias={alias}"));
            }
            if let Some(ip) = &set.ipv4_address {
                v.push_str(&format!(",ip={ip}"));
            }
            a.extend(["--network".into(), v]);
        }
    } else {
        if !matches!(net.as_str(), "host" | "none") && !net.starts_with("container:") {
            // Peers find a service by its name whatever its hostname and
            // container name, as in Compose; and by its aliases.
            let set = nets.first().map(|n| settings(n)).unwrap_or_default();
            let mut aliases = vec![name.to_string()];
            for a in set.aliases.into_iter().chain(linked.iter().cloned()) {
                if !aliases.contains(&a) {
                    aliases.push(a);
                }
            }
            for alias in aliases {
                a.extend(["--network-alias".into(), alias]);
            }
            if let Some(ip) = set.ipv4_address {
                a.extend(["--ip".into(), ip]);
            }
        }
        a.extend(["--network".into(), net]);
    }
    if let Some(r) = &s.restart {
        a.extend(["--restart".into(), r.clone()]);
    }
    if let Some(h) = &s.healthcheck {
        if h.disable {
            a.push("--no-healthcheck".into());
        } else {
            let cmd = match &h.test {
                None => None,
                Some(StrOrList::Str(s)) => Some(s.clone()),
                Some(StrOrList::List(l)) => match l.first().map(String::as_str) {
                    Some("NONE") => None,
                    Some("CMD-SHELL") if l.len() == 2 => Some(l[1].clone()),
                    Some("CMD") if l.len() >= 2 => Some(
                        l[1..]
                            .iter()
                            .map(|w| shell_quote(w))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    _ => {
                        return Err(format!(
                            "{}: want [\"CMD\", ...], [\"CMD-SHELL\", cmd] or [\"NONE\"]",
                            at("healthcheck.test")
                        ))
                    }
                },
            };
            match cmd {
                Some(c) => a.extend(["--health-cmd".into(), c]),
                None => a.push("--no-healthcheck".into()),
            }
            for (flag, v) in [
                ("--health-interval", &h.interval),
                ("--health-timeout", &h.timeout),
                ("--health-start-period", &h.start_period),
            ] {
                if let Some(v) = v {
                    a.extend([flag.into(), v.clone()]);
                }
            }
            if let Some(r) = h.retries {
                a.extend(["--health-retries".into(), r.to_string()]);
            }
        }
    }
    if let Some(h) = &s.extra_hosts {
        for l in h.lines() {
            // `NAME=IP` (any address) or `NAME:IP`: --add-host's NAME:IP.
            let (n, ip) = l
                .split_once('=')
                .or_else(|| l.split_once(':'))
                .ok_or_else(|| format!("{}: {l:?}: want NAME:IP or NAME=IP", at("extra_hosts")))?;
            a.extend(["--add-host".into(), format!("{n}:{ip}")]);
        }
    }
    if let Some(d) = &s.dns {
        for d in d.items() {
            a.extend(["--dns".into(), d]);
        }
    }
    if let Some(d) = &s.dns_search {
        for d in d.items() {
            a.extend(["--dns-search".into(), d]);
        }
    }
    for r in &s.device_cgroup_rules {
        a.extend(["--device-cgroup-rule".into(), r.clone()]);
    }
    for o in &s.dns_opt {
        a.extend(["--dns-option".into(), o.clone()]);
    }
    for (flag, mode) in [("--pid", &s.pid), ("--ipc", &s.ipc), ("--uts", &s.uts)] {
        if let Some(m) = mode {
            let m = if m.starts_with("service:") {
                joined_mode(project, file, &at(&flag[2..]), m)?
            } else {
                m.clone()
            };
            a.extend([flag.to_string(), m]);
        }
    }
    if let Some(sig) = &s.stop_signal {
        a.extend(["--stop-signal".into(), sig.clone()]);
    }
    if let Some(g) = &s.stop_grace_period {
        let ms = crate::cli::health::parse_duration(&at("stop_grace_period"), g)
            .map_err(|e| e.message)?;
        a.extend(["--stop-timeout".into(), ms.div_ceil(1000).to_string()]);
    }
    if s.init == Some(true) {
        a.push("--init".into());
    }
    if s.privileged == Some(true) {
        a.push("--privileged".into());
    }
    for (flag, list) in [
        ("--cap-add", &s.cap_add),
        ("--cap-drop", &s.cap_drop),
        ("--security-opt", &s.security_opt),
    ] {
        for v in list {
            a.extend([flag.into(), v.clone()]);
        }
    }
    for (key, refs, declared, default_dir) in [
        ("secrets", &s.secrets, &file.secrets, "/run/secrets"),
        ("configs", &s.configs, &file.configs, "/"),
    ] {
        for r in refs {
            let (source, target, owner) = match r {
                ShortOrLong::Short(n) => (n.text(), None, false),
                ShortOrLong::Long(l) => (
                    l.source.clone(),
                    l.target.clone(),
                    l.uid.is_some() || l.gid.is_some() || l.mode.is_some(),
                ),
            };
            let Some(def) = declared.get(&source) else {
                return Err(format!(
                    "{}: {source:?} is not declared under the top-level {key}",
                    at(key)
                ));
            };
            if owner {
                eprintln!(
                    "warning: {}: uid, gid and mode of {source:?} are ignored (a bind mount keeps the file's own), as Compose does",
                    at(key)
                );
            }
            let host = dir.join(&def.file);
            let host = std::path::absolute(&host).unwrap_or(host);
            if !host.is_file() {
                return Err(format!(
                    "{key}.{source}.file: {} is not a file",
                    host.display()
                ));
            }
            let target = target.unwrap_or_else(|| source.clone());
            let target = Path::new(default_dir).join(&target);
            a.extend([
                "-v".into(),
                format!("{}:{}:ro", host.display(), target.display()),
            ]);
        }
    }
    for d in &s.devices {
        a.extend(["--device".into(), d.clone()]);
    }
    if s.tty {
        a.push("--tty".into());
    }
    if s.stdin_open {
        a.push("--interactive".into());
    }
    for g in &s.group_add {
        a.extend(["--group-add".into(), g.text()]);
    }
    for (name, u) in &s.ulimits {
        let limit = match u {
            ShortOrLong::Short(n) => n.text(),
            ShortOrLong::Long(l) => format!("{}:{}", l.soft, l.hard),
        };
        a.extend(["--ulimit".into(), format!("{name}={limit}")]);
    }
    if let Some(sc) = &s.sysctls {
        for l in sc.lines() {
            a.extend(["--sysctl".into(), l]);
        }
    }
    if let Some(sz) = &s.shm_size {
        a.extend(["--shm-size".into(), sz.text()]);
    }
    for (flag, v) in [
        ("--memory-swap", s.memswap_limit.as_ref().map(Scalar::text)),
        (
            "--memory-reservation",
            s.mem_reservation.as_ref().map(Scalar::text),
        ),
        ("--cpuset-cpus", s.cpuset.clone()),
        ("--oom-score-adj", s.oom_score_adj.map(|n| n.to_string())),
        ("--cpu-shares", s.cpu_shares.map(|n| n.to_string())),
        ("--cgroup-parent", s.cgroup_parent.clone()),
        ("--platform", s.platform.clone()),
    ] {
        if let Some(v) = v {
            a.extend([flag.into(), v]);
        }
    }
    if let Some(l) = &s.logging {
        if let Some(d) = l
            .driver
            .as_deref()
            .filter(|d| !matches!(*d, "json-file" | "local"))
        {
            return Err(format!(
                "{}: {d:?} is outside the subset (json-file, local: wren's own rotated log files)",
                at("logging.driver")
            ));
        }
        for (k, v) in &l.options {
            if !matches!(k.as_str(), "max-size" | "max-file") {
                return Err(format!(
                    "{}: outside the subset (max-size, max-file)",
                    at(&format!("logging.options.{k}"))
                ));
            }
            a.extend(["--log-opt".into(), format!("{k}={}", v.text())]);
        }
    }
    if let Some(u) = &s.user {
        a.extend(["--user".into(), u.text()]);
    }
    if let Some(w) = &s.working_dir {
        a.extend(["-w".into(), w.clone()]);
    }
    if s.read_only {
        a.push("--read-only".into());
    }
    if let Some(t) = &s.tmpfs {
        for t in t.items() {
            a.extend(["--tmpfs".into(), t]);
        }
    }
    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    // A limit given both ways must agree (Compose refuses a conflict too).
    fn one<T: Clone + PartialEq>(
        key: &str,
        service_key: Option<&T>,
        deploy_key: Option<&T>,
    ) -> Result<Option<T>, String> {
        match (service_key, deploy_key) {
            (Some(a), Some(b)) if a != b => Err(format!(
                "{key} and deploy.resources.limits disagree; give one"
            )),
            (a, b) => Ok(a.or(b).cloned()),
        }
    }
    let text = |v: Option<&Scalar>| v.map(Scalar::text);
    let memory = one(
        &at("mem_limit"),
        text(s.mem_limit.as_ref()).as_ref(),
        text(limits.and_then(|l| l.memory.as_ref())).as_ref(),
    )?;
    let cpus = one(
        &at("cpus"),
        text(s.cpus.as_ref()).as_ref(),
        text(limits.and_then(|l| l.cpus.as_ref())).as_ref(),
    )?;
    let pids = one(
        &at("pids_limit"),
        s.pids_limit.as_ref(),
        limits.and_then(|l| l.pids.as_ref()),
    )?;
    if let Some(m) = memory {
        a.extend(["--memory".into(), m]);
    }
    if let Some(c) = cpus {
        a.extend(["--cpus".into(), c]);
    }
    if let Some(p) = pids {
        a.extend(["--pids-limit".into(), p.to_string()]);
    }
    let mut cmd: Vec<String> = match &s.command {
        None => Vec::new(),
        Some(StrOrList::Str(c)) => split_words(c).map_err(|e| format!("{}: {e}", at("command")))?,
        Some(StrOrList::List(l)) => l.clone(),
    };
    if let Some(e) = &s.entrypoint {
        let words = match e {
            StrOrList::Str(c) => {
                split_words(c).map_err(|e| format!("{}: {e}", at("entrypoint")))?
            }
            StrOrList::List(l) => l.clone(),
        };
        let (first, rest) = words
            .split_first()
            .map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
        a.extend(["--entrypoint".into(), first.to_string()]);
        // The entrypoint's further words go before the command.
        let mut full = rest.to_vec();
        full.append(&mut cmd);
        cmd = full;
    }
    a.push(s.image.clone());
    if !cmd.is_empty() {
        a.push("--".into());
        a.extend(cmd);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<ComposeFile, String> {
        serde_saphyr::from_str::<Ext<ComposeFile>>(y)
            .map(|f| f.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn extension_keys_are_skipped_and_anchors_merge() {
        let f = parse(
            "x-common: &common\n  restart: always\n  labels: {team: edge}\n\
             services:\n  web:\n    <<: *common\n    x-note: anything\n    image: a\n",
        )
        .unwrap();
        let s = &f.services["web"];
        assert_eq!(s.restart.as_deref(), Some("always"));
        assert!(s.labels.is_some());
        // Not an extension: still refused by name.
        let e = parse("services:\n  web:\n    image: a\n    xnote: 1\n").unwrap_err();
        assert!(e.contains("xnote"), "{e}");
        let e = parse("services: {}\ny-top: 1\n").unwrap_err();
        assert!(e.contains("y-top"), "{e}");
        // The hashed form is the service's own, without the extension.
        let plain = parse("services:\n  web:\n    image: a\n").unwrap();
        let with = parse("services:\n  web:\n    image: a\n    x-a: 1\n").unwrap();
        assert_eq!(
            serde_json::to_string(&*plain.services["web"]).unwrap(),
            serde_json::to_string(&*with.services["web"]).unwrap()
        );
    }

    #[test]
    fn devices_limits_sysctls_and_shm_become_flags() {
        let f = parse(
            "services:\n  a:\n    image: i\n    devices: [\"/dev/ttyUSB0:/dev/serial:rw\"]\n    \
             ulimits:\n      nofile: {soft: 10, hard: 20}\n      nproc: 5\n    \
             sysctls: [\"net.core.somaxconn=1024\"]\n    shm_size: 1g\n    group_add: [dialout, 20]\n    \
             tty: true\n    stdin_open: true\n    mem_limit: 64m\n    memswap_limit: 128m\n    \
             mem_reservation: 32m\n    cpuset: \"0-1\"\n    oom_score_adj: -100\n    \
             cpu_shares: 512\n    cgroup_parent: edge.slice/apps\n    platform: linux/arm64\n",
        )
        .unwrap();
        let args = run_args("p", "a", &f.services["a"], &f, Path::new("/"), "h").unwrap();
        let line = args.join(" ");
        for want in [
            "--device /dev/ttyUSB0:/dev/serial:rw",
            "--ulimit nofile=10:20 --ulimit nproc=5",
            "--sysctl net.core.somaxconn=1024",
            "--shm-size 1g",
            "--group-add dialout --group-add 20",
            "--tty --interactive",
            "--memory-swap 128m --memory-reservation 32m --cpuset-cpus 0-1 --oom-score-adj -100 \
             --cpu-shares 512 --cgroup-parent edge.slice/apps --platform linux/arm64",
        ] {
            assert!(line.contains(want), "{want}: {line}");
        }
        let e =
            parse("services:\n  a:\n    image: i\n    ulimits:\n      nofile: {soft: 1, max: 2}\n")
                .unwrap_err();
        assert!(e.contains("max"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("services:\n  web:\n    image: a\n    build: .\n").unwrap_err();
        assert!(e.contains("build"), "{e}");
        let e = parse("services: {}\ninclude: [more.yaml]\n").unwrap_err();
        assert!(e.contains("include"), "{e}");
    }

    #[test]
    fn a_service_becomes_run_flags() {
        let f = parse(
            "name: p\nservices:\n  web:\n    image: busybox\n    command: httpd -f -p '8080'\n    \
             environment:\n      A: 1\n    ports: [\"127.0.0.1:8080:8080\", 9000]\n    \
             volumes: [\"data:/data:ro\"]\n    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"x y\"]\n      \
             interval: 1s\n    depends_on:\n      db:\n        condition: service_healthy\n  \
             db:\n    image: busybox\nvolumes:\n  data:\n",
        )
        .unwrap();
        let s = &f.services["web"];
        assert_eq!(
            s.depends(),
            [("db".to_string(), "service_healthy".to_string())]
        );
        let a = run_args("p", "web", s, &f, Path::new("/d"), "h").unwrap();
        let j = a.join(" ");
        assert!(j.contains("--name p-web-1"), "{j}");
        assert!(j.contains("-e A=1"), "{j}");
        assert!(j.contains("-p 127.0.0.1:8080:8080 -p 9000"), "{j}");
        assert!(j.contains("-v p_data:/data:ro"), "{j}");
        assert!(j.contains("--network p_default"), "{j}");
        assert!(
            j.contains("--health-cmd 'wget' '-q' 'x y' --health-interval 1s"),
            "{j}"
        );
        assert!(j.ends_with("busybox -- httpd -f -p 8080"), "{j}");
        let mut bad = s.clone();
        bad.volumes = vec![ShortOrLong::Short(Scalar::Str("nope:/x".into()))];
        assert!(run_args("p", "web", &bad, &f, Path::new("/d"), "h")
            .unwrap_err()
            .contains("volume \"nope\""));
    }

    #[test]
    fn long_syntax_ports_and_volumes() {
        let f = parse(
            "name: p\nservices:\n  web:\n    image: busybox\n    ports:\n      \
             - target: 80\n        published: \"8080\"\n        host_ip: 127.0.0.1\n        protocol: tcp\n        mode: host\n      \
             - target: 53\n        protocol: udp\n      \
             - {target: 90, published: 9000-9010}\n    volumes:\n      \
             - type: volume\n        source: data\n        target: /data\n        read_only: true\n      \
             - {type: bind, source: ./site, target: /www}\n      \
             - {type: tmpfs, target: /run, tmpfs: {size: 64m}}\n      \
             - data:/more:rw\nvolumes:\n  data: {}\n",
        )
        .unwrap();
        let a = run_args("p", "web", &f.services["web"], &f, Path::new("/d"), "h").unwrap();
        let j = a.join(" ");
        assert!(
            j.contains("-p 127.0.0.1:8080:80/tcp -p 53/udp -p 9000-9010:90 "),
            "{j}"
        );
        assert!(
            j.contains(
                "-v p_data:/data:ro -v /d/site:/www --tmpfs /run:size=64m -v p_data:/more:rw "
            ),
            "{j}"
        );
    }

    #[test]
    fn keys_outside_the_subset_are_named_in_every_form() {
        for (y, key) in [
            ("ports:\n      - {target: 80, name: web}\n", "name"),
            ("volumes:\n      - {type: bind, source: /a, target: /b, bind: {recursive: disabled}}\n", "recursive"),
            ("depends_on:\n      db: {condition: service_healthy, mystery: 1}\n", "mystery"),
            ("networks:\n      front: {ipv6_address: \"fd00::9\"}\n", "ipv6_address"),
        ] {
            let e = parse(&format!("services:\n  web:\n    image: a\n    {y}")).unwrap_err();
            assert!(e.contains(key) && !e.contains("did not match any variant"), "{y}: {e}");
        }
        let f = parse(
            "services:\n  web:\n    image: a\n    volumes:\n      - {type: npipe, source: a, target: /b}\n",
        )
        .unwrap();
        let e = run_args("p", "web", &f.services["web"], &f, Path::new("/d"), "h").unwrap_err();
        assert!(
            e.contains("services.web.volumes") && e.contains("npipe"),
            "{e}"
        );
        let f = parse(
            "services:\n  web:\n    image: a\n    volumes:\n      \
             - {type: tmpfs, target: /t, bind: {propagation: rslave}}\n",
        )
        .unwrap();
        let e = run_args("p", "web", &f.services["web"], &f, Path::new("/d"), "h").unwrap_err();
        assert!(
            e.contains("the bind/volume key does not apply to type tmpfs"),
            "{e}"
        );
    }

    #[test]
    fn volume_options_reach_run() {
        let f = parse(
            "services:\n  web:\n    image: a\n    volumes:\n      \
             - /a:/b:ro,rslave\n      - ./c:/c:z\n      - data:/d:nocopy\n      \
             - {type: bind, source: /e, target: /e, read_only: true, \
             bind: {propagation: rshared, selinux: Z, create_host_path: true}}\n      \
             - {type: volume, source: data, target: /f, volume: {nocopy: true}}\n      \
             - {type: tmpfs, target: /t, read_only: true}\n\
             volumes:\n  data:\n",
        )
        .unwrap();
        let a = run_args("p", "web", &f.services["web"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        for want in [
            "-v /a:/b:ro,rslave",
            "-v /d/c:/c:z",
            "-v p_data:/d:nocopy",
            "-v /e:/e:ro,rshared,Z",
            "-v p_data:/f:nocopy",
            "--tmpfs /t:ro",
        ] {
            assert!(a.contains(want), "{want} in {a}");
        }
        let s = &f.services["web"];
        let missing = missing_bind_sources(s, Path::new("/nonexistent-wren-dir"));
        assert_eq!(
            missing,
            [
                Path::new("/a"),
                Path::new("/nonexistent-wren-dir/c"),
                Path::new("/e"),
            ]
            .iter()
            .filter(|p| !p.exists())
            .map(|p| p.to_path_buf())
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn run_flag_keys() {
        let f = parse(
            "services:\n  a:\n    image: i\n    network_mode: host\n    dns: 10.0.0.2\n    \
             dns_search: [lan.example]\n    dns_opt: [ndots:2]\n    pid: host\n    \
             extra_hosts: {x: \"::1\"}\n    stop_signal: SIGINT\n    stop_grace_period: 1500ms\n    \
             security_opt: [\"no-new-privileges:true\"]\n    cap_add: [SYS_TIME]\n    privileged: false\n",
        )
        .unwrap();
        let j = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(j.contains("--name p-a-1 "), "{j}");
        assert!(j.contains("--network host "), "{j}");
        assert!(
            j.contains(
                "--add-host x:::1 --dns 10.0.0.2 --dns-search lan.example --dns-option ndots:2 --pid host --stop-signal SIGINT --stop-timeout 2 \
                 --cap-add SYS_TIME --security-opt no-new-privileges:true "
            ),
            "{j}"
        );
        assert!(!j.contains("--privileged"), "{j}");
        for (y, want) in [
            (
                "network_mode: \"service:b\"",
                "services.a.network_mode: \"service:b\": no service \"b\" in the file",
            ),
            (
                "network_mode: bridge",
                "not in the subset (host, none, service:NAME, container:NAME)",
            ),
            ("network_mode: none\n    networks: [default]", "not both"),
            ("stop_grace_period: soon", "services.a.stop_grace_period"),
        ] {
            let f = parse(&format!("services:\n  a:\n    image: i\n    {y}\n")).unwrap();
            let e = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h").unwrap_err();
            assert!(e.contains(want), "{y}: {e}");
        }
    }

    #[test]
    fn unset_newer_keys_leave_the_hashed_form_as_before() {
        // apply's change detection hashes this form: a service written
        // before these keys existed must not look changed.
        let f = parse(
            "services:\n  a:\n    image: i\n    depends_on:\n      b: {condition: service_started}\n  \
             b:\n    image: i\n",
        )
        .unwrap();
        let j = serde_json::to_string(&f.services["a"]).unwrap();
        for k in [
            "container_name",
            "extra_hosts",
            "dns",
            "dns_search",
            "dns_opt",
            "device_cgroup_rules",
            "cpu_shares",
            "\"pid\"",
            "\"ipc\"",
            "\"uts\"",
            "stop_signal",
            "stop_grace_period",
            "init",
            "cap_add",
            "cap_drop",
            "security_opt",
            "privileged",
            "network_mode",
            "hostname",
            "aliases",
            "deploy",
            "expose",
            "required",
        ] {
            assert!(!j.contains(k), "{k} in {j}");
        }
        assert!(
            j.contains(r#""depends_on":{"b":{"condition":"service_started"}}"#),
            "{j}"
        );
    }

    #[test]
    fn deploy_limits_and_expose() {
        let f = parse(
            "services:\n  a:\n    image: i\n    expose: [\"80\", 81]\n    deploy:\n      resources:\n        \
             limits: {cpus: \"0.5\", memory: 64M, pids: 20}\n",
        )
        .unwrap();
        let j = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(
            j.contains("--memory 64M --cpus 0.5 --pids-limit 20 "),
            "{j}"
        );
        let f = parse(
            "services:\n  a:\n    image: i\n    mem_limit: 1g\n    deploy: {resources: {limits: {memory: 2g}}}\n",
        )
        .unwrap();
        let e = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h").unwrap_err();
        assert!(
            e.contains("services.a.mem_limit and deploy.resources.limits disagree"),
            "{e}"
        );
        let e = parse("services:\n  a:\n    image: i\n    deploy: {replicas: 2}\n").unwrap_err();
        assert!(e.contains("replicas"), "{e}");
    }

    #[test]
    fn external_and_named_networks_keep_their_names() {
        let f = parse(
            "services:\n  a:\n    image: i\n    networks: [edge, back]\n\
             networks:\n  edge: {external: true}\n  back: {name: shared-back}\n\
             \x20 proxy: {external: true, name: traefik}\n  plain:\n",
        )
        .unwrap();
        assert_eq!(network_name("p", &f, "edge"), "edge");
        assert_eq!(network_name("p", &f, "back"), "shared-back");
        assert_eq!(network_name("p", &f, "proxy"), "traefik");
        assert_eq!(network_name("p", &f, "plain"), "p_plain");
        assert_eq!(network_name("p", &f, "default"), "p_default");
        let j = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(
            j.contains("--network name=shared-back,alias=a --network name=edge,alias=a "),
            "{j}"
        );
        // The default network itself may be an external one.
        let f = parse(
            "services:\n  a:\n    image: i\nnetworks:\n  default: {external: true, name: proxy}\n",
        )
        .unwrap();
        let j = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(j.contains("--network proxy"), "{j}");
    }

    #[test]
    fn a_service_on_several_networks() {
        let f = parse(
            "services:\n  proxy:\n    image: i\n    networks:\n      front: {aliases: [www]}\n\
             \x20     back: {ipv4_address: 10.5.0.9, aliases: [gw, proxy]}\n\
             \x20 x:\n    image: i\n    networks: [zeta, alpha]\n\
             \x20 y:\n    image: i\n    networks:\n      alpha:\n      zeta: {gw_priority: 1}\n\
             networks:\n  front:\n  back:\n  alpha:\n  zeta:\n",
        )
        .unwrap();
        let args = |svc: &str| {
            run_args("p", svc, &f.services[svc], &f, Path::new("/d"), "h")
                .unwrap()
                .join(" ")
        };
        // By name (back before front), each in Docker's per-network form
        // with the service's name as an alias there.
        let j = args("proxy");
        assert!(
            j.contains(
                "--network name=p_back,alias=proxy,alias=gw,ip=10.5.0.9 \
                 --network name=p_front,alias=proxy,alias=www "
            ),
            "{j}"
        );
        assert!(
            !j.contains("--network-alias") && !j.contains("--ip "),
            "{j}"
        );
        assert!(args("x").contains("--network name=p_alpha,alias=x --network name=p_zeta,alias=x "));
        // gw_priority puts its network first: the default route's.
        assert!(args("y").contains("--network name=p_zeta,alias=y --network name=p_alpha,alias=y "));
        let e = parse(
            "services:\n  a:\n    image: i\n    networks: [front, nope]\nnetworks:\n  front:\n",
        )
        .and_then(|f| run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h"))
        .unwrap_err();
        assert!(e.contains("network \"nope\" is not declared"), "{e}");
    }

    #[test]
    fn a_fixed_address_and_the_networks_subnet() {
        let f = parse(
            "services:\n  db:\n    image: i\n    networks:\n      back: {ipv4_address: 10.5.0.9}\n\
             networks:\n  back:\n    ipam:\n      config:\n        - subnet: 10.5.0.0/24\n",
        )
        .unwrap();
        let j = run_args("p", "db", &f.services["db"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(j.contains("--ip 10.5.0.9 --network p_back"), "{j}");
        let back = f.networks["back"].as_ref().unwrap();
        assert_eq!(
            back.spec("back").unwrap().subnet.as_deref(),
            Some("10.5.0.0/24")
        );
        for (y, want) in [
            ("ipam: {driver: dhcp}", "only default"),
            (
                "ipam: {config: [{subnet: 10.5.0.0/24}, {subnet: 10.6.0.0/24}]}",
                "one subnet",
            ),
        ] {
            let f = parse(&format!(
                "services:\n  a:\n    image: i\nnetworks:\n  n:\n    {y}\n"
            ))
            .unwrap();
            let e = f.networks["n"].as_ref().unwrap().spec("n").unwrap_err();
            assert!(e.contains(want) && e.contains("networks.n.ipam"), "{e}");
        }
        let e = parse("services:\n  a:\n    image: i\nnetworks:\n  n:\n    ipam: {config: [{subnet: 10.5.0.0/24, aux_addresses: {a: 10.5.0.2}}]}\n").unwrap_err();
        assert!(e.contains("aux_addresses"), "{e}");
    }

    #[test]
    fn links_order_starts_and_alias_the_linked_service() {
        let f = parse(
            "services:\n  web:\n    image: i\n    links: [db, \"cache:redis\"]\n  \
             db:\n    image: i\n  cache:\n    image: i\n    networks: [a, b]\n\
             networks:\n  a:\n  b:\n",
        )
        .unwrap();
        let deps: Vec<String> = f.services["web"]
            .depends()
            .into_iter()
            .map(|d| d.0)
            .collect();
        assert_eq!(deps, ["db", "cache"]);
        assert_eq!(linked_aliases(&f, "cache"), ["redis"]);
        assert!(linked_aliases(&f, "db").is_empty());
        let args = |n: &str| {
            run_args("p", n, &f.services[n], &f, Path::new("/d"), "h")
                .unwrap()
                .join(" ")
        };
        let cache = args("cache");
        assert!(
            cache.contains("--network name=p_a,alias=cache,alias=redis --network name=p_b,alias=cache,alias=redis"),
            "{cache}"
        );
        assert!(
            args("db").contains("--network-alias db --network p_default"),
            "{}",
            args("db")
        );
        let bad = parse(
            "services:\n  web:\n    image: i\n    links: [\"db:no/slash\"]\n  db:\n    image: i\n",
        )
        .unwrap();
        let e = run_args("p", "web", &bad.services["web"], &bad, Path::new("/d"), "h").unwrap_err();
        assert!(e.contains("services.web.links: alias \"no/slash\""), "{e}");
    }

    #[test]
    fn a_network_with_gateway_range_options_and_labels() {
        let f = parse(
            "services:\n  a:\n    image: i\nnetworks:\n  n:\n    driver: bridge\n\
             \x20   attachable: true\n    enable_ipv6: false\n\
             \x20   driver_opts: {com.docker.network.bridge.name: br-n, com.docker.network.driver.mtu: 1400}\n\
             \x20   labels: [team=edge, tier]\n\
             \x20   ipam:\n      config:\n        - {subnet: 10.5.0.0/24, gateway: 10.5.0.254, ip_range: 10.5.0.128/25}\n",
        )
        .unwrap();
        let spec = f.networks["n"].as_ref().unwrap().spec("n").unwrap();
        assert_eq!(
            spec,
            store::Spec {
                subnet: Some("10.5.0.0/24".into()),
                gateway: Some("10.5.0.254".into()),
                ip_range: Some("10.5.0.128/25".into()),
                internal: false,
                options: [
                    ("com.docker.network.bridge.name".into(), "br-n".into()),
                    ("com.docker.network.driver.mtu".into(), "1400".into()),
                ]
                .into(),
                labels: [
                    ("team".into(), "edge".into()),
                    ("tier".into(), String::new())
                ]
                .into(),
            }
        );
        let f =
            parse("services:\n  a:\n    image: i\nnetworks:\n  n: {enable_ipv6: true}\n").unwrap();
        let e = f.networks["n"].as_ref().unwrap().spec("n").unwrap_err();
        assert!(e.contains("networks.n.enable_ipv6"), "{e}");
    }

    #[test]
    fn service_names_and_aliases_on_the_network() {
        let f = parse(
            "services:\n  db:\n    image: i\n    hostname: database\n    networks:\n      back: {aliases: [pg, db]}\n\
             networks:\n  back:\n",
        )
        .unwrap();
        let j = run_args("p", "db", &f.services["db"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(j.contains("--hostname database "), "{j}");
        assert!(
            j.contains("--network-alias db --network-alias pg --network p_back "),
            "{j}"
        );
        let f = parse("services:\n  a:\n    image: i\n    network_mode: host\n").unwrap();
        let j = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(!j.contains("--network-alias"), "{j}");
    }

    #[test]
    fn a_service_joins_anothers_namespaces_and_depends_on_it() {
        let f = parse(
            "services:\n  app:\n    image: i\n    network_mode: \"service:vpn\"\n    \
             pid: \"service:vpn\"\n    ipc: \"service:vpn\"\n    uts: \"service:vpn\"\n  \
             vpn:\n    image: i\n    container_name: tunnel\n    ipc: shareable\n  \
             ext:\n    image: i\n    network_mode: \"container:other\"\n",
        )
        .unwrap();
        let j = run_args("p", "app", &f.services["app"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(j.contains("--network container:tunnel"), "{j}");
        assert!(j.contains("--pid container:tunnel"), "{j}");
        assert!(j.contains("--ipc container:tunnel"), "{j}");
        assert!(j.contains("--uts container:tunnel"), "{j}");
        let v = run_args("p", "vpn", &f.services["vpn"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(v.contains("--ipc shareable"), "{v}");
        assert!(
            !j.contains("--hostname") && !j.contains("--network-alias"),
            "{j}"
        );
        assert_eq!(
            f.services["app"].depends(),
            vec![("vpn".to_string(), "service_started".to_string())]
        );
        let j = run_args("p", "ext", &f.services["ext"], &f, Path::new("/d"), "h")
            .unwrap()
            .join(" ");
        assert!(j.contains("--network container:other"), "{j}");
        assert!(f.services["ext"].depends().is_empty());
        let f = parse("services:\n  a:\n    image: i\n    pid: \"service:\"\n").unwrap();
        let e = run_args("p", "a", &f.services["a"], &f, Path::new("/d"), "h").unwrap_err();
        assert!(
            e.contains("services.a.pid: \"service:\": no service \"\""),
            "{e}"
        );
    }

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"a "b c" 'd\e' f\ g"#).unwrap(),
            ["a", "b c", r"d\e", "f g"]
        );
        assert!(split_words("a 'b").is_err());
    }
}
