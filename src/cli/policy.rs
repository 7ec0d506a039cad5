//! `tollgate policy check`: compile policy files and print every error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::policy::load_file;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check policy files: print every error as `file:line:col: path: message`.
    ///
    /// Environment variables referenced as ${VAR} must be set, as for
    /// `serve`. Exits 0 when every file is valid, 1 otherwise.
    ///
    /// Example:
    ///   tollgate policy check policies/*.yaml
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Policy files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    let PolicyCommand::Check(args) = cmd;
    let mut failed = false;
    for file in &args.files {
        match load_file(file) {
            Ok(p) => println!(
                "{}: ok ({} models, {} routes, {})",
                file.display(),
                p.models.len(),
                p.routes.len(),
                match &p.keys {
                    Some(k) => format!("{} keys", k.len()),
                    None => "no keys: needs --allow-anonymous".to_string(),
                }
            ),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
