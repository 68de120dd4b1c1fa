package grid

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"deployer/onboard"
)

// tfcmd names one deployment with one --name, and that name becomes the VM's
// workload name, the network's name plus "network", the gateway name, and
// the project names "vm/<name>" and "<name>" on the contracts. ZOS accepts
// workload names of at most 36 characters of [a-zA-Z0-9_]
// (threefoldtech/zos, pkg/gridtypes/id.go, IsValidName) and gateway names of
// [a-zA-Z0-9-.] (pkg/gridtypes/zos/gw_name.go). So the only characters that
// every use accepts are letters and digits, and lowercase keeps the name a
// DNS label.
const (
	// tfNamePrefix starts every tool name the deployer makes.
	tfNamePrefix = "deployer"
	// tfNameMax leaves room for the "network" suffix within 36 characters.
	tfNameMax = 36 - len("network")
	// tfPlainMax is the longest username kept whole. A longer one, or one
	// with a hyphen, gets a hashed name of exactly tfNameMax characters,
	// which no plain name reaches, so the two kinds never meet.
	tfPlainMax = tfNameMax - len(tfNamePrefix) - 1
	// tfHashLen is the length of the hash part of a hashed name: 64 bits,
	// so that no one can find two usernames with the same name.
	tfHashLen = 16
	// tfUnknownMarker starts the username of the project that an unknown
	// hashed name maps back to. Usernames cannot have hyphens in their third
	// and fourth places, which DNS reserves, so no tester has such a name.
	tfUnknownMarker = "hx--"
)

// ToolName returns the tfcmd --name of a deployer project. For a username of
// at most 20 letters and digits it is "deployer" and the username, such as
// "deployeralice". Other usernames get a hashed name: "deployer", the first
// 5 letters and digits of the username and 16 hexadecimal digits of the
// project's SHA-256, padded with zeros to 29 characters. It returns "" for a
// project outside the deployer's naming.
func ToolName(project string) string {
	username := onboard.ProjectTester(project)
	if username == "" {
		return ""
	}
	letters := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, username)
	if letters == username && len(username) <= tfPlainMax {
		return tfNamePrefix + username
	}
	if rest, ok := strings.CutPrefix(username, tfUnknownMarker); ok && len(rest) == tfNameMax-len(tfNamePrefix) &&
		isToolName(tfNamePrefix+rest) {
		return tfNamePrefix + rest
	}
	sum := sha256.Sum256([]byte(project))
	keep := tfNameMax - len(tfNamePrefix) - tfHashLen
	if len(letters) > keep {
		letters = letters[:keep]
	}
	name := tfNamePrefix + letters + hex.EncodeToString(sum[:])[:tfHashLen]
	// Pad a short hashed name so that every hashed name is exactly
	// tfNameMax long and so differs from every plain name.
	return name + strings.Repeat("0", tfNameMax-len(name))
}

// isToolName reports whether name is under the deployer's tool naming.
func isToolName(name string) bool {
	if !strings.HasPrefix(name, tfNamePrefix) || len(name) <= len(tfNamePrefix) || len(name) > tfNameMax {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// projectOfToolName returns the deployer project of a tool name, looking up
// hashed names, which cannot be reversed, in the projects the caller has
// seen. A plain name maps to "deployer-" and the username after the prefix.
// An unknown hashed name maps to a project whose username is the marker and
// the rest of the name. That project has the same tool name, so cleaning it
// up cancels the right contracts.
func projectOfToolName(name string, known map[string]string) string {
	if p, ok := known[name]; ok {
		return p
	}
	rest := strings.TrimPrefix(name, tfNamePrefix)
	if len(name) == tfNameMax {
		return onboard.ProjectName(tfUnknownMarker + rest)
	}
	return onboard.ProjectName(rest)
}
