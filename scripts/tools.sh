#!/usr/bin/env bash
# The chart's and the alert rules' checkers, built from their Go modules once and kept in the
# user's Go bin (GOBIN, else GOPATH/bin, ~/go/bin by default): `helm` and `promtool`. A binary
# already built from the pinned version is kept; another version is rebuilt. `make test` runs this.
#   scripts/tools.sh           build what is missing, print where the tools are
#   scripts/tools.sh --path    print only the Go bin directory
# A fresh machine builds both in minutes (see the README's "Operating it"); later runs take < 1 s.
set -euo pipefail
HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.22.0
PROMETHEUS_MODULE=github.com/prometheus/prometheus
PROMETHEUS_VERSION=v0.316.0

GO="$(command -v go || true)"
[[ -n "$GO" ]] || { [[ -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go; }
[[ -n "$GO" ]] || { echo "scripts/tools.sh: no Go toolchain (go) to build helm and promtool" >&2; exit 1; }
GOBIN_DIR="$("$GO" env GOBIN)"
[[ -n "$GOBIN_DIR" ]] || GOBIN_DIR="$("$GO" env GOPATH)/bin"
if [[ "${1:-}" == "--path" ]]; then echo "$GOBIN_DIR"; exit 0; fi

# built NAME MODULE VERSION: true when $GOBIN_DIR/NAME was built from MODULE at VERSION
built() {
  [[ -x "$GOBIN_DIR/$1" ]] && "$GO" version -m "$GOBIN_DIR/$1" 2>/dev/null | grep -qE "^\s+mod\s+$2\s+$3(\s|$)"
}

install_tool() {  # NAME MODULE VERSION PACKAGE [BUILD TAGS]
  local name=$1 module=$2 version=$3 package=$4 tags=${5:-} start
  if built "$name" "$module" "$version"; then return 0; fi
  start=$SECONDS
  echo "scripts/tools.sh: building $name from $module@$version (once; minutes)" >&2
  # go install module@version ignores any go.mod around it; CGO is not needed by either tool.
  CGO_ENABLED=0 GOBIN="$GOBIN_DIR" GOFLAGS=-buildvcs=false "$GO" install ${tags:+-tags "$tags"} "$package@$version"
  built "$name" "$module" "$version" || { echo "scripts/tools.sh: $name not built from $module@$version" >&2; exit 1; }
  echo "scripts/tools.sh: $name built in $((SECONDS - start)) s" >&2
}

install_tool helm "$HELM_MODULE" "$HELM_VERSION" "$HELM_MODULE/cmd/helm"
# remove_all_sd (Prometheus >= 3.10) leaves out the service-discovery providers (cloud SDKs):
# rule checks and rule unit tests need none of them, and the build is much shorter.
install_tool promtool "$PROMETHEUS_MODULE" "$PROMETHEUS_VERSION" "$PROMETHEUS_MODULE/cmd/promtool" remove_all_sd
echo "$GOBIN_DIR/helm"
echo "$GOBIN_DIR/promtool"
