package gridtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tool is a stand-in tfcmd: a shell script in its own folder, which also
// holds the grid's state.
//
// The folder contains args.log with one line of arguments per run, and
// contracts with one contract per line. It also contains ssh.pub, the last
// public key given to deploy vm, and backends, the last gateway backends.
// A file fail-STEP makes the next run of STEP fail, and hang-STEP makes every
// run of it hang, where STEP is deploy-vm, deploy-gateway, get-vm or cancel.
// The file fail-after-network makes deploy vm fail after it created the
// network.
type Tool struct {
	Path string
	Dir  string
}

// WriteTool writes the stand-in into a temporary folder.
func WriteTool(tb testing.TB) *Tool {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "tfcmd")
	if err := os.WriteFile(path, []byte(toolScript), 0o755); err != nil {
		tb.Fatal(err)
	}
	return &Tool{Path: path, Dir: dir}
}

// Calls returns the argument lines of every run so far.
func (t *Tool) Calls(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(t.Dir, "args.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// Fail makes the next run of step fail.
func (t *Tool) Fail(tb testing.TB, step string) { t.touch(tb, "fail-"+step) }

// Hang makes every run of step hang until it is killed.
func (t *Tool) Hang(tb testing.TB, step string) { t.touch(tb, "hang-"+step) }

// Clear removes every fail and hang switch.
func (t *Tool) Clear(tb testing.TB) {
	tb.Helper()
	for _, pattern := range []string{"fail-*", "hang-*"} {
		matches, _ := filepath.Glob(filepath.Join(t.Dir, pattern))
		for _, m := range matches {
			os.Remove(m)
		}
	}
}

// File returns the content of a file in the tool's folder, or "".
func (t *Tool) File(name string) string {
	b, _ := os.ReadFile(filepath.Join(t.Dir, name))
	return strings.TrimSpace(string(b))
}

func (t *Tool) touch(tb testing.TB, name string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(t.Dir, name), nil, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// toolScript imitates tfcmd's command line and its zerolog console output,
// colour codes included. Contract lines are "ID KIND NODE TYPE NAME PROJECT".
const toolScript = `#!/bin/sh
state=$(cd "$(dirname "$0")" && pwd)
printf '%s\n' "$*" >> "$state/args.log"

log() { printf '\033[90m3:04PM\033[0m \033[32mINF\033[0m %s\n' "$1" >&2; }
fatal() { printf '\033[90m3:04PM\033[0m \033[31mFTL\033[0m \033[1merror=\033[0m"%s"\n' "$1" >&2; exit 1; }

case "$1 $2" in
"deploy vm") step=deploy-vm ;;
"deploy gateway") step=deploy-gateway ;;
"get vm") step=get-vm ;;
cancel*) step=cancel ;;
*) step=other ;;
esac
if [ "$1" = "--help" ]; then
	echo "A cli for interacting with Threefold Grid"
	exit 0
fi
if [ -e "$state/hang-$step" ]; then exec sleep 30; fi

while ! mkdir "$state/lock" 2>/dev/null; do sleep 0.01; done
trap 'rmdir "$state/lock"' EXIT

if [ -e "$state/fail-$step" ]; then
	rm -f "$state/fail-$step"
	fatal "failed to $step: the grid rejected the request"
fi

next_id() {
	id=$(cat "$state/next-id" 2>/dev/null || echo 5000)
	echo $((id + 1)) > "$state/next-id"
	echo "$id"
}
add() { echo "$(next_id) $*" >> "$state/contracts"; }

name=""; node=""; ssh=""; backends=""
parse() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--name|-n) name=$2; shift ;;
		--node) node=$2; shift ;;
		--ssh) ssh=$2; shift ;;
		--backends) backends=$2; shift ;;
		esac
		shift
	done
}

case "$step" in
deploy-vm)
	shift 2; parse "$@"
	[ -n "$name" ] || fatal "required flag(s) \"name\" not set"
	grep -q '^ssh-' "$ssh" 2>/dev/null || fatal "open $ssh: no such file or directory"
	cp "$ssh" "$state/ssh.pub"
	log "deploying network"
	add "node $node network ${name}network vm/$name"
	if [ -e "$state/fail-after-network" ]; then
		rm -f "$state/fail-after-network"
		fatal "failed to deploy vm on node $node: not enough capacity"
	fi
	log "deploying vm"
	add "node $node vm $name vm/$name"
	log "vm mycelium ip: 5a1:2b3c:4d5e:ff0f:6b18:921f:8031:$node"
	;;
deploy-gateway)
	shift 3; parse "$@"
	echo "$backends" > "$state/backends"
	log "deploying gateway name"
	add "name 0 - $name $name"
	add "node $node gateway $name $name"
	log "fqdn: $name.$(cat "$state/domain" 2>/dev/null || echo gent01.grid.test)"
	;;
get-vm)
	name=$3
	line=$(awk -v p="vm/$name" '$4 == "vm" && $6 == p' "$state/contracts" 2>/dev/null)
	[ -n "$line" ] || fatal "failed to get vm: no deployment found for $name"
	node=$(echo "$line" | awk '{print $3}')
	log "vm:
{
	\"Name\": \"$name\",
	\"NodeID\": $node,
	\"Vms\": [
		{
			\"name\": \"$name\",
			\"computedip\": \"\",
			\"computedip6\": \"\",
			\"planetary_ip\": \"\",
			\"mycelium_ip\": \"5a1:2b3c:4d5e:ff0f:6b18:921f:8031:$node\",
			\"ip\": \"10.20.2.2\"
		}
	]
}"
	;;
cancel)
	name=$2
	log "canceling contracts project name=vm/$name"
	if [ -e "$state/contracts" ]; then
		awk -v a="vm/$name" -v b="$name" '$6 != a && $6 != b' "$state/contracts" > "$state/contracts.new"
		mv "$state/contracts.new" "$state/contracts"
	fi
	log "$name canceled"
	;;
*)
	fatal "unknown command \"$*\" for \"tfcmd\""
	;;
esac
`
