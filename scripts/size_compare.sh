#!/usr/bin/env bash
# Binary size and dependency count of a minimal "GET a URL and print the
# body" program per client: smolreq (without and with TLS), reqwest and ureq
# (without TLS, with native-tls like smolreq, and with their default
# features), plus a hello-world for the size of std alone. Each program is
# its own throwaway crate under target/size-compare/, built in release mode
# and stripped, twice: with the default release profile, and with a
# size-tuned one (opt-level = "s", lto = true, codegen-units = 1,
# panic = "abort", set through CARGO_PROFILE_RELEASE_* variables).
#
#   scripts/size_compare.sh            # prints the table, writes docs/bench/size.md
#   scripts/size_compare.sh --no-out   # prints only
#   SMOLREQ_SRC=/path/to/clean/checkout scripts/size_compare.sh   # measure another smolreq tree
#
# Normal dependencies are counted with `cargo tree -e normal` (distinct
# packages, the program itself excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/target/size-compare"
out="$root/docs/bench/size.md"
[[ "${1:-}" == "--no-out" ]] && out=""

version_of() { # the version Cargo.lock resolved for a dev-dependency
    awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock"
}
reqwest_v=$(version_of reqwest)
ureq_v=$(version_of ureq)
tokio_v=$(version_of tokio)

# new_program NAME DEPENDENCY-LINES MAIN-RS
new_program() {
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
$2

[workspace]
TOML
    printf '%s\n' "$3" >"$work/$1/src/main.rs"
}

smolreq_main='use std::io::Write;

fn main() {
    let url = std::env::args().nth(1).expect("usage: get URL");
    let body = async_io::block_on(async {
        let response = smolreq::Client::new().get(url.as_str()).send().await?;
        response.bytes().await
    });
    match body {
        Ok(body) => std::io::stdout().write_all(&body).expect("write stdout"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}'

reqwest_main='use std::io::Write;

fn main() {
    let url = std::env::args().nth(1).expect("usage: get URL");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let body = runtime.block_on(async { reqwest::get(url).await?.bytes().await });
    match body {
        Ok(body) => std::io::stdout().write_all(&body).expect("write stdout"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}'

ureq_main='use std::io::Write;

fn main() {
    let url = std::env::args().nth(1).expect("usage: get URL");
    let agent = AGENT;
    match agent.get(&url).call().and_then(|mut r| r.body_mut().read_to_vec()) {
        Ok(body) => std::io::stdout().write_all(&body).expect("write stdout"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}'
ureq_plain=${ureq_main/AGENT/ureq::agent()}
ureq_native=${ureq_main/AGENT/ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::NativeTls).build())
        .build()
        .new_agent()}

async_io_v=$(version_of async-io)
src="${SMOLREQ_SRC:-$root}"
smolreq_dep="smolreq = { path = \"$src\", default-features = false }"
new_program hello-std "" 'fn main() {
    println!("{}", std::env::args().nth(1).unwrap_or_default());
}'
new_program smolreq-plain "$smolreq_dep
async-io = \"$async_io_v\"" "$smolreq_main"
new_program smolreq-native-tls "smolreq = { path = \"$src\", default-features = false, features = [\"native-tls\"] }
async-io = \"$async_io_v\"" "$smolreq_main"
tokio_dep="tokio = { version = \"$tokio_v\", features = [\"rt\"] }"
new_program reqwest-plain "reqwest = { version = \"$reqwest_v\", default-features = false }
$tokio_dep" "$reqwest_main"
new_program reqwest-native-tls "reqwest = { version = \"$reqwest_v\", default-features = false, features = [\"native-tls\"] }
$tokio_dep" "$reqwest_main"
new_program reqwest-default "reqwest = \"$reqwest_v\"
$tokio_dep" "$reqwest_main"
new_program ureq-plain "ureq = { version = \"$ureq_v\", default-features = false }" "$ureq_plain"
new_program ureq-native-tls "ureq = { version = \"$ureq_v\", default-features = false, features = [\"native-tls\"] }" "$ureq_native"
new_program ureq-default "ureq = \"$ureq_v\"" "$ureq_plain"

programs=(hello-std smolreq-plain smolreq-native-tls reqwest-plain reqwest-native-tls reqwest-default ureq-plain ureq-native-tls ureq-default)
describe() {
    case $1 in
        hello-std) echo "hello world (std alone, for scale)" ;;
        smolreq-plain) echo "smolreq, no TLS (\`default-features = false\`)" ;;
        smolreq-native-tls) echo "smolreq, native-tls" ;;
        reqwest-plain) echo "reqwest $reqwest_v, no TLS (\`default-features = false\`) + tokio rt" ;;
        reqwest-native-tls) echo "reqwest $reqwest_v, native-tls + tokio rt" ;;
        reqwest-default) echo "reqwest $reqwest_v, default features (rustls, HTTP/2, ...) + tokio rt" ;;
        ureq-plain) echo "ureq $ureq_v, no TLS (\`default-features = false\`)" ;;
        ureq-native-tls) echo "ureq $ureq_v, native-tls" ;;
        ureq-default) echo "ureq $ureq_v, default features (rustls, gzip)" ;;
    esac
}
client_crate() { echo "${1%%-*}"; }

# build NAME TARGET-DIR [VAR=VALUE...]: prints the stripped size in bytes
build() {
    local name=$1 dir=$2
    shift 2
    env "$@" CARGO_TARGET_DIR="$dir" cargo build --release --quiet --manifest-path "$work/$name/Cargo.toml"
    cp "$dir/release/$name" "$dir/$name.stripped"
    strip "$dir/$name.stripped"
    stat -c %s "$dir/$name.stripped"
}
kib() { echo $(( ($1 + 512) / 1024 )); }

count_deps() { # distinct normal dependencies of a package (itself excluded)
    cargo tree --manifest-path "$1" -e normal --prefix none ${2:+-p "$2"} 2>/dev/null |
        sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u | grep -vc "^$3 v" || true
}

if ! grep -q '^native-tls *=' "$src/Cargo.toml"; then
    echo "smolreq has no native-tls feature here: skipping smolreq-native-tls" >&2
    programs=("${programs[@]/smolreq-native-tls/}")
fi

rows=()
for p in "${programs[@]}"; do
    [[ -z "$p" ]] && continue
    echo "== building $p" >&2
    size=$(build "$p" "$work/target")
    small=$(build "$p" "$work/target-small" CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort)
    if [[ $p == hello-std ]]; then
        rows+=("| $(describe "$p") | $(kib "$size") | $(kib "$small") | 0 | – |")
        continue
    fi
    program_deps=$(count_deps "$work/$p/Cargo.toml" "" "$p")
    client=$(client_crate "$p")
    client_deps=$(count_deps "$work/$p/Cargo.toml" "$client" "$client")
    rows+=("| $(describe "$p") | $(kib "$size") | $(kib "$small") | $program_deps | $client_deps |")
done

report="# Binary size and dependencies of a minimal GET program

Made by \`scripts/size_compare.sh\` on $(date -u '+%Y-%m-%d') for smolreq at $(git -C "$src" rev-parse --short HEAD)$(git -C "$src" diff --quiet HEAD -- src Cargo.toml || echo ' + uncommitted changes'), $(rustc -V), $(uname -m).
Each program takes a URL, GETs it and prints the body; built with
\`cargo build --release\` and \`strip\`, once with the default release profile
and once size-tuned (\`opt-level = \"s\"\`, \`lto = true\`, \`codegen-units = 1\`,
\`panic = \"abort\"\`). Sources:
\`target/size-compare/<name>/src/main.rs\` after a run. Dependencies are the
distinct packages of \`cargo tree -e normal\`, the program itself excluded,
for the whole program and for the client crate alone (\`-p <client>\`).

| program | stripped KiB, release | stripped KiB, size-tuned | normal deps (program) | normal deps (client crate) |
|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

Target (issue 6): smolreq without TLS <= 600 KiB stripped and <= 28 normal dependencies."
echo "$report"
if [[ -n "$out" ]]; then
    mkdir -p "$(dirname "$out")"
    printf '%s\n' "$report" >"$out"
    echo "wrote $out" >&2
fi
