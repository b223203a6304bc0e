//! `cairn`: the Cairn wallet (work in progress: see issue 5).

fn main() {
    eprintln!("cairn: the wallet is being built (issue 5); use the HTTP API meanwhile");
    std::process::exit(2);
}
