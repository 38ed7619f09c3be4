//! Every setting in one place: flags and `NOTES_*` environment variables
//! (clap derive), secrets also from `NOTES_..._FILE` (the Kubernetes
//! secret-volume convention).
//!
//! Two shapes: [`Config`] is what was given, one section per concern
//! (`input.rs`), and [`Settings`] is what the process runs with, resolved
//! once at start-up by [`Config::resolve`] (`settings.rs`): defaults that
//! depend on other settings filled in, secret files read, the rules that
//! span settings checked. Each layer takes its section of `Settings`.

mod error;
mod input;
mod secret;
mod settings;

pub use error::{ConfigError, MIN_MASTER_KEY_BYTES};
pub use input::{
    AdminArgs, Config, DatabaseArgs, Environment, IndexArgs, JobsArgs, LimitsArgs, LogFormat,
    ServerArgs, StorageArgs, TelemetryArgs, WebhooksArgs,
};
pub use secret::Secret;
pub use settings::{
    Admin, DEFAULT_RATE_LIMIT, Database, Index, Jobs, Limits, S3, Server, Settings, Storage,
    Telemetry, Webhooks, durations,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Config {
        let mut c = Config::defaults();
        c.server.env = Environment::Production;
        c
    }

    #[test]
    fn the_default_webhook_schedule_retries_for_about_a_day() {
        let s = Config::defaults().resolve().unwrap();
        let w = &s.webhooks;
        assert_eq!(w.retry_schedule.len() + 1, 8);
        let total: u64 = w.retry_schedule.iter().map(|d| d.as_secs()).sum();
        assert_eq!(total, 5 + 300 + 1800 + 7200 + 18_000 + 36_000 + 36_000);
        assert_eq!(w.disable_after.as_secs(), 3 * 86_400);
        assert!(w.development_key && !w.require_https);
    }

    #[test]
    fn a_bad_duration_list_says_which_part() {
        for bad in ["5", "5x", "s", "-1s", "9d", "1.5h"] {
            let err = durations(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert_eq!(durations(" 1s , 2m,").unwrap().len(), 2);
        assert!(durations("").unwrap().is_empty());
    }

    #[test]
    fn webhook_secrets_are_sealed_with_the_secret_key_else_the_master_key() {
        let mut c = production();
        c.server.master_key = Some(Secret::new("m".repeat(32)));
        let s = c.clone().resolve().unwrap();
        assert_eq!(s.webhooks.secret_key.expose(), "m".repeat(32));
        assert!(s.webhooks.require_https && !s.webhooks.development_key);
        c.webhooks.secret_key = Some(Secret::new("s".repeat(32)));
        let s = c.clone().resolve().unwrap();
        assert_eq!(s.webhooks.secret_key.expose(), "s".repeat(32));
        assert!(s.secrets().contains(&"s".repeat(32)));
        c.webhooks.secret_key = Some(Secret::new("short"));
        assert!(
            c.resolve()
                .unwrap_err()
                .to_string()
                .contains("NOTES_SECRET_KEY")
        );
    }

    #[test]
    fn production_without_key_is_refused() {
        let err = production().resolve().unwrap_err();
        assert!(matches!(err, ConfigError::MissingMasterKey));
        assert!(err.to_string().contains("NOTES_MASTER_KEY"));
    }

    #[test]
    fn short_key_is_refused() {
        let mut c = production();
        c.server.master_key = Some(Secret::new("short"));
        assert!(matches!(c.resolve(), Err(ConfigError::ShortMasterKey(5))));
    }

    #[test]
    fn key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        let mut c = production();
        c.server.master_key_file = Some(path);
        let s = c.resolve().unwrap();
        assert_eq!(s.server.master_key.unwrap().expose(), "k".repeat(40));
    }

    /// Secrets mounted as files (what the kit does) are scrubbed from error
    /// reports like secrets given directly.
    #[test]
    fn secrets_read_from_files_are_among_the_secrets_to_scrub() {
        let dir = tempfile::tempdir().unwrap();
        let (key, dsn) = (dir.path().join("key"), dir.path().join("dsn"));
        std::fs::write(&key, "k".repeat(40)).unwrap();
        std::fs::write(&dsn, "https://public@errors.example/1\n").unwrap();
        let mut c = production();
        c.server.master_key_file = Some(key);
        c.telemetry.sentry_dsn_file = Some(dsn);
        let s = c.resolve().unwrap();
        assert_eq!(
            s.telemetry.sentry_dsn.as_ref().map(Secret::expose),
            Some("https://public@errors.example/1")
        );
        let secrets = s.secrets();
        assert!(secrets.contains(&"k".repeat(40)), "{}", secrets.len());
        assert!(secrets.contains(&"https://public@errors.example/1".to_owned()));
    }

    #[test]
    fn both_key_and_file_is_ambiguous() {
        let mut c = Config::defaults();
        c.server.master_key = Some(Secret::new("k".repeat(40)));
        c.server.master_key_file = Some("/nonexistent".into());
        assert!(matches!(c.resolve(), Err(ConfigError::Ambiguous(_))));
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_json() {
        let mut c = Config::defaults();
        c.server.master_key = Some(Secret::new("super-secret-value-that-is-long-enough"));
        c.database.database_url = Some(Secret::new("postgres://u:hunter2@db/x"));
        let s = c.clone().resolve().unwrap();
        let outputs = [
            serde_json::to_string(&c).unwrap(),
            serde_json::to_string(s.given()).unwrap(),
            format!("{c:?}"),
            format!("{s:?}"),
        ];
        for out in outputs {
            assert!(!out.contains("super-secret"), "{out}");
            assert!(!out.contains("hunter2"), "{out}");
        }
    }

    /// The sections are an inner shape: `notes-api config` still prints one
    /// flat object whose keys are the settings' names.
    #[test]
    fn the_given_settings_print_flat_under_their_names() {
        let s = Config::defaults().resolve().unwrap();
        let v = serde_json::to_value(s.given()).unwrap();
        for key in [
            "env",
            "listen",
            "database_url",
            "db_max_connections",
            "storage_url",
            "index_dir",
            "workers",
            "rate_limit",
            "admin_session_idle_minutes",
            "log_format",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert_eq!(v["storage_url"], "file://./data/blobs");
        assert_eq!(v["index_dir"], "./data/index");
    }

    /// The defaults are the same whatever the environment holds: the test
    /// re-runs itself in a child process with settings in its environment.
    #[test]
    fn the_defaults_do_not_read_the_environment() {
        const CHILD: &str = "NOTES_CONFIG_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let c = Config::defaults();
            assert_eq!(c.server.listen.to_string(), "127.0.0.1:8000");
            assert_eq!(c.jobs.workers, 2);
            assert!(c.database.database_url.is_none());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::the_defaults_do_not_read_the_environment",
            ])
            .env(CHILD, "1")
            .env("NOTES_LISTEN", "0.0.0.0:1")
            .env("NOTES_WORKERS", "7")
            .env("NOTES_DATABASE_URL", "postgres://elsewhere/x")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the child saw the environment: {stdout}"
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran the test: {stdout}"
        );
    }

    #[test]
    fn an_open_api_beyond_loopback_must_be_asked_for() {
        let server = |tweak: &dyn Fn(&mut Config)| {
            let mut c = Config::defaults();
            tweak(&mut c);
            c.resolve().unwrap().server
        };
        assert!(
            server(&|_| ()).check_exposure().is_ok(),
            "loopback needs nothing"
        );
        let err = server(&|c| c.server.listen = "0.0.0.0:8000".parse().unwrap())
            .check_exposure()
            .unwrap_err();
        assert!(
            err.to_string().contains("NOTES_ALLOW_UNAUTHENTICATED"),
            "{err}"
        );
        let v6 = |c: &mut Config| c.server.listen = "[::]:8000".parse().unwrap();
        assert!(server(&v6).check_exposure().is_err());
        let open = server(&|c| {
            v6(c);
            c.server.allow_unauthenticated = true;
        });
        assert!(open.check_exposure().is_ok());
        let keyed = server(&|c| {
            v6(c);
            c.server.master_key = Some(Secret::new("k".repeat(40)));
        });
        assert!(
            keyed.requires_keys(),
            "a master key is enforced in development too"
        );
        assert!(keyed.check_exposure().is_ok());
    }

    #[test]
    fn backup_destinations_are_limited_to_configured_prefixes() {
        let storage = |to: &str, destinations: &[&str]| {
            let mut c = Config::defaults();
            c.storage.backup_to = Some(to.into());
            c.storage.backup_destinations = destinations.iter().map(|d| d.to_string()).collect();
            c.resolve().unwrap().storage
        };
        let s = storage("s3://backups/notes", &[]);
        assert!(s.check_backup_destination("s3://backups/notes").is_ok());
        assert!(
            s.check_backup_destination("s3://backups/notes/weekly")
                .is_ok()
        );
        for bad in [
            "file:///tmp",
            "/tmp/x",
            "s3://backups/notes-evil",
            "s3://backups/notes/../other",
            "s3://other/notes",
        ] {
            assert!(s.check_backup_destination(bad).is_err(), "{bad}");
        }
        let s = storage("s3://backups/notes", &["/var/backups/", "s3://dr/site"]);
        assert!(s.check_backup_destination("/var/backups/nightly").is_ok());
        assert!(s.check_backup_destination("file:///var/backups").is_ok());
        assert!(s.check_backup_destination("s3://dr/site/x").is_ok());
        assert!(
            s.check_backup_destination("s3://backups/notes").is_err(),
            "the list replaces the default"
        );
    }

    #[test]
    fn the_public_url_must_name_a_host() {
        let mut c = Config::defaults();
        c.server.public_url = Some("https://Notes.Example.com:8443/base".into());
        assert_eq!(
            c.clone().resolve().unwrap().server.public_host.as_deref(),
            Some("notes.example.com")
        );
        for bad in [
            "notes.example.com",
            "ftp://notes.example.com",
            "https://",
            "/notes",
        ] {
            c.server.public_url = Some(bad.into());
            let err = c.clone().resolve().unwrap_err();
            assert!(err.to_string().contains("NOTES_PUBLIC_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_follow_the_mode_and_the_data_directory() {
        let dev = Config::defaults().resolve().unwrap();
        assert_eq!(dev.database.url.expose(), "sqlite://./data/notes.db");
        assert_eq!(dev.server.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(dev.storage.backup_to, "file://./data/backups");
        assert_eq!(dev.limits.rate_limit, 0);
        assert_eq!(dev.limits.max_uploads_per_client, usize::MAX);
        assert!(!dev.admin.secure_cookie);
        let mut c = production();
        c.server.master_key = Some(Secret::new("k".repeat(40)));
        c.storage.storage_url = Some("s3://bucket/".into());
        let prod = c.resolve().unwrap();
        assert_eq!(prod.limits.rate_limit, DEFAULT_RATE_LIMIT);
        assert_eq!(prod.limits.rate_burst, 2 * DEFAULT_RATE_LIMIT);
        assert_eq!(prod.limits.max_uploads_per_client, 2);
        assert!(prod.admin.secure_cookie);
        assert_eq!(prod.storage.backup_to, "s3://bucket/backups");
        assert_eq!(prod.telemetry.sentry_environment, "production");
    }
}
