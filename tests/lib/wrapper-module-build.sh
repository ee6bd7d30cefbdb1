# Sourced by the build scripts of the Go programs the tests build from a wrapper module of their own
# (a directory holding go.mod, go.sum and the program's *.go files).
#
# wrapper_module_build NAME DIR: builds DIR's program as NAME once per machine, cached under
# passport's cache directory and keyed by the module's files, so it is rebuilt only when they change.
# Concurrent runs wait for each other (flock). Prints the binary's path on stdout; progress goes to
# stderr. WHAT (optional) says how long a first build takes, for the progress line.

wrapper_module_build() {
  local name="$1" dir="$2" what="${3:-seconds}"
  local cache ldflags="-s -w" key out tmp start
  cache="${PASSPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/passport}"
  key="$( (cat "$dir/go.mod" "$dir/go.sum" "$dir"/*.go; echo "$ldflags") | sha256sum | cut -c1-16)"
  out="$cache/$name-$key"
  mkdir -p "$cache"
  exec 9>"$cache/$name.lock"
  flock 9
  if [[ -x "$out/$name" ]]; then
    echo "$name: cached at $out" >&2
  else
    echo "$name: building from Go modules (first time on this machine; $what)…" >&2
    start=$SECONDS
    tmp="$(mktemp -d "$out.tmp.XXXXXX")"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$tmp/$name" .)
    rm -rf "$out" && mv "$tmp" "$out"
    echo "$name: built in $((SECONDS - start))s" >&2
  fi
  exec 9>&-
  echo "$out/$name"
}
