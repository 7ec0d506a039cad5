//! `tollgate key new`: a fresh gateway key and the hash the policy stores.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a gateway key and print it once, with the `sha256:` hash to
    /// put in the policy's `keys:` section.
    ///
    /// The key itself is not stored anywhere: hand it to the client now.
    ///
    /// Example:
    ///   tollgate key new --id web-prod --team web
    New(NewArgs),
}

#[derive(Args)]
pub struct NewArgs {
    /// The key's id, as it appears in logs and reports.
    #[arg(long)]
    id: String,
    /// The team the key's spending counts against.
    #[arg(long)]
    team: String,
}

pub fn run(cmd: KeyCommand) -> ExitCode {
    let KeyCommand::New(args) = cmd;
    let bytes: [u8; 24] = rand::random();
    let key = format!("tg_{}", hex::encode(bytes));
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())));
    println!("key:  {key}");
    println!("hash: {hash}");
    println!();
    println!("Give the key to the client; it is shown only this once. Add this to the policy:");
    println!("keys:");
    println!(
        "  - {{ id: {}, team: {}, hash: \"{hash}\" }}",
        serde_json::to_string(&args.id).unwrap_or_default(),
        serde_json::to_string(&args.team).unwrap_or_default()
    );
    ExitCode::SUCCESS
}
