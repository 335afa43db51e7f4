//! The `relais` command line: configuration checks and user creation.

use std::process::Command;

fn relais() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relais"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn check_config_accepts_the_example_and_prints_settings() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.example.toml");
    let output = relais().args(["check-config", "--config", example]).output().expect("run relais");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("server_name = \"localhost\""), "{stdout}");
    assert!(stdout.contains("configuration is valid"));
}

#[test]
fn environment_numbers_are_accepted_for_room_versions() {
    let output = relais()
        .arg("check-config")
        .env("RELAIS_ROOMS__DEFAULT_VERSION", "11")
        .output()
        .expect("run relais");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("default_version = \"11\""));
}

#[test]
fn wrong_option_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relais.toml");
    std::fs::write(&file, "[rooms]\ndefault_version = \"3\"\n").expect("write");
    let output =
        relais().args(["check-config", "--config"]).arg(&file).output().expect("run relais");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rooms.default_version"), "{stderr}");

    let output = relais()
        .arg("check-config")
        .env("RELAIS_LISTEN__PORT", "http")
        .output()
        .expect("run relais");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(stderr.contains("listen.port"), "{stderr}");
}

#[test]
fn create_user_then_refuse_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        relais()
            .args(["create-user", "admin", "--admin"])
            .env("RELAIS_DATABASE__PATH", dir.path().join("db"))
            .env("RELAIS_PASSWORD", "a long password")
            .output()
            .expect("run relais")
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("@admin:localhost (admin)"));
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("taken"));
}
