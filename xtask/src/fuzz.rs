//! The bounded fuzz pass of `cargo xtask test`: every `cargo fuzz` target of the crates that parse
//! the wire or shared memory runs for a few seconds from its committed seeds and the corpus it
//! grew before. A crash or a failed assertion fails that target's test. `cargo-fuzz` is installed
//! from crates.io when missing.

use crate::images;
use std::path::Path;
use std::process::Command;

/// Crates with a `fuzz/` directory of cargo-fuzz targets.
pub const FUZZ_CRATES: [&str; 2] = ["servers/netproto", "servers/pf"];
/// Seconds each target runs in `cargo xtask test`.
pub const SECONDS_PER_TARGET: u32 = 10;

/// The `[[bin]]` names of a fuzz crate's Cargo.toml.
pub fn targets(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin
            && let Some(v) = line.strip_prefix("name").map(str::trim_start)
            && let Some(v) = v.strip_prefix('=')
        {
            names.push(v.trim().trim_matches('"').to_string());
            in_bin = false;
        }
    }
    names
}

/// Makes sure `cargo fuzz` runs; installs it when it is missing. Err: why it cannot run.
pub fn ensure_cargo_fuzz() -> Result<(), String> {
    let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
    if ok(images::cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    println!("installing cargo-fuzz from crates.io (cargo install cargo-fuzz --locked)...");
    let status = images::cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() || !ok(images::cargo().args(["fuzz", "--version"])) {
        return Err(
            "cargo-fuzz could not be installed (cargo install cargo-fuzz --locked failed)".into(),
        );
    }
    Ok(())
}

/// Runs one target for `seconds`; Err carries the tail of its output.
pub fn run_target(crate_dir: &Path, target: &str, seconds: u32) -> Result<String, String> {
    let corpus = crate_dir.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let mut cmd = images::cargo();
    cmd.current_dir(crate_dir)
        .args(["fuzz", "run", target])
        .arg(&corpus);
    let seeds = crate_dir.join("fuzz/seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.args([
        "--",
        &format!("-max_total_time={seconds}"),
        "-rss_limit_mb=2048",
    ]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text
        .lines()
        .rev()
        .take(25)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let runs = text
        .lines()
        .rev()
        .find_map(|l| {
            l.split("Done ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
        })
        .map(|n| format!("{n} runs in {seconds} s"))
        .unwrap_or_else(|| format!("{seconds} s"));
    if out.status.success() {
        Ok(runs)
    } else {
        Err(tail.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bin_targets() {
        let toml = "[package]\nname = \"x-fuzz\"\n\n[[bin]]\nname = \"ether_arp\"\npath = \"a.rs\"\n\n[[bin]]\nname=\"demux\"\n[dependencies]\nname = \"not-a-bin\"\n";
        assert_eq!(targets(toml), ["ether_arp", "demux"]);
        assert!(targets("[package]\nname = \"p\"\n").is_empty());
    }

    #[test]
    fn the_fuzz_crates_exist_with_targets() {
        for dir in FUZZ_CRATES {
            let manifest = images::workspace_root().join(dir).join("fuzz/Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap();
            assert!(!targets(&text).is_empty(), "{}", manifest.display());
        }
    }
}
