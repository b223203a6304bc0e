//! `cairn`: the Cairn wallet and explorer client. It talks to a node over HTTP only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cairn_cli::keystore::{KeyFile, Keystore, KeystoreError};
use cairn_cli::verify::verify_block;
use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{
    Block, CommitCertificate, Genesis, Payload, Role, SignedTransaction, Transaction,
};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// The Cairn wallet: keys, transfers, records, membership, and a block explorer.
///
/// Keys live in a keystore directory, encrypted with a passphrase (asked at a prompt, or
/// from --passphrase-file, or from CAIRN_PASSPHRASE). Every command talks to one node's
/// HTTP API (--node) and prints for people, or JSON with --json.
///
/// Exit codes: 0 ok, 1 other error, 2 bad usage, 3 node unreachable, 4 rejected by the node,
/// 5 not found, 6 key or passphrase problem, 7 timed out waiting, 8 verification failed.
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The node's API.
    #[arg(
        long,
        global = true,
        env = "CAIRN_NODE",
        default_value = "http://127.0.0.1:8000"
    )]
    node: String,
    /// The keystore directory.
    #[arg(long, global = true, env = "CAIRN_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Read the passphrase from this file (first line).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// An account's balance, nonce and role (default: the key --from names).
    Account {
        /// Account id (hex) or a key name in the keystore.
        id: Option<String>,
        /// Key name.
        #[arg(long, env = "CAIRN_KEY")]
        from: Option<String>,
    },
    /// Send funds.
    Transfer {
        /// Receiver: account id (hex) or a key name.
        #[arg(long)]
        to: String,
        /// Amount.
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Records: small values stored under your account.
    #[command(subcommand)]
    Record(RecordCmd),
    /// Membership (admins only).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Sign a transaction offline and write it to a file (submit it later with `submit`).
    Sign {
        /// Transaction payload as JSON, e.g. '{"transfer":{"to":"<id>","amount":5}}'.
        payload: String,
        /// Nonce (offline: nobody to ask).
        #[arg(long)]
        nonce: u64,
        /// Chain id.
        #[arg(long)]
        chain_id: String,
        /// Key name.
        #[arg(long, env = "CAIRN_KEY")]
        from: String,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Submit a signed transaction file.
    Submit {
        /// The file `sign` wrote.
        file: PathBuf,
        /// Wait until final.
        #[arg(long)]
        wait: bool,
    },
    /// A transaction: pending, committed (with its receipt) or rejected.
    Tx {
        /// Transaction id.
        id: String,
    },
    /// A block by height or hash.
    Block {
        /// Height or hash.
        id: String,
    },
    /// Recent blocks, newest first.
    Blocks {
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// The node's view of the chain.
    Status,
    /// The validators.
    Validators,
    /// Follow committed blocks live (Ctrl-C stops).
    Events {
        /// Replay from this height first.
        #[arg(long)]
        from_height: Option<u64>,
    },
    /// Verify a block offline against a genesis file: hash link, transaction root and
    /// signatures, and the commit certificate's validator signatures.
    Verify {
        /// A height (fetched from --node) or a file with a block as `cairn block --json` prints it.
        block: String,
        /// The network's genesis.json.
        #[arg(long)]
        genesis: PathBuf,
    },
}

#[derive(clap::Args)]
struct SendArgs {
    /// Key name to sign with.
    #[arg(long, env = "CAIRN_KEY")]
    from: String,
    /// Nonce (default: the account's next).
    #[arg(long)]
    nonce: Option<u64>,
    /// Wait until the transaction is final, then print its block and latency.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create a key (encrypted unless --insecure-plaintext).
    New {
        /// Its name.
        name: String,
        /// Store the key unencrypted: anyone who reads the file holds the account. For scripts.
        #[arg(long)]
        insecure_plaintext: bool,
    },
    /// List keys.
    List,
    /// Show a key's account id.
    Show {
        /// Name.
        name: String,
    },
    /// Import a key from its 32-byte seed (hex), read from a file or stdin ("-").
    Import {
        /// Name.
        name: String,
        /// File holding the hex seed, or "-" for stdin.
        seed_file: PathBuf,
        /// Store it unencrypted.
        #[arg(long)]
        insecure_plaintext: bool,
    },
    /// Print a key's seed (hex): whoever has it owns the account.
    Export {
        /// Name.
        name: String,
    },
}

#[derive(Subcommand)]
enum RecordCmd {
    /// Store VALUE under KEY in your account.
    Put {
        /// Record key.
        key: String,
        /// Record value (UTF-8).
        value: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Show one record of an account (committed state).
    Get {
        /// The owner: account id (hex) or a key name.
        account: String,
        /// Record key.
        key: String,
    },
    /// List an account's records in key order, a page at a time.
    List {
        /// The owner: account id (hex) or a key name.
        account: String,
        /// Start after this key (the previous page's last; `--json` prints it as `next`).
        #[arg(long)]
        after: Option<String>,
        /// Page size (1..=100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// A URL path segment or query value with everything but unreserved characters escaped.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `s` as one shell word: unchanged when it is plain, else in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/:=@%+,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A record's value for people: its text if it is UTF-8, else hex.
fn record_value(v: &serde_json::Value) -> String {
    match v["text"].as_str() {
        Some(t) => format!("{t:?}"),
        None => format!("0x{}", v["value"].as_str().unwrap_or("")),
    }
}

#[derive(Subcommand)]
enum MemberCmd {
    /// Make an account a member.
    Add {
        /// Account id or key name.
        id: String,
        /// Give it the admin role.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Remove a member.
    Remove {
        /// Account id or key name.
        id: String,
        #[command(flatten)]
        send: SendArgs,
    },
}

/// An error with its exit code and what to do next.
struct Fail {
    code: u8,
    msg: String,
}

type R<T> = Result<T, Fail>;

fn fail(code: u8, msg: impl Into<String>) -> Fail {
    Fail {
        code,
        msg: msg.into(),
    }
}

impl From<KeystoreError> for Fail {
    fn from(e: KeystoreError) -> Fail {
        let code = if matches!(e, KeystoreError::NotFound { .. }) {
            5
        } else {
            6
        };
        fail(code, e.to_string())
    }
}

struct Ctx {
    node: String,
    keystore: Keystore,
    passphrase_file: Option<PathBuf>,
    json: bool,
    http: reqwest::Client,
}

fn default_keystore() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cairn")
        .join("keys")
}

impl Ctx {
    fn passphrase(&self, prompt: &str, confirm: bool) -> Result<String, String> {
        if let Some(p) = &self.passphrase_file {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        if let Ok(p) = std::env::var("CAIRN_PASSPHRASE") {
            return Ok(p);
        }
        let p = rpassword::prompt_password(prompt).map_err(|e| {
            format!("cannot read a passphrase ({e}); use --passphrase-file or CAIRN_PASSPHRASE")
        })?;
        if confirm {
            let again = rpassword::prompt_password("Repeat it: ").map_err(|e| e.to_string())?;
            if again != p {
                return Err("the passphrases differ".into());
            }
        }
        if p.is_empty() {
            return Err("an empty passphrase protects nothing (use --insecure-plaintext if that is what you want)".into());
        }
        Ok(p)
    }

    fn key(&self, name: &str) -> R<SigningKey> {
        let f = self.keystore.load(name)?;
        Ok(f.open(|| self.passphrase(&format!("Passphrase for {name}: "), false))?)
    }

    /// An account id, or a key name in the keystore.
    fn account_id(&self, s: &str) -> R<PublicKey> {
        if let Ok(k) = s.parse::<PublicKey>() {
            return Ok(k);
        }
        match self.keystore.load(s) {
            Ok(f) => Ok(f.public_key),
            Err(_) => Err(fail(
                2,
                format!(
                    "{s:?} is neither an account id (64 hex digits) nor a key name in {}",
                    self.keystore.dir().display()
                ),
            )),
        }
    }

    async fn get(&self, path: &str) -> R<Value> {
        let url = format!("{}{path}", self.node.trim_end_matches('/'));
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable_node(&self.node, e))?;
        answer(r).await
    }

    async fn post(&self, path: &str, body: &Value) -> R<Value> {
        let url = format!("{}{path}", self.node.trim_end_matches('/'));
        let r = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .map_err(|e| unreachable_node(&self.node, e))?;
        answer(r).await
    }

    fn print(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", human(v));
        }
    }
}

fn unreachable_node(node: &str, e: reqwest::Error) -> Fail {
    if e.is_timeout() {
        return fail(
            7,
            format!(
                "the node at {node} did not answer in time; a transaction may still have been accepted: check with `cairn tx ID` before sending it again"
            ),
        );
    }
    let why = "no answer";
    fail(
        3,
        format!(
            "cannot reach the node at {node} ({why}): is it running? Pick another with --node URL or CAIRN_NODE"
        ),
    )
}

async fn answer(r: reqwest::Response) -> R<Value> {
    let status = r.status().as_u16();
    let parsed: Result<Value, _> = r.json().await;
    if (200..300).contains(&status) {
        return parsed.map_err(|_| {
            fail(
                3,
                "the answer is not JSON: is --node the API of a Cairn node?",
            )
        });
    }
    let v = parsed.unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("error").to_string();
    let message = v["error"]["message"].as_str().unwrap_or("").to_string();
    let hint = match code.as_str() {
        "insufficient_balance" => " (check it with `cairn account`)",
        "not_member" => " (an admin must add the account: `cairn member add`)",
        "not_admin" => " (only admin accounts may change membership)",
        "stale_nonce" | "already_committed" => {
            " (it, or another with this nonce, is already committed)"
        }
        "nonce_in_use" => {
            " (a transaction with this nonce is pending: wait for it, or pass --nonce)"
        }
        "wait_timeout" => " (still pending: follow it with `cairn tx ID`)",
        _ => "",
    };
    let exit = match status {
        404 => 5,
        504 => 7,
        503 if matches!(code.as_str(), "unavailable" | "not_ready") => 3,
        500..=599 if code != "mempool_full" => 1,
        _ => 4,
    };
    Err(fail(exit, format!("{code}: {message}{hint}")))
}

fn short(s: &str) -> &str {
    &s[..s.len().min(16)]
}

async fn send(ctx: &Ctx, args: &SendArgs, payload: Payload) -> R<()> {
    let key = ctx.key(&args.from)?;
    let status = ctx.get("/api/v1/status").await?;
    let chain_id = status["chain_id"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            fail(
                3,
                "the node's status has no chain id: is --node a Cairn node?",
            )
        })?
        .to_string();
    let nonce = match args.nonce {
        Some(n) => n,
        None => ctx
            .get(&format!("/api/v1/accounts/{}", key.public_key()))
            .await?["nonce"]
            .as_u64()
            .unwrap_or(0),
    };
    let tx = Transaction {
        chain_id,
        sender: key.public_key(),
        nonce,
        payload,
    }
    .sign(&key);
    submit(ctx, &tx, args.wait).await
}

async fn submit(ctx: &Ctx, tx: &SignedTransaction, wait: bool) -> R<()> {
    let body = serde_json::to_value(tx).map_err(|e| fail(1, e.to_string()))?;
    let start = Instant::now();
    let spinner = (wait && !ctx.json).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!(
            "waiting for {} to be final",
            short(&tx.id().to_string())
        ));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    });
    let path = if wait {
        "/api/v1/txs?wait=commit"
    } else {
        "/api/v1/txs"
    };
    let r = ctx.post(path, &body).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let v = r?;
    let ms = start.elapsed().as_millis();
    ctx.print(&v, |v| match v["status"].as_str() {
        Some("committed") => format!(
            "committed {} at height {} (position {}) in {ms} ms",
            v["id"].as_str().unwrap_or("?"),
            v["receipt"]["height"],
            v["receipt"]["index"]
        ),
        _ => format!(
            "submitted {} (pending); follow it with `cairn tx {}`",
            v["id"].as_str().unwrap_or("?"),
            v["id"].as_str().unwrap_or("?")
        ),
    });
    Ok(())
}

async fn run(cli: Cli) -> R<()> {
    let ctx = Ctx {
        node: cli.node,
        keystore: Keystore::new(cli.keystore.unwrap_or_else(default_keystore)),
        passphrase_file: cli.passphrase_file,
        json: cli.json,
        http: reqwest::Client::builder()
            // Below the node's header timeout (10 s), which also closes idle kept-alive connections.
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| fail(1, e.to_string()))?,
    };
    match cli.cmd {
        Cmd::Key(k) => key_cmd(&ctx, k),
        Cmd::Account { id, from } => {
            let id = match (id, from) {
                (Some(s), _) | (None, Some(s)) => ctx.account_id(&s)?,
                (None, None) => {
                    return Err(fail(2, "name an account: `cairn account ID` or --from KEY"));
                }
            };
            let v = ctx.get(&format!("/api/v1/accounts/{id}")).await?;
            ctx.print(&v, |v| {
                format!(
                    "account {}\n  balance {}\n  nonce   {}\n  role    {}\n  (at height {})",
                    v["id"].as_str().unwrap_or("?"),
                    v["balance"],
                    v["nonce"],
                    v["role"].as_str().unwrap_or("none"),
                    v["height"]
                )
            });
            Ok(())
        }
        Cmd::Transfer {
            to,
            amount,
            send: s,
        } => {
            let to = ctx.account_id(&to)?;
            send(&ctx, &s, Payload::Transfer { to, amount }).await
        }
        Cmd::Record(RecordCmd::Put {
            key,
            value,
            send: s,
        }) => {
            if key.is_empty() {
                return Err(fail(2, "a record key cannot be empty"));
            }
            send(
                &ctx,
                &s,
                Payload::PutRecord {
                    key,
                    value: value.into_bytes(),
                },
            )
            .await
        }
        Cmd::Record(RecordCmd::Get { account, key }) => {
            if key.is_empty() {
                return Err(fail(2, "a record key cannot be empty"));
            }
            let id = ctx.account_id(&account)?;
            let v = ctx
                .get(&format!("/api/v1/accounts/{id}/records/{}", escape(&key)))
                .await?;
            ctx.print(&v, |v| {
                format!("{} = {}", v["key"].as_str().unwrap_or("?"), record_value(v))
            });
            Ok(())
        }
        Cmd::Record(RecordCmd::List {
            account,
            after,
            limit,
        }) => {
            let id = ctx.account_id(&account)?;
            let mut path = format!(
                "/api/v1/accounts/{id}/records?limit={}",
                limit.clamp(1, 100)
            );
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", escape(a)));
            }
            let v = ctx.get(&path).await?;
            ctx.print(&v, |v| {
                let rows: Vec<String> = v["records"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{} = {}", r["key"].as_str().unwrap_or("?"), record_value(r)))
                    .collect();
                let mut s = if rows.is_empty() {
                    "no records".to_string()
                } else {
                    rows.join("\n")
                };
                if let Some(next) = v["next"].as_str() {
                    s.push_str(&format!(
                        "\n(more: `cairn record list {} --after {}`)",
                        shell_quote(&account),
                        shell_quote(next)
                    ));
                }
                s
            });
            Ok(())
        }
        Cmd::Member(MemberCmd::Add { id, admin, send: s }) => {
            let account = ctx.account_id(&id)?;
            let role = if admin { Role::Admin } else { Role::User };
            send(&ctx, &s, Payload::AddMember { account, role }).await
        }
        Cmd::Member(MemberCmd::Remove { id, send: s }) => {
            let account = ctx.account_id(&id)?;
            send(&ctx, &s, Payload::RemoveMember { account }).await
        }
        Cmd::Sign {
            payload,
            nonce,
            chain_id,
            from,
            out,
        } => {
            let payload: Payload = serde_json::from_str(&payload)
                .map_err(|e| fail(2, format!("payload is not valid JSON for a payload: {e}")))?;
            let key = ctx.key(&from)?;
            let tx = Transaction {
                chain_id,
                sender: key.public_key(),
                nonce,
                payload,
            }
            .sign(&key);
            let text = serde_json::to_string_pretty(&tx).map_err(|e| fail(1, e.to_string()))?;
            std::fs::write(&out, text).map_err(|e| fail(1, format!("{}: {e}", out.display())))?;
            let v = json!({"id": tx.id(), "file": out});
            ctx.print(&v, |_| {
                format!(
                    "signed {} into {}; send it with `cairn submit {}`",
                    tx.id(),
                    out.display(),
                    out.display()
                )
            });
            Ok(())
        }
        Cmd::Submit { file, wait } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(1, format!("{}: {e}", file.display())))?;
            let tx: SignedTransaction = serde_json::from_str(&text).map_err(|e| {
                fail(
                    2,
                    format!("{}: not a signed transaction: {e}", file.display()),
                )
            })?;
            submit(&ctx, &tx, wait).await
        }
        Cmd::Tx { id } => {
            let v = ctx.get(&format!("/api/v1/txs/{id}")).await?;
            ctx.print(&v, |v| match v["status"].as_str() {
                Some("committed") => format!(
                    "{} committed at height {}, position {} (block {})",
                    v["id"].as_str().unwrap_or("?"),
                    v["receipt"]["height"],
                    v["receipt"]["index"],
                    short(v["receipt"]["block_hash"].as_str().unwrap_or(""))
                ),
                Some("rejected") => format!(
                    "{} rejected: {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["reason"]["message"].as_str().unwrap_or("?")
                ),
                _ => format!("{} pending", v["id"].as_str().unwrap_or("?")),
            });
            Ok(())
        }
        Cmd::Block { id } => {
            let v = ctx.get(&format!("/api/v1/blocks/{id}")).await?;
            ctx.print(&v, |v| {
                let h = &v["block"]["header"];
                format!(
                    "block {} {}\n  prev      {}\n  time      {} ms\n  txs       {}\n  proposer  {}\n  round     {}\n  state     {}",
                    v["height"],
                    v["hash"].as_str().unwrap_or("?"),
                    h["prev_hash"].as_str().unwrap_or("?"),
                    h["timestamp_ms"],
                    h["tx_count"],
                    short(h["proposer"].as_str().unwrap_or("?")),
                    h["round"],
                    h["state_root"].as_str().unwrap_or("?")
                )
            });
            Ok(())
        }
        Cmd::Blocks { limit } => {
            let v = ctx
                .get(&format!("/api/v1/blocks?limit={}", limit.clamp(1, 100)))
                .await?;
            ctx.print(&v, |v| {
                let mut s = format!(
                    "{:>8}  {:<16}  {:>5}  {:>6}",
                    "HEIGHT", "HASH", "TXS", "ROUND"
                );
                for b in v["blocks"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "\n{:>8}  {:<16}  {:>5}  {:>6}",
                        b["height"].as_u64().unwrap_or(0),
                        short(b["hash"].as_str().unwrap_or("")),
                        b["tx_count"].as_u64().unwrap_or(0),
                        b["round"].as_u64().unwrap_or(0)
                    ));
                }
                s
            });
            Ok(())
        }
        Cmd::Status => {
            let v = ctx.get("/api/v1/status").await?;
            ctx.print(&v, |v| {
                format!(
                    "chain {} ({}), height {} head {}\n  this node {} is {} in round {}; {} peers; {} pending txs; {}",
                    v["chain_id"].as_str().unwrap_or("?"),
                    v["consensus"].as_str().unwrap_or("?"),
                    v["height"],
                    short(v["head_hash"].as_str().unwrap_or("")),
                    v["moniker"].as_str().unwrap_or("?"),
                    v["role"].as_str().unwrap_or("?"),
                    v["round"],
                    v["peers"],
                    v["mempool_txs"],
                    if v["ready"] == true { "ready" } else { "not ready" }
                )
            });
            Ok(())
        }
        Cmd::Validators => {
            let v = ctx.get("/api/v1/validators").await?;
            ctx.print(&v, |v| {
                let mut s = String::new();
                for x in v.as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "{:<10} {}  {}{}\n",
                        x["name"].as_str().unwrap_or("?"),
                        x["public_key"].as_str().unwrap_or("?"),
                        if x["connected"] == true {
                            "connected"
                        } else {
                            "unreachable"
                        },
                        if x["leader"] == true { ", leader" } else { "" }
                    ));
                }
                s.trim_end().to_string()
            });
            Ok(())
        }
        Cmd::Events { from_height } => events(&ctx, from_height).await,
        Cmd::Verify { block, genesis } => verify(&ctx, &block, &genesis).await,
    }
}

fn key_cmd(ctx: &Ctx, k: KeyCmd) -> R<()> {
    match k {
        KeyCmd::New {
            name,
            insecure_plaintext,
        } => {
            let key = SigningKey::generate();
            save_key(ctx, &name, &key, insecure_plaintext)
        }
        KeyCmd::Import {
            name,
            seed_file,
            insecure_plaintext,
        } => {
            let text = if seed_file == Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| fail(1, e.to_string()))?;
                s
            } else {
                std::fs::read_to_string(&seed_file)
                    .map_err(|e| fail(1, format!("{}: {e}", seed_file.display())))?
            };
            let bytes =
                hex::decode(text.trim()).map_err(|_| fail(2, "the seed must be 64 hex digits"))?;
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| fail(2, "the seed must be 32 bytes"))?;
            save_key(ctx, &name, &SigningKey::from_seed(seed), insecure_plaintext)
        }
        KeyCmd::List => {
            let keys = ctx.keystore.list()?;
            let v: Vec<Value> = keys
                .iter()
                .map(|k| json!({"name": k.name, "public_key": k.public_key, "encrypted": k.is_encrypted()}))
                .collect();
            ctx.print(&Value::Array(v), |_| {
                if keys.is_empty() {
                    return format!(
                        "no keys in {} (create one with `cairn key new NAME`)",
                        ctx.keystore.dir().display()
                    );
                }
                keys.iter()
                    .map(|k| {
                        format!(
                            "{:<16} {}{}",
                            k.name,
                            k.public_key,
                            if k.is_encrypted() {
                                ""
                            } else {
                                "  (unencrypted)"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        KeyCmd::Show { name } => {
            let f = ctx.keystore.load(&name)?;
            let v =
                json!({"name": f.name, "public_key": f.public_key, "encrypted": f.is_encrypted()});
            ctx.print(&v, |_| f.public_key.to_string());
            Ok(())
        }
        KeyCmd::Export { name } => {
            let key = ctx.key(&name)?;
            let v = json!({"name": name, "seed": hex::encode(key.to_seed())});
            ctx.print(&v, |v| v["seed"].as_str().unwrap_or("").to_string());
            Ok(())
        }
    }
}

fn save_key(ctx: &Ctx, name: &str, key: &SigningKey, plaintext: bool) -> R<()> {
    let pass = if plaintext {
        None
    } else {
        Some(
            ctx.passphrase(&format!("New passphrase for {name}: "), true)
                .map_err(|e| fail(6, e))?,
        )
    };
    let file = KeyFile::new(name, key, pass.as_deref()).map_err(|e| fail(6, e))?;
    let path = ctx.keystore.save(&file)?;
    let v = json!({"name": name, "public_key": key.public_key(), "file": path, "encrypted": !plaintext});
    ctx.print(&v, |_| {
        format!(
            "key {name}: account {}\n  stored in {}{}",
            key.public_key(),
            path.display(),
            if plaintext { " UNENCRYPTED" } else { "" }
        )
    });
    Ok(())
}

async fn events(ctx: &Ctx, from: Option<u64>) -> R<()> {
    use futures::StreamExt;
    let mut url = format!("{}/api/v1/events", ctx.node.trim_end_matches('/'));
    if let Some(h) = from {
        url.push_str(&format!("?from_height={h}"));
    }
    let http = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| fail(1, e.to_string()))?;
    let r = http
        .get(&url)
        .send()
        .await
        .map_err(|e| unreachable_node(&ctx.node, e))?;
    if !r.status().is_success() {
        return answer(r).await.map(|_| ());
    }
    let mut body = r.bytes_stream();
    let mut sse = cairn_cli::sse::SseReader::default();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail(3, format!("the event stream broke: {e}")))?;
        for data in sse.push(&chunk) {
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if ctx.json {
                println!("{v}");
            } else if v["type"] == "block" {
                println!(
                    "block {:>7} {}  {} txs",
                    v["height"].as_u64().unwrap_or(0),
                    short(v["hash"].as_str().unwrap_or("")),
                    v["tx_count"]
                );
            } else {
                println!(
                    "rejected {}: {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["reason"]["message"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Err(fail(3, "the node closed the event stream"))
}

async fn verify(ctx: &Ctx, which: &str, genesis_path: &Path) -> R<()> {
    let genesis = Genesis::load(genesis_path)
        .map_err(|e| fail(2, format!("{}: {e}", genesis_path.display())))?;
    let (view, parent) = if let Ok(h) = which.parse::<u64>() {
        let v = ctx.get(&format!("/api/v1/blocks/{h}")).await?;
        if v["block"]["header"]["height"].as_u64() != Some(h) {
            return Err(fail(
                8,
                format!("INVALID: the node answered with another height than {h}"),
            ));
        }
        let parent = if h == 1 {
            Some(genesis.hash())
        } else {
            // The parent comes from the same node: it must prove itself too.
            let p = ctx.get(&format!("/api/v1/blocks/{}", h - 1)).await?;
            let pb: Block = serde_json::from_value(p["block"].clone())
                .map_err(|e| fail(8, format!("parent block: {e}")))?;
            let pc: CommitCertificate = serde_json::from_value(p["certificate"].clone())
                .map_err(|e| fail(8, format!("parent certificate: {e}")))?;
            if pb.header.height != h - 1 {
                return Err(fail(8, "INVALID: the parent has the wrong height"));
            }
            verify_block(&genesis, &pb, &pc, None)
                .map_err(|e| fail(8, format!("INVALID parent block {}: {e}", h - 1)))?;
            Some(pb.hash())
        };
        (v, parent)
    } else {
        let text = std::fs::read_to_string(which).map_err(|e| fail(2, format!("{which}: {e}")))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| fail(8, format!("{which}: not JSON: {e}")))?;
        let parent = (v["block"]["header"]["height"] == 1).then(|| genesis.hash());
        (v, parent)
    };
    let block: Block = serde_json::from_value(view["block"].clone())
        .map_err(|e| fail(8, format!("not a block: {e}")))?;
    let cert: CommitCertificate = serde_json::from_value(view["certificate"].clone())
        .map_err(|e| fail(8, format!("not a certificate: {e}")))?;
    let ok = verify_block(&genesis, &block, &cert, parent)
        .map_err(|e| fail(8, format!("INVALID: {e}")))?;
    let v = serde_json::to_value(&ok).map_err(|e| fail(1, e.to_string()))?;
    ctx.print(&v, |_| {
        format!(
            "block {} {} is valid: {} transactions signed, tx root matches, {} certificate verifies against the genesis validators{}",
            ok.height,
            ok.hash,
            ok.txs,
            ok.certificate,
            if ok.parent_checked {
                ", links to its (certified) parent"
            } else {
                ""
            }
        )
    });
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}
