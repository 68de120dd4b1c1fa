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
	// tfPlainMax is the longest username kept whole; a longer one, or one
	// with a hyphen, gets a hashed name of exactly tfNameMax characters.
	tfPlainMax = tfNameMax - len(tfNamePrefix)
	// tfHashLen is the length of the hash part of a hashed name.
	tfHashLen = 8
)

// ToolName returns the tfcmd --name of a deployer project. For a username of
// at most 21 letters and digits it is "deployer" and the username, such as
// "deployeralice". Other usernames get a hashed name: "deployer", the first
// 13 letters and digits of the username and 8 hexadecimal digits of the
// project's SHA-256, padded with zeros to 29 characters. It returns "" for a
// project outside the deployer's naming.
//
// NOTE: a 21-character username of letters and digits could equal the hashed
// name of another username; by chance that takes a 32-bit hash collision on
// top of the same first 13 letters.
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
// seen. Any other name maps to "deployer-" and the letters and digits after
// the prefix. For an unknown hashed name, that project has the same tool
// name, so cleaning it up cancels the right contracts.
func projectOfToolName(name string, known map[string]string) string {
	if p, ok := known[name]; ok {
		return p
	}
	return onboard.ProjectName(strings.TrimPrefix(name, tfNamePrefix))
}
