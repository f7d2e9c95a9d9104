//! `wren pull`, `wren login`, `wren logout`: the registry side of images.
//! The download and unpack run here, in the short-lived `wren` process
//! (`wren_images::pull`), never in wrend. On a terminal each layer gets a
//! progress bar (bytes of its size) and a total; otherwise one summary line,
//! or only the image id with `--quiet`. registries.conf (Podman's file,
//! `wren_images::registries`) may send a pull to mirrors or another
//! location; the summary line then says where the image came from.
//!
//! Runs in `wren`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wren_images::auth;
use wren_images::platform::Platform;
use wren_images::pull::{self, Options, Progress};
use wren_images::registries::Registries;

use super::args::{Login, Logout, Pull, RegistryFlags};
use super::{CliError, Global};

/// Progress bars per layer, and one for the total.
struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    layers: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "total         {bytes:>10} fetched  {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            multi,
            total,
            layers: Mutex::new(HashMap::new()),
        }
    }

    fn short(digest: &str) -> String {
        digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect()
    }
}

impl Progress for Bars {
    fn start(&self, digest: &str, size: u64) {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix}  [{bar:30}] {bytes:>10}/{total_bytes:<10}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(Self::short(digest));
        if let Ok(mut m) = self.layers.lock() {
            m.insert(digest.to_string(), bar);
        }
    }

    fn bytes(&self, digest: &str, n: u64) {
        if let Ok(m) = self.layers.lock() {
            if let Some(b) = m.get(digest) {
                b.inc(n);
            }
        }
        self.total.inc(n);
    }

    fn present(&self, digest: &str) {
        let _ = self
            .multi
            .println(format!("{}  already present", Self::short(digest)));
    }

    fn done(&self, digest: &str) {
        if let Ok(m) = self.layers.lock() {
            if let Some(b) = m.get(digest) {
                b.finish();
            }
        }
    }

    fn retrying(&self, why: &str, delay: std::time::Duration, attempt: u32, retries: u32) {
        // The bars of this try go; the next try makes its own.
        if let Ok(mut m) = self.layers.lock() {
            for (_, b) in m.drain() {
                b.finish_and_clear();
            }
        }
        let _ = self.multi.println(retry_line(why, delay, attempt, retries));
    }
}

impl From<pull::PullError> for CliError {
    fn from(e: pull::PullError) -> Self {
        Self::chain(&e)
    }
}

/// `wren pull IMAGE`.
pub fn pull(g: &Global, a: &Pull) -> Result<i32, CliError> {
    let store = super::images::store(g)?;
    let done = fetch(&store, &a.image, &a.registry, a.quiet, false)?;
    if a.quiet {
        println!("{}", done.id);
    }
    Ok(0)
}

/// What the registry flags (and registries.conf) say of a pull.
pub fn options(r: &RegistryFlags) -> Result<Options, CliError> {
    let platform = match &r.platform {
        Some(p) => Platform::parse(p).map_err(CliError::usage)?,
        None => Platform::host(),
    };
    let retry_delay = match &r.retry_delay {
        Some(d) => super::health::parse_duration("--retry-delay", d)?,
        None => 1000,
    };
    Ok(Options {
        platform,
        insecure: r.insecure_registry.clone(),
        authfile: r.authfile.clone(),
        ca_certs: r.ca_cert.clone(),
        registries: Registries::load().map_err(|e| CliError::chain(&e))?,
        retries: r.retry.unwrap_or(3),
        retry_delay: std::time::Duration::from_millis(retry_delay),
    })
}

/// What a pull without progress bars says: only its retries, on stderr
/// (none with `--quiet`).
struct Plain {
    quiet: bool,
}

impl Progress for Plain {
    fn retrying(&self, why: &str, delay: std::time::Duration, attempt: u32, retries: u32) {
        if !self.quiet {
            eprintln!("{}", retry_line(why, delay, attempt, retries));
        }
    }
}

fn retry_line(why: &str, delay: std::time::Duration, attempt: u32, retries: u32) -> String {
    format!("{why}; retrying in {delay:.1?} (retry {attempt} of {retries})")
}

/// Pulls `image` into `store` as `wren pull` does: progress bars on a
/// terminal, then the summary line (to stderr with `to_stderr`, for
/// `run`'s pulls, whose stdout is the container's) unless `quiet`.
pub fn fetch(
    store: &wren_images::Store,
    image: &str,
    r: &RegistryFlags,
    quiet: bool,
    to_stderr: bool,
) -> Result<pull::Pulled, CliError> {
    let opts = options(r)?;
    let _lock = store.lock_shared()?;
    let on_tty = !quiet && super::tty::is_tty(2);
    let t = std::time::Instant::now();
    let done = if on_tty {
        let bars = Bars::new();
        let r = pull::pull(store, image, &opts, &bars);
        bars.total.finish_and_clear();
        r?
    } else {
        pull::pull(store, image, &opts, &Plain { quiet })?
    };
    if !quiet {
        let from = done
            .source
            .as_ref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        let line = format!(
            "pulled {} ({}){from}: {} new layers ({} bytes fetched), {} already present, in {:.2?}",
            done.name,
            done.id,
            done.new_layers,
            done.bytes,
            done.shared_layers,
            t.elapsed()
        );
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(done)
}

/// `wren login [-u USER] [--password-stdin] REGISTRY` (what is not given
/// is asked on the terminal): the registry is
/// asked first (as `docker login` does), and nothing is stored when it
/// refuses the credentials.
pub fn login(a: &Login) -> Result<i32, CliError> {
    let username = match &a.username {
        Some(u) => u.clone(),
        None if super::tty::is_tty(0) => {
            eprint!("Username: ");
            let _ = std::io::Write::flush(&mut std::io::stderr());
            let mut s = String::new();
            std::io::stdin()
                .read_line(&mut s)
                .map_err(|e| CliError::failed(format!("read the user name: {e}")))?;
            s.trim().to_string()
        }
        None => {
            return Err(CliError::usage(
                "give the user with -u: stdin is not a terminal to ask on",
            ))
        }
    };
    if username.is_empty() {
        return Err(CliError::usage("the user name is empty"));
    }
    let password = match (&a.password, a.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::failed(format!("read the password from stdin: {e}")))?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if super::tty::is_tty(0) => super::tty::read_secret("Password: ")
            .map_err(|e| CliError::failed(format!("read the password from the terminal: {e}")))?,
        (None, false) => {
            return Err(CliError::usage(
                "give the password with --password-stdin (or --password): stdin is not a terminal to ask on",
            ))
        }
    };
    if password.is_empty() {
        return Err(CliError::usage("the password is empty"));
    }
    let registry = auth::normalize(&a.registry);
    if registry.contains('/') || registry.is_empty() {
        return Err(CliError::usage(format!(
            "REGISTRY: {:?} is not HOST[:PORT]",
            a.registry
        )));
    }
    // Reached as a pull would reach it: its CAs, and insecure when told
    // so here or in registries.conf.
    let mut opts = options(&RegistryFlags {
        authfile: a.authfile.clone(),
        ca_cert: a.ca_cert.clone(),
        ..RegistryFlags::default()
    })?;
    if a.insecure || opts.registries.insecure_host(&registry) {
        opts.insecure.push(registry.clone());
    }
    pull::check_login(&registry, &username, &password, &opts)?;
    let stored = auth::store(a.authfile.as_deref(), &registry, &username, &password)?;
    println!("login succeeded: credentials for {registry} saved in {stored}");
    Ok(0)
}

/// `wren logout REGISTRY`.
pub fn logout(a: &Logout) -> Result<i32, CliError> {
    let registry = auth::normalize(&a.registry);
    if auth::remove(a.authfile.as_deref(), &registry)? {
        println!("removed the credentials for {registry}");
        Ok(0)
    } else {
        Err(CliError::failed(format!(
            "no credentials stored for {registry}"
        )))
    }
}
