//! The command line: `serve`, `classify`, `policy check`, `policy test`,
//! `key new`, `route calibrate`, `report`.
//!
//! Exit codes: 0 ok, 1 a check failed (e.g. an invalid policy), 2 an error
//! (e.g. the port is taken).

mod classify;
mod key;
mod logs;
mod plan;
mod policy;
mod prices;
mod report;
mod route;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A cost-aware model routing gateway with an OpenAI-compatible API.",
    long_about = "A cost-aware model routing gateway with an OpenAI-compatible API.\n\n\
        Point your OpenAI SDK's base URL at tollgate and use a tollgate key; \
        a YAML policy decides which model answers each request.\n\n\
        Example:\n  tollgate serve --config policies/default.yaml --allow-anonymous"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Classify(classify::ClassifyArgs),
    /// Check policy files, or compare two policies on a set of prompts.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Make gateway keys (the key once, the hash for the policy).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// The learned router: its cost-quality curve and its features.
    #[command(subcommand)]
    Route(route::RouteCommand),
    Report(report::ReportArgs),
    Prices(prices::PricesArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Key(cmd) => key::run(cmd),
        Command::Route(cmd) => route::run(cmd),
        Command::Report(args) => report::run(args),
        Command::Prices(args) => prices::run(args),
    }
}
