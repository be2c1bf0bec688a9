//! Server settings: flags, then `IDPLANE_*` environment variables, then the
//! TOML file, then defaults. Validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use idplane_app::authn::email::{Mailer, SmtpSettings};
use jiff::SignedDuration;
use serde::Deserialize;

/// Token signing keys are rotated after 90 days unless asked otherwise: a
/// common policy ceiling that keeps a leaked key useful for a bounded time.
const DEFAULT_SIGNING_KEY_ROTATION_DAYS: u32 = 90;

/// Ten years: longer means a typo, not a policy.
const MAX_SIGNING_KEY_ROTATION_DAYS: u32 = 3650;

/// Flags of `idplane serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "IDPLANE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded database and local key material [default: ./idplane-data].
    #[arg(long, env = "IDPLANE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Public base URL, the issuer of the default tenant [default: http://localhost:8080].
    #[arg(long, env = "IDPLANE_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// `sqlite://PATH` or `postgres://...` [default: SQLite in the data directory].
    #[arg(long, env = "IDPLANE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Read settings from this TOML file (flags and environment override it).
    #[arg(long, env = "IDPLANE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Development mode: ephemeral store unless --data is given, a root token printed on start.
    #[arg(long)]
    pub dev: bool,
    /// The dev-mode root token (random if not given).
    #[arg(
        long,
        requires = "dev",
        env = "IDPLANE_DEV_ROOT_TOKEN",
        value_name = "TOKEN"
    )]
    pub dev_root_token: Option<String>,
    /// Log format: `json`, `text`, or `auto` (JSON unless on a terminal).
    #[arg(long, env = "IDPLANE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// How often to sign audit checkpoints, e.g. `60s`, `5m` [default: 5m].
    #[arg(long, env = "IDPLANE_CHECKPOINT_INTERVAL")]
    pub checkpoint_interval: Option<String>,
    /// Rotate each token signing key after this many days, 1 to 3650; 0 never [default: 90].
    #[arg(long, env = "IDPLANE_SIGNING_KEY_ROTATION_DAYS", value_name = "DAYS")]
    pub signing_key_rotation_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

/// The same settings as a TOML file. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    issuer: Option<String>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    checkpoint_interval: Option<String>,
    signing_key_rotation_days: Option<u32>,
    smtp: Option<SmtpConfig>,
    passwords: Option<PasswordHashing>,
}

/// `[passwords]`: Argon2id parameters (OWASP's by default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordHashing {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

/// `[smtp]` in the configuration file. The password comes from
/// `IDPLANE_SMTP_PASSWORD`, never from the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpConfig {
    host: String,
    port: Option<u16>,
    username: Option<String>,
    from: String,
    /// STARTTLS on port 587 (default); `false` means TLS from the first byte (465).
    starttls: Option<bool>,
}

/// Validated settings.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub issuer: String,
    pub database_url: String,
    pub dev: bool,
    pub root_token: Option<String>,
    pub log_format: LogFormat,
    pub checkpoint_interval: Duration,
    /// The age at which token signing keys are rotated; `None`: never.
    pub signing_key_rotation: Option<SignedDuration>,
    /// Where mail goes: SMTP when configured (and not in dev mode), else the outbox.
    pub mailer: Mailer,
    /// Argon2id parameters, when not OWASP's defaults.
    pub password_hashing: Option<(u32, u32, u32)>,
    /// Keeps a dev-mode ephemeral directory alive until shutdown.
    pub _ephemeral: Option<tempfile::TempDir>,
}

impl ServeConfig {
    /// Resolves and validates the settings.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
        let issuer = validate_issuer(
            args.issuer
                .or(file.issuer)
                .unwrap_or_else(|| format!("http://localhost:{}", listen.port())),
        )?;
        let explicit_data = args.data.or(file.data);
        let (data_dir, ephemeral) = match (explicit_data, args.dev) {
            (Some(dir), _) => (dir, None),
            (None, true) => {
                let dir = tempfile::Builder::new()
                    .prefix("idplane-dev-")
                    .tempdir()
                    .context("cannot create a temporary directory for dev mode")?;
                (dir.path().to_path_buf(), Some(dir))
            }
            (None, false) => (PathBuf::from("idplane-data"), None),
        };
        let database_url = args.database_url.or(file.database_url).unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("idplane.db").display()
            )
        });
        if !database_url.starts_with("sqlite:") && !database_url.starts_with("postgres") {
            bail!("--database-url must start with sqlite:// or postgres://");
        }
        let checkpoint_interval = match args.checkpoint_interval.or(file.checkpoint_interval) {
            Some(text) => idplane_app::directory::parse_span(&text)
                .map_err(|e| anyhow::anyhow!("checkpoint interval: {}", e.message))?
                .try_into()
                .context("checkpoint interval")?,
            None => Duration::from_secs(300),
        };
        let signing_key_rotation = match args
            .signing_key_rotation_days
            .or(file.signing_key_rotation_days)
            .unwrap_or(DEFAULT_SIGNING_KEY_ROTATION_DAYS)
        {
            0 => None,
            days @ 1..=MAX_SIGNING_KEY_ROTATION_DAYS => {
                Some(SignedDuration::from_hours(i64::from(days) * 24))
            }
            days => bail!(
                "signing key rotation must be 1 to {MAX_SIGNING_KEY_ROTATION_DAYS} days (0: never), got {days}"
            ),
        };
        let root_token = match (args.dev, args.dev_root_token) {
            (true, Some(token)) if token.len() < 8 => {
                bail!("--dev-root-token must be at least 8 characters")
            }
            (true, Some(token)) => Some(token),
            (true, None) => Some(random_root_token()?),
            (false, _) => None,
        };
        let password_hashing = match file.passwords {
            Some(p) if p.memory_kib < 7168 || p.iterations < 1 || p.parallelism < 1 => {
                bail!(
                    "[passwords] must keep at least OWASP's floor: memory_kib >= 7168, iterations >= 1, parallelism >= 1"
                )
            }
            Some(p) => Some((p.memory_kib, p.iterations, p.parallelism)),
            None => None,
        };
        let mailer = match (args.dev, file.smtp) {
            (false, Some(smtp)) => {
                let starttls = smtp.starttls.unwrap_or(true);
                Mailer::Smtp(SmtpSettings {
                    host: smtp.host,
                    port: smtp.port.unwrap_or(if starttls { 587 } else { 465 }),
                    username: smtp.username,
                    password: std::env::var("IDPLANE_SMTP_PASSWORD").ok(),
                    from: smtp.from,
                    starttls,
                })
            }
            // Dev mode never sends mail to the network.
            _ => Mailer::Outbox,
        };
        Ok(Self {
            password_hashing,
            mailer,
            listen,
            data_dir,
            issuer,
            database_url,
            dev: args.dev,
            root_token,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Auto),
            checkpoint_interval,
            signing_key_rotation,
            _ephemeral: ephemeral,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The issuer is an absolute http(s) URL without query or fragment; plain
/// http only for loopback hosts.
fn validate_issuer(issuer: String) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(&issuer)
        .with_context(|| format!("--issuer `{issuer}` is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => bail!("--issuer must be https (plain http only for localhost), got `{issuer}`"),
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--issuer must not have a query or fragment");
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

fn random_root_token() -> anyhow::Result<String> {
    use base64::Engine;
    let bytes = idplane_app::keyring::random_bytes::<24>().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(format!(
        "idp_root_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            listen: None,
            data: None,
            issuer: None,
            database_url: None,
            config: None,
            dev: false,
            dev_root_token: None,
            log_format: None,
            checkpoint_interval: None,
            signing_key_rotation_days: None,
        }
    }

    #[test]
    fn zero_configuration_defaults() {
        let c = ServeConfig::resolve(args()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://localhost:8080");
        assert_eq!(c.database_url, "sqlite://idplane-data/idplane.db?mode=rwc");
        assert!(c.root_token.is_none());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idplane.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nissuer = \"https://id.example.com\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.listen = Some("127.0.0.1:9001".parse().unwrap());
        let c = ServeConfig::resolve(a).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.issuer, "https://id.example.com");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        assert!(format!("{:#}", ServeConfig::resolve(a).unwrap_err()).contains("unknown field"));
        let mut a = args();
        a.issuer = Some("http://id.example.com".into());
        assert!(
            ServeConfig::resolve(a)
                .unwrap_err()
                .to_string()
                .contains("https")
        );
        let mut a = args();
        a.database_url = Some("mysql://x".into());
        assert!(ServeConfig::resolve(a).is_err());
    }

    #[test]
    fn smtp_and_password_hashing_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idplane.toml");
        std::fs::write(
            &path,
            "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"idplane@example.com\"\n\n\
             [passwords]\nmemory_kib = 65536\niterations = 3\nparallelism = 2\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        let c = ServeConfig::resolve(a).unwrap();
        assert_eq!(c.password_hashing, Some((65536, 3, 2)));
        let Mailer::Smtp(smtp) = &c.mailer else {
            panic!("SMTP expected")
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.starttls),
            ("smtp.example.com", 587, true)
        );
        // Dev mode never sends mail, whatever the file says.
        let mut a = args();
        a.config = Some(path);
        a.dev = true;
        assert!(matches!(
            ServeConfig::resolve(a).unwrap().mailer,
            Mailer::Outbox
        ));
    }

    #[test]
    fn weak_password_hashing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weak.toml");
        std::fs::write(
            &path,
            "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        assert!(
            ServeConfig::resolve(a)
                .unwrap_err()
                .to_string()
                .contains("OWASP")
        );
    }

    #[test]
    fn signing_keys_rotate_after_90_days_unless_configured() {
        let days = |n: i64| Some(SignedDuration::from_hours(n * 24));
        let c = ServeConfig::resolve(args()).unwrap();
        assert_eq!(c.signing_key_rotation, days(90));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idplane.toml");
        std::fs::write(&path, "signing_key_rotation_days = 30\n").unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        assert_eq!(
            ServeConfig::resolve(a).unwrap().signing_key_rotation,
            days(30)
        );
        let mut a = args();
        a.config = Some(path);
        a.signing_key_rotation_days = Some(0);
        assert_eq!(ServeConfig::resolve(a).unwrap().signing_key_rotation, None);

        let mut a = args();
        a.signing_key_rotation_days = Some(3650);
        assert_eq!(
            ServeConfig::resolve(a).unwrap().signing_key_rotation,
            days(3650)
        );
        let mut a = args();
        a.signing_key_rotation_days = Some(3651);
        let error = ServeConfig::resolve(a).unwrap_err().to_string();
        assert!(error.contains("1 to 3650 days"), "{error}");
    }

    #[test]
    fn dev_mode_is_ephemeral_with_a_root_token() {
        let mut a = args();
        a.dev = true;
        let c = ServeConfig::resolve(a).unwrap();
        assert!(c.root_token.unwrap().starts_with("idp_root_"));
        assert!(c._ephemeral.is_some());
    }
}
