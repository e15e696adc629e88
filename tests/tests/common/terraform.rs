//! Terraform, the state bucket's real client, as the suites run it: offline (the
//! configurations use `terraform_data`, no provider download), against the local S3, with
//! the credentials the caller gives, in a throwaway working directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// A working directory: `main.tf` is the backend block exactly as the API returned it plus
/// `resources`; only the local endpoint settings come from `local.s3.tfbackend`.
pub struct Workdir(PathBuf);

impl Workdir {
    pub fn new(backend: &str, resources: &str, endpoint: &str) -> Self {
        let dir = std::env::temp_dir().join(super::unique("ik-tf"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), format!("{backend}\n{resources}")).unwrap();
        std::fs::write(
            dir.join("local.s3.tfbackend"),
            format!(
                r#"endpoints = {{ s3 = "{endpoint}", sts = "{endpoint}" }}
use_path_style              = true
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
"#
            ),
        )
        .unwrap();
        Workdir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs terraform in `dir` with `credentials` (`AWS_ACCESS_KEY_ID` and friends). On a
/// blocking thread: the workspace's tokio has no `process` feature (nothing deployed
/// spawns processes), and a test-only feature would make the test build differ from the
/// local API's.
pub async fn run(dir: &Path, args: &[&str], credentials: Vec<(&'static str, String)>) -> Output {
    let (dir, args) = (
        dir.to_path_buf(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(
            std::env::var("TERRAFORM").unwrap_or_else(|_| "terraform".into()),
        )
        .args(&args)
        .current_dir(&dir)
        .envs(credentials)
        .env("AWS_REGION", "us-east-1")
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("terraform is on the machine image (TERRAFORM may name another binary)")
    })
    .await
    .expect("the terraform thread")
}
