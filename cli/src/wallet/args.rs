//! The command line: what `cairn --help` teaches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The version with the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CAIRN_GIT_COMMIT"),
    ")"
);

/// The Cairn wallet: keys, transfers, records, membership, and a block explorer.
///
/// Keys live in a keystore directory, encrypted with a passphrase (asked at a prompt, or
/// from --passphrase-file, or from CAIRN_PASSPHRASE). Every command talks to one node's
/// HTTP API (--node) and prints for people, or JSON with --json (errors too, as
/// {"error":{"code","message"},"exit":N} on stdout).
///
/// Exit codes: 0 ok, 1 a local failure (a file, the terminal), 2 bad usage or input,
/// 3 node unreachable or not answering as a Cairn node, 4 rejected by the node, 5 not found,
/// 6 key or passphrase problem, 7 timed out waiting, 8 verification failed.
#[derive(Parser)]
#[command(name = "cairn", version = VERSION, verbatim_doc_comment)]
pub struct Cli {
    /// The node's API.
    #[arg(
        long,
        global = true,
        env = "CAIRN_NODE",
        default_value = "http://127.0.0.1:8000",
        help_heading = "Global options"
    )]
    pub node: String,
    /// The keystore directory [default: ~/.cairn/keys].
    #[arg(
        long,
        global = true,
        env = "CAIRN_KEYSTORE",
        help_heading = "Global options"
    )]
    pub keystore: Option<PathBuf>,
    /// Read the passphrase from this file (first line); keep it private (chmod 600).
    #[arg(long, global = true, help_heading = "Global options")]
    pub passphrase_file: Option<PathBuf>,
    /// Give up on a node that has not answered in this many seconds (exit 7). A `--wait`
    /// is bounded by the node first (30 s by default; it answers `wait_timeout`).
    #[arg(
        long,
        global = true,
        env = "CAIRN_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=3600),
        help_heading = "Global options"
    )]
    pub timeout: u64,
    /// Print JSON, errors included.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
    /// Elvish.
    Elvish,
    /// PowerShell.
    Powershell,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Manage keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// An account's balance, nonce and role (default: the key --from names).
    #[command(
        after_help = "Example:\n  cairn account alice\n  cairn account --from alice --json\n  cairn account alice --verify --genesis genesis.json\n\nWith --verify the node's answer is not trusted: it must come with a proof that\nleads to the state root of a block certified by the validators in force at its\nheight (followed from the genesis), or the command fails with exit code 8."
    )]
    Account {
        /// Account id (hex) or a key name in the keystore.
        id: Option<String>,
        /// Key name.
        #[arg(long, env = "CAIRN_KEY")]
        from: Option<String>,
        /// Check the answer offline: a proof against a certified block (needs --genesis).
        #[arg(long, requires = "genesis")]
        verify: bool,
        /// The network's genesis.json, for --verify.
        #[arg(long, requires = "verify")]
        genesis: Option<PathBuf>,
    },
    /// An account's committed transactions, newest first.
    #[command(after_help = "Example:\n  cairn history alice --limit 5")]
    History {
        /// Account id (hex) or a key name.
        id: String,
        /// Only blocks below this height (the previous page's `next`).
        #[arg(long)]
        before: Option<u64>,
        /// Page size (1..=100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Send funds.
    #[command(after_help = "Example:\n  cairn transfer --from alice --to bob --amount 25 --wait")]
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
    /// Change the validator set of a running chain
    ///
    /// Who may is the genesis policy (`consensus.*.validator_changes`): under `admins`
    /// (Raft's default) one admin's transaction approves a change; under `validators`
    /// (PBFT's default) each validator sends the same change signed with its validator key
    /// (import it with `cairn key import`), and the one that brings the votes to a quorum of
    /// the set approves it. An approved change is pending until the next epoch boundary and
    /// takes effect from the height after it; one change is pending at a time. See the set
    /// in force with `cairn validators`.
    #[command(subcommand, verbatim_doc_comment)]
    Validator(ValidatorCmd),
    /// Sign a transaction offline and write it to a file (submit it later with `submit`)
    ///
    /// The payload is JSON as in docs/PROTOCOL.md: {"transfer":{"to":ACCOUNT,"amount":N}},
    /// {"put_record":{"key":"k","value":"<hex>"}} (or "text":"…" instead of "value"),
    /// {"add_member":{"account":ACCOUNT,"role":"user"|"admin"}} or
    /// {"remove_member":{"account":ACCOUNT}}, where ACCOUNT is an account id or a key name.
    #[command(
        verbatim_doc_comment,
        after_help = "Example:\n  cairn sign '{\"transfer\":{\"to\":\"bob\",\"amount\":5}}' --nonce 3 --chain-id cairn-local --from alice -o tx.json\n  cairn submit tx.json --wait"
    )]
    Sign {
        /// The payload as JSON (see above).
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
    /// Submit signed transaction files: one, or many at once (sent in batches of up to 1,024,
    /// each answered on its own; the exit code is 4 if the node refused any of them).
    #[command(
        after_help = "Examples:\n  cairn submit tx.json --wait\n  cairn submit signed/*.json"
    )]
    Submit {
        /// The files `sign` wrote.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Wait until final.
        #[arg(long)]
        wait: bool,
    },
    /// A transaction: pending, committed (with its receipt) or rejected.
    #[command(after_help = "Example:\n  cairn tx 3f2a…  (the id `transfer` printed)")]
    Tx {
        /// Transaction id (64 hex digits).
        id: String,
    },
    /// A block by height or hash.
    #[command(after_help = "Example:\n  cairn block 12\n  cairn block 12 --json > block.json")]
    Block {
        /// Height or hash.
        id: String,
    },
    /// Blocks, newest first, a page at a time.
    #[command(after_help = "Example:\n  cairn blocks --limit 5\n  cairn blocks --before 120")]
    Blocks {
        /// How many (1..=100).
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only blocks below this height (the previous page's `next`).
        #[arg(long)]
        before: Option<u64>,
    },
    /// The node's view of the chain.
    #[command(after_help = "Example:\n  cairn status --json")]
    Status,
    /// The validators.
    #[command(after_help = "Example:\n  cairn validators")]
    Validators,
    /// Follow committed blocks live (Ctrl-C stops); survives a node restart.
    #[command(after_help = "Example:\n  cairn events --from-height 1 | head")]
    Events {
        /// Replay from this height first.
        #[arg(long)]
        from_height: Option<u64>,
    },
    /// Verify a block offline against a genesis file: hash link, transaction root and
    /// signatures, and the commit certificate's validator signatures.
    #[command(
        after_help = "Example:\n  cairn verify 12 --genesis genesis.json\n  cairn verify block.json --genesis genesis.json"
    )]
    Verify {
        /// A height (fetched from --node) or a file with a block as `cairn block --json` prints it.
        block: String,
        /// The network's genesis.json.
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  cairn completions bash > /etc/bash_completion.d/cairn")]
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  cairn man > cairn.1 && man ./cairn.1")]
    Man,
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// Key name to sign with.
    #[arg(long, env = "CAIRN_KEY")]
    pub from: String,
    /// Nonce (default: the account's next).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transaction is final, then print its block and latency.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create a key (encrypted unless --insecure-plaintext).
    #[command(after_help = "Example:\n  cairn key new alice")]
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
    #[command(after_help = "Example:\n  cairn key import alice seed.hex")]
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
pub enum RecordCmd {
    /// Store VALUE under KEY in your account.
    #[command(after_help = "Example:\n  cairn record put greeting hello --from alice --wait")]
    Put {
        /// Record key.
        key: String,
        /// Record value (text).
        value: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Show one record of an account (committed state).
    #[command(after_help = "Example:\n  cairn record get alice greeting")]
    Get {
        /// The owner: account id (hex) or a key name.
        account: String,
        /// Record key.
        key: String,
        /// Check the answer offline: a proof against a certified block (needs --genesis).
        #[arg(long, requires = "genesis")]
        verify: bool,
        /// The network's genesis.json, for --verify.
        #[arg(long, requires = "verify")]
        genesis: Option<PathBuf>,
    },
    /// List an account's records in key order, a page at a time.
    #[command(after_help = "Example:\n  cairn record list alice --limit 50")]
    List {
        /// The owner: account id (hex) or a key name.
        account: String,
        /// Start after this key (the previous page's `next`).
        #[arg(long)]
        after: Option<String>,
        /// Page size (1..=100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum MemberCmd {
    /// Make an account a member.
    #[command(after_help = "Example:\n  cairn member add bob --from admin --wait")]
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
    #[command(after_help = "Example:\n  cairn member remove bob --from admin")]
    Remove {
        /// Account id or key name.
        id: String,
        #[command(flatten)]
        send: SendArgs,
    },
}

#[derive(Subcommand)]
pub enum ValidatorCmd {
    /// Add a validator (at the end of the list)
    #[command(
        after_help = "Example:\n  cairn validator add --name v4 --key 3b6a27bc…  --from admin --wait\n\nStart the new validator's node first, with its own key listed in p2p.observers,\nso it syncs the chain while the change is pending."
    )]
    Add {
        /// Its name (unique in the set).
        #[arg(long)]
        name: String,
        /// Its public key (hex) or a key name in the keystore.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Take a validator out of the set
    #[command(
        after_help = "Example:\n  cairn validator remove --key 3b6a27bc… --from admin --wait"
    )]
    Remove {
        /// Its public key (hex) or a key name in the keystore.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Replace a validator's key, keeping its name and place
    #[command(
        after_help = "Example:\n  cairn validator rotate --key 3b6a27bc… --new-key 9f01c2… --from admin --wait"
    )]
    Rotate {
        /// Its key now (hex or a key name).
        #[arg(long)]
        key: String,
        /// Its key from the change on (hex or a key name).
        #[arg(long)]
        new_key: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Vote for a change another validator proposed (policy `validators`): sends the same
    /// change, signed with your validator key
    #[command(
        after_help = "Example:\n  cairn validator list            # shows each vote's change id\n  cairn validator vote 5f2a… --from v2 --wait"
    )]
    Vote {
        /// The change's id, as `cairn validator list` shows it (a unique prefix will do).
        id: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// The validators in force, the pending change and the votes
    List,
}
