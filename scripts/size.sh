#!/usr/bin/env bash
# Size of a minimal "GET a URL and print the body" program (examples/minimal.rs),
# release build, stripped, with and without the `native-tls` feature.
#
#   scripts/size.sh            # prints one line per build, sizes in KiB
#
# Each build uses its own target dir so the two do not overwrite each other.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/size
mkdir -p "$out"

measure() {
    local name=$1
    shift
    cargo build --quiet --release --example minimal --target-dir "target/size-$name" "$@"
    cp "target/size-$name/release/examples/minimal" "$out/minimal-$name"
    strip "$out/minimal-$name"
    local bytes
    bytes=$(wc -c < "$out/minimal-$name")
    printf '%-20s %6d KiB   cargo build --release --example minimal %s\n' \
        "minimal ($name)" $(( (bytes + 1023) / 1024 )) "$*"
}

measure tls
measure no-tls --no-default-features

# native-tls links the system's OpenSSL dynamically: not counted above.
if command -v ldd >/dev/null; then
    libs=$(ldd "$out/minimal-tls" | awk '/libssl|libcrypto/ {print $1}' | tr '\n' ' ')
    [ -n "$libs" ] && echo "minimal (tls) also loads, shared: $libs"
fi
