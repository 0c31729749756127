#!/usr/bin/env bash
# Build the third-party ttRPC peers used by the interop tests, offline, from Debian's packages only:
# Go peers on containerd's ttrpc (golang-github-containerd-ttrpc-dev, GOPATH mode against
# /usr/share/gocode) and Rust peers on ttrpc-rust 0.5 (librust-ttrpc-dev, Debian's registry
# /usr/share/cargo/registry through the source replacement in rust/.cargo/config.toml).
# Output: $PP_BUILD/interop/ (default build/interop). Skips what is up to date.
# Usage: build.sh [all|go|rust]. Exit 77 (skip) when a toolchain package is missing.
# (Functions run under `||`, where errexit is off: every step checks its own status.)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${PP_BUILD:-$root/build}
out=$build/interop
what=${1:-all}
GO=/usr/bin/go
CARGO=/usr/bin/cargo
RUSTC=/usr/bin/rustc

GO_BINS=(go-hvclient go-hvserver go-agent go-agentclient go-agentproxy go-golden)
RUST_BINS=(rust-hvclient rust-hvserver)

mkdir -p "$out"
# One build at a time, even when tests start in parallel.
exec 9>"$out/.lock"
flock 9

log() { echo "interop-build: $*" >&2; }

# up_to_date STAMP BINS... : every binary exists and no source is newer than the stamp.
up_to_date() {
	local stamp=$1 sources=$2
	shift 2
	[[ -f $stamp ]] || return 1
	local b
	for b in "$@"; do
		[[ -x $out/$b ]] || return 1
	done
	[[ -z $(find "$sources" "$here/build.sh" -newer "$stamp" -print -quit 2>/dev/null) ]]
}

build_go() {
	if [[ ! -x $GO ]] || [[ ! -d /usr/share/gocode/src/github.com/containerd/ttrpc ]]; then
		echo "skip: Go toolchain or containerd ttrpc missing (apt-get install golang-go golang-github-containerd-ttrpc-dev golang-github-gogo-protobuf-dev)"
		return 77
	fi
	if up_to_date "$out/.go-stamp" "$here/go" "${GO_BINS[@]}"; then
		log "Go peers up to date"
		return 0
	fi
	log "building Go peers (${GO_BINS[*]}) with $($GO version | cut -d' ' -f3)"
	local start=$SECONDS
	# GOPATH mode: our package tree appears as $GOPATH/src/ppinterop; dependencies come from
	# Debian's /usr/share/gocode. No module proxy, no network.
	mkdir -p "$out/gopath/src" || return 1
	ln -sfn "$here/go" "$out/gopath/src/ppinterop" || return 1
	local pkgs=()
	local b
	for b in "${GO_BINS[@]}"; do pkgs+=("ppinterop/cmd/$b"); done
	(
		cd "$out"
		env -u GOFLAGS -u GOROOT GO111MODULE=off GOPATH="$out/gopath:/usr/share/gocode" \
			GOCACHE="$out/gocache" GOENV=off GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=0 \
			"$GO" build -trimpath -o "$out/" "${pkgs[@]}"
	) || return 1
	touch "$out/.go-stamp"
	log "Go peers built in $((SECONDS - start)) s"
}

build_rust() {
	if [[ ! -x $CARGO ]] || [[ ! -x $RUSTC ]] || [[ ! -d /usr/share/cargo/registry ]] ||
		! compgen -G "/usr/share/cargo/registry/ttrpc-0.5.*" >/dev/null; then
		echo "skip: Debian cargo/rustc or librust-ttrpc-dev missing (apt-get install cargo rustc librust-ttrpc-dev librust-protobuf-dev)"
		return 77
	fi
	if up_to_date "$out/.rust-stamp" "$here/rust" "${RUST_BINS[@]}"; then
		log "Rust peers up to date"
		return 0
	fi
	log "building Rust peers (${RUST_BINS[*]}) with $($RUSTC --version | cut -d' ' -f1-2); a first build takes a few minutes"
	local start=$SECONDS
	# Cargo writes Cargo.lock next to the manifest: build a copy so the source tree stays clean
	# and the lock always matches the crates Debian has installed.
	local src=$out/rust-src
	mkdir -p "$src" || return 1
	rm -rf "$src/src" "$src/.cargo"
	cp -a "$here/rust/Cargo.toml" "$here/rust/src" "$here/rust/.cargo" "$src/" || return 1
	(
		cd "$src"
		env -u RUSTFLAGS -u RUSTUP_TOOLCHAIN -u CARGO_BUILD_TARGET CARGO_HOME="$out/cargo-home" \
			CARGO_TARGET_DIR="$out/rust-target" RUSTC="$RUSTC" CARGO_NET_OFFLINE=true \
			CARGO_TERM_PROGRESS_WHEN=never \
			"$CARGO" build --offline --bins 2>&1 | grep -v '^ *Compiling ' >&2
		exit "${PIPESTATUS[0]}"
	) || return 1
	local b
	for b in "${RUST_BINS[@]}"; do
		cp -f "$out/rust-target/debug/$b" "$out/$b" || return 1
	done
	touch "$out/.rust-stamp"
	log "Rust peers built in $((SECONDS - start)) s"
}

rc=0
case $what in
go) build_go || rc=$? ;;
rust) build_rust || rc=$? ;;
all)
	build_go || rc=$?
	if ((rc == 0)); then build_rust || rc=$?; fi
	;;
*)
	echo "usage: build.sh [all|go|rust]" >&2
	exit 2
	;;
esac
exit $rc
