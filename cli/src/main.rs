//! `cairn`: the Cairn wallet and explorer client. It talks to a node over HTTP only.

mod wallet;

use std::process::ExitCode;
use std::time::Duration;

use cairn_api::client::Client;
use cairn_cli::keystore::Keystore;
use cairn_cli::output::{FailureDetail, JsonFailure};
use cairn_ledger::{Payload, ValidatorChange};
use clap::{CommandFactory, Parser};

use wallet::args::{Cli, Cmd, MemberCmd, RecordCmd, Shell, ValidatorCmd};
use wallet::ctx::{Ctx, default_keystore};
use wallet::fail::{Fail, LOCAL, R, USAGE, fail};
use wallet::{explore, keys, send, verify_cmd};

async fn run(cli: Cli) -> R<()> {
    if let Cmd::Completions { shell } = cli.cmd {
        return completions(shell);
    }
    if let Cmd::Man = cli.cmd {
        return man();
    }
    let ctx = Ctx {
        client: Client::new(&cli.node, Duration::from_secs(cli.timeout))?,
        keystore: Keystore::new(cli.keystore.unwrap_or_else(default_keystore)),
        passphrase_file: cli.passphrase_file,
        json: cli.json,
    };
    match cli.cmd {
        Cmd::Key(k) => keys::run(&ctx, k),
        Cmd::Account {
            id,
            from,
            verify,
            genesis,
        } => {
            let check = genesis.filter(|_| verify);
            explore::account(&ctx, id, from, check.as_deref()).await
        }
        Cmd::History { id, before, limit } => explore::history(&ctx, &id, before, limit).await,
        Cmd::Transfer { to, amount, send } => {
            let to = ctx.account_id(&to)?;
            send::send(&ctx, &send, Payload::Transfer { to, amount }).await
        }
        Cmd::Record(RecordCmd::Put { key, value, send }) => {
            if key.is_empty() {
                return Err(fail(USAGE, "a record key cannot be empty"));
            }
            let payload = Payload::PutRecord {
                key,
                value: value.into_bytes(),
            };
            send::send(&ctx, &send, payload).await
        }
        Cmd::Record(RecordCmd::Get {
            account,
            key,
            verify,
            genesis,
        }) => {
            let check = genesis.filter(|_| verify);
            explore::record(&ctx, &account, &key, check.as_deref()).await
        }
        Cmd::Record(RecordCmd::List {
            account,
            after,
            limit,
        }) => explore::records(&ctx, &account, after.as_deref(), limit).await,
        Cmd::Member(MemberCmd::Add { id, admin, send }) => {
            let account = ctx.account_id(&id)?;
            let role = if admin {
                cairn_ledger::Role::Admin
            } else {
                cairn_ledger::Role::User
            };
            send::send(&ctx, &send, Payload::AddMember { account, role }).await
        }
        Cmd::Member(MemberCmd::Remove { id, send }) => {
            let account = ctx.account_id(&id)?;
            send::send(&ctx, &send, Payload::RemoveMember { account }).await
        }
        Cmd::Validator(ValidatorCmd::List) => explore::validator_changes(&ctx).await,
        Cmd::Validator(ValidatorCmd::Vote { id, send }) => {
            let changes = ctx.client.validator_changes().await?;
            let mut found: Vec<ValidatorChange> = changes
                .votes
                .into_iter()
                .filter(|v| v.id.to_string().starts_with(&id.to_lowercase()))
                .map(|v| v.change)
                .collect();
            found.dedup();
            let change = match found.len() {
                1 => found.remove(0),
                0 => {
                    return Err(fail(
                        USAGE,
                        format!(
                            "no vote counts now for a change with id {id}; see `cairn validator list` \
                             (a change already approved needs no more votes)"
                        ),
                    ));
                }
                _ => {
                    return Err(fail(
                        USAGE,
                        format!("{id} names several changes; give more of it"),
                    ));
                }
            };
            send::send(&ctx, &send, Payload::ChangeValidators { change }).await
        }
        Cmd::Validator(v) => {
            let change = match &v {
                ValidatorCmd::Add { name, key, .. } => ValidatorChange::Add {
                    validator: cairn_ledger::Validator {
                        name: name.clone(),
                        public_key: ctx.account_id(key)?,
                    },
                },
                ValidatorCmd::Remove { key, .. } => ValidatorChange::Remove {
                    public_key: ctx.account_id(key)?,
                },
                ValidatorCmd::Rotate { key, new_key, .. } => ValidatorChange::Rotate {
                    public_key: ctx.account_id(key)?,
                    new_key: ctx.account_id(new_key)?,
                },
                ValidatorCmd::Vote { .. } | ValidatorCmd::List => unreachable!("handled above"),
            };
            let send = match &v {
                ValidatorCmd::Add { send, .. }
                | ValidatorCmd::Remove { send, .. }
                | ValidatorCmd::Rotate { send, .. } => send,
                ValidatorCmd::Vote { .. } | ValidatorCmd::List => unreachable!("handled above"),
            };
            send::send(&ctx, send, Payload::ChangeValidators { change }).await
        }
        Cmd::Sign {
            payload,
            nonce,
            chain_id,
            from,
            out,
        } => send::sign(&ctx, &payload, nonce, chain_id, &from, out),
        Cmd::Submit { files, wait } => send::submit_files(&ctx, &files, wait).await,
        Cmd::Tx { id } => explore::tx(&ctx, &id).await,
        Cmd::Block { id } => explore::block(&ctx, &id).await,
        Cmd::Blocks { limit, before } => explore::blocks(&ctx, before, limit).await,
        Cmd::Status => explore::status(&ctx).await,
        Cmd::Validators => explore::validators(&ctx).await,
        Cmd::Events { from_height } => explore::events(&ctx, from_height).await,
        Cmd::Verify { block, genesis } => verify_cmd::run(&ctx, &block, &genesis).await,
        Cmd::Completions { .. } | Cmd::Man => Ok(()),
    }
}

/// `cairn completions SHELL`.
fn completions(shell: Shell) -> R<()> {
    use clap_complete::Shell as S;
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut script);
    wallet::out::raw(&script);
    Ok(())
}

/// `cairn man`.
fn man() -> R<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| fail(LOCAL, format!("rendering the manual: {e}")))?;
    wallet::out::raw(&page);
    Ok(())
}

/// Reports a failure: on stdout as JSON under `--json` (a script reads one place), else on
/// stderr for people. A reader that went away changes nothing: the exit code still says what
/// failed.
fn report(json: bool, f: &Fail) {
    if f.is_reported() {
        return;
    }
    if json {
        let v = JsonFailure {
            error: FailureDetail {
                code: f.code.clone(),
                message: f.msg.clone(),
            },
            exit: f.exit,
        };
        let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        let _ = wallet::out::try_raw(text.as_bytes());
    } else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "error: {}", f.msg);
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not failures; bad usage exits 2 with clap's words,
            // as JSON when --json was asked for.
            let usage = e.use_stderr();
            if usage && std::env::args().any(|a| a == "--json") {
                let f = fail(USAGE, e.kind().to_string());
                let rendered = e.render().to_string();
                // clap's sentence, without the usage lines that follow it.
                let msg = rendered.split("\n\nUsage:").next().unwrap_or_default();
                report(
                    true,
                    &Fail {
                        msg: msg.trim().trim_start_matches("error: ").to_string(),
                        ..f
                    },
                );
                return ExitCode::from(USAGE);
            }
            let _ = e.print();
            return ExitCode::from(if usage { USAGE } else { 0 });
        }
    };
    let json = cli.json;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(json, &fail(LOCAL, format!("cannot start the runtime: {e}")));
            return ExitCode::from(LOCAL);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            report(json, &f);
            ExitCode::from(f.exit)
        }
    }
}
