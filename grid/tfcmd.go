package grid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"deployer/onboard"
)

// The tfcmd command lines used here follow threefoldtech/tfgrid-sdk-go,
// grid-cli: docs/vm.md, docs/gateway-name.md, cmd/deploy_vm.go,
// cmd/deploy_gateway_name.go and cmd/cancel.go. tfcmd logs through zerolog's
// console writer to stderr, with colour codes, one line per message such as
// "12:07PM INF vm mycelium ip: 544:b74f:…". `get vm` logs the deployment as
// indented JSON after "vm:". `cancel NAME` cancels the projects "vm/NAME",
// "kubernetes/NAME" and "NAME", which covers a VM, its network and a gateway
// name deployed under the same name.

// maxToolOutput bounds the output kept from one tfcmd run; the end is kept.
const maxToolOutput = 64 << 10

// toolRunner runs tfcmd. It is safe for concurrent use.
type toolRunner struct {
	path    string
	timeout time.Duration
}

// toolOutput is the colourless text of one run, stdout and stderr together.
type toolOutput string

// run runs tfcmd with args within the runner's timeout. A run that outlasts
// the timeout while ctx is still live returns an error wrapping
// onboard.ErrGridTimeout, because the grid may still finish what it began.
// A run that ends with a non-zero status returns an error with the tool's
// last error line.
func (t *toolRunner) run(ctx context.Context, args ...string) (toolOutput, error) {
	runCtx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var out tailBuffer
	cmd := exec.CommandContext(runCtx, t.path, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	// A killed tool may leave a child holding the output pipes; stop
	// waiting for them after a moment.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	text := toolOutput(stripColour(out.String()))

	command := "tfcmd " + strings.Join(commandWords(args), " ")
	switch {
	case err == nil:
		return text, nil
	case ctx.Err() != nil:
		return text, context.Cause(ctx)
	case runCtx.Err() != nil:
		return text, fmt.Errorf("%s did not finish within %s: %w", command, t.timeout, onboard.ErrGridTimeout)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return text, fmt.Errorf("%s failed with status %d: %s", command, exit.ExitCode(), text.lastError())
	}
	return text, fmt.Errorf("%s could not run: %w", command, err)
}

// commandWords returns the leading words of args that are subcommands, not
// flags or their values, for naming a run in messages.
func commandWords(args []string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return args[:i]
		}
	}
	return args
}

var colourCodes = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func stripColour(s string) string { return colourCodes.ReplaceAllString(s, "") }

// logLine matches a zerolog console line: a time, a level and the message.
var logLine = regexp.MustCompile(`^\S+\s+(TRC|DBG|INF|WRN|ERR|FTL|PNC)\s+(.*)$`)

// messages returns the message of each log line, without time and level.
func (o toolOutput) messages() []string {
	var msgs []string
	for _, line := range strings.Split(string(o), "\n") {
		if m := logLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			msgs = append(msgs, m[2])
		}
	}
	return msgs
}

// value returns the text after "key: " in the first log message that
// starts with key, or "".
func (o toolOutput) value(key string) string {
	for _, m := range o.messages() {
		if v, ok := strings.CutPrefix(m, key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// lastError returns the last error or fatal line, or the last line when
// there is none, clipped for a message.
func (o toolOutput) lastError() string {
	lines := strings.Split(strings.TrimSpace(string(o)), "\n")
	last := ""
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if m := logLine.FindStringSubmatch(line); m != nil && (m[1] == "ERR" || m[1] == "FTL" || m[1] == "PNC") {
			last = m[2]
		}
	}
	if last == "" && len(lines) > 0 {
		last = strings.TrimSpace(lines[len(lines)-1])
	}
	if last == "" {
		return "no output"
	}
	if len(last) > 300 {
		last = last[:300] + "…"
	}
	return last
}

// jsonAfter decodes the first JSON object in the output into out.
func (o toolOutput) jsonAfter(out any) error {
	i := strings.IndexByte(string(o), '{')
	if i < 0 {
		return errors.New("no JSON object in the output")
	}
	return json.NewDecoder(strings.NewReader(string(o[i:]))).Decode(out)
}

// vmAddresses are the addresses tfcmd reports for a VM.
type vmAddresses struct {
	IPv4      string `json:"computedip"`
	IPv6      string `json:"computedip6"`
	Planetary string `json:"planetary_ip"`
	Mycelium  string `json:"mycelium_ip"`
}

// best returns the address the deployer reaches the VM at: a public IPv4
// address, then public IPv6, then Yggdrasil, then Mycelium.
func (a vmAddresses) best() string {
	for _, addr := range []string{a.IPv4, a.IPv6, a.Planetary, a.Mycelium} {
		if addr != "" {
			ip, _, _ := strings.Cut(addr, "/")
			return ip
		}
	}
	return ""
}

// deployedAddresses reads the addresses that `deploy vm` logs.
func (o toolOutput) deployedAddresses() vmAddresses {
	return vmAddresses{
		IPv4: o.value("vm ipv4"), IPv6: o.value("vm ipv6"),
		Planetary: o.value("vm planetary ip"), Mycelium: o.value("vm mycelium ip"),
	}
}

// loadedAddresses reads the addresses from the JSON that `get vm` logs.
func (o toolOutput) loadedAddresses() (vmAddresses, error) {
	var dl struct {
		Vms []vmAddresses `json:"Vms"`
	}
	if err := o.jsonAfter(&dl); err != nil {
		return vmAddresses{}, err
	}
	if len(dl.Vms) == 0 {
		return vmAddresses{}, errors.New("the deployment has no VM")
	}
	return dl.Vms[0], nil
}

// tailBuffer keeps the last maxToolOutput bytes written to it. It is safe
// for concurrent use, because stdout and stderr write from two goroutines.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - maxToolOutput; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
