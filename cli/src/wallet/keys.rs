//! `cairn key …`.

use std::path::Path;

use cairn_cli::keystore::KeyFile;
use cairn_cli::output::{ExportedSeed, KeyInfo, SavedKey};
use cairn_crypto::SigningKey;

use super::args::KeyCmd;
use super::ctx::Ctx;
use super::fail::{KEY, LOCAL, R, USAGE, fail};
use super::out::print;

/// Runs a key command.
pub fn run(ctx: &Ctx, k: KeyCmd) -> R<()> {
    match k {
        KeyCmd::New {
            name,
            insecure_plaintext,
        } => save(ctx, &name, &SigningKey::generate(), insecure_plaintext),
        KeyCmd::Import {
            name,
            seed_file,
            insecure_plaintext,
        } => {
            let text = if seed_file == Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| fail(LOCAL, format!("reading the seed from stdin: {e}")))?;
                s
            } else {
                std::fs::read_to_string(&seed_file)
                    .map_err(|e| fail(USAGE, format!("{}: {e}", seed_file.display())))?
            };
            let bytes = hex::decode(text.trim())
                .map_err(|_| fail(USAGE, "the seed must be 64 hex digits"))?;
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| fail(USAGE, "the seed must be 32 bytes (64 hex digits)"))?;
            save(ctx, &name, &SigningKey::from_seed(seed), insecure_plaintext)
        }
        KeyCmd::List => {
            let keys: Vec<KeyInfo> = ctx
                .keystore
                .list()?
                .into_iter()
                .map(|k| KeyInfo {
                    encrypted: k.is_encrypted(),
                    name: k.name,
                    public_key: k.public_key,
                })
                .collect();
            print(ctx.json, &keys, |keys| {
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
                            if k.encrypted { "" } else { "  (unencrypted)" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        KeyCmd::Show { name } => {
            let f = ctx.keystore.load(&name)?;
            let v = KeyInfo {
                encrypted: f.is_encrypted(),
                name: f.name,
                public_key: f.public_key,
            };
            print(ctx.json, &v, |v| v.public_key.to_string());
            Ok(())
        }
        KeyCmd::Export { name } => {
            let key = ctx.key(&name)?;
            let v = ExportedSeed {
                name,
                seed: hex::encode(key.to_seed()),
            };
            print(ctx.json, &v, |v| v.seed.clone());
            Ok(())
        }
    }
}

fn save(ctx: &Ctx, name: &str, key: &SigningKey, plaintext: bool) -> R<()> {
    let pass = if plaintext {
        None
    } else {
        Some(
            ctx.passphrase(&format!("New passphrase for {name}: "), true)
                .map_err(|e| fail(KEY, e))?,
        )
    };
    let file = KeyFile::new(name, key, pass.as_deref()).map_err(|e| fail(KEY, e))?;
    let path = ctx.keystore.save(&file)?;
    let v = SavedKey {
        name: name.to_string(),
        public_key: key.public_key(),
        file: path,
        encrypted: !plaintext,
    };
    print(ctx.json, &v, |v| {
        format!(
            "key {name}: account {}\n  stored in {}{}",
            v.public_key,
            v.file.display(),
            if plaintext { " UNENCRYPTED" } else { "" }
        )
    });
    Ok(())
}
