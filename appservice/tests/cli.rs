//! The `relais-policy-service` command line: the registration file it generates and the
//! configuration errors it reports. (Cargo builds the binary for these tests, which also makes it
//! available to the end-to-end tests of `relais-tests`.)

use std::process::Command;

fn service(config: &str, command: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("service.toml");
    std::fs::write(&path, config).expect("write configuration");
    Command::new(env!("CARGO_BIN_EXE_relais-policy-service"))
        .arg("--config")
        .arg(&path)
        .arg(command)
        .env_remove("RELAIS_POLICY_SERVICE_AS_TOKEN")
        .output()
        .expect("run relais-policy-service")
}

const VALID: &str = r#"
server_name = "example.gouv.fr"
as_token = "as-0123456789abcdef0123456789"
hs_token = "hs-0123456789abcdef0123456789"
checks_token = "ck-0123456789abcdef0123456789"
[policy]
enabled = true
units = [{ id = "state" }]
"#;

#[test]
fn the_registration_file_is_one_a_homeserver_reads() {
    let output = service(VALID, "registration");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let yaml = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(yaml.contains("sender_localpart: 'relais-policy'"), "{yaml}");
    assert!(yaml.contains("as_token: 'as-0123456789abcdef0123456789'"), "{yaml}");
    assert!(yaml.contains("exclusive: true"), "{yaml}");
}

#[test]
fn a_bad_configuration_names_the_key_and_hides_tokens() {
    let output = service(&VALID.replace("ck-0123456789abcdef0123456789", "short"), "check-config");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("checks_token"), "{stderr}");
    assert!(!stderr.contains("as-0123456789"), "{stderr}");
    let output = service(&format!("{VALID}\nunknown_key = 1\n"), "check-config");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown_key"));
    assert!(service(VALID, "check-config").status.success());
}
