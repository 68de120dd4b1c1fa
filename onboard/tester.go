package onboard

import (
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Account kinds.
const (
	AccountCreated  = "created"
	AccountExisting = "existing"
)

// Deployment states.
const (
	DeploymentNone         = "none"
	DeploymentProvisioning = "provisioning"
	DeploymentActive       = "active"
	DeploymentFailed       = "failed"
	DeploymentTearingDown  = "tearing_down"
	DeploymentTeardownFail = "teardown_failed"
)

// Install states.
const (
	InstallNone       = "none"
	InstallInstalling = "installing"
	InstallInstalled  = "installed"
	InstallFailed     = "failed"
)

// Input limits, in bytes for text and in characters for usernames.
const (
	UsernameMinLen = 3
	UsernameMaxLen = 32
	FullNameMaxLen = 200
	EmailMaxLen    = 254
)

// Tester is a person being onboarded, with their account, deployment and
// install state.
type Tester struct {
	Username     string
	FullName     string
	Email        string
	Account      string
	PasswordHash []byte // bcrypt; empty for an existing account
	Deployment   Deployment
	InstallState string
	InstallError string
	CockpitURL   string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Deployment is a tester's VM, gateway name and login gate on a node.
type Deployment struct {
	State     string
	NodeID    string
	Project   string // deterministic grid project name; set before any contract exists
	Contracts []Contract
	Gateway   string
	VMAddress string
	Error     string
	// OnboardingID is the onboarding that provisioned it, if any, so that
	// canceling that onboarding undoes only what it created.
	OnboardingID string
}

// Contract is one billable grid object.
type Contract struct {
	ID      int64
	Kind    string // network, vm or name
	Name    string
	NodeID  string
	Project string
	State   string // created or deleted
}

// Contract kinds.
const (
	ContractNetwork = "network"
	ContractVM      = "vm"
	ContractName    = "name"
)

// IsReady reports whether the tester's stack is installed and reachable.
func (t *Tester) IsReady() bool {
	return t.InstallState == InstallInstalled && t.CockpitURL != ""
}

// HasDeployment reports whether the tester holds contracts or is acquiring them.
func (t *Tester) HasDeployment() bool {
	return t.Deployment.State != DeploymentNone && t.Deployment.State != ""
}

// HoldsContracts reports whether the tester has, or may have, contracts on
// the grid: a failed provision whose cleanup worked holds none.
func (t *Tester) HoldsContracts() bool {
	switch t.Deployment.State {
	case DeploymentNone, "":
		return false
	case DeploymentFailed:
		return len(t.Deployment.Contracts) > 0
	}
	return true
}

// TesterInput is the create-or-register form.
type TesterInput struct {
	Username string
	FullName string
	Email    string
	// Existing registers a new username whose login account already exists
	// outside the deployer: no one-time password is made, and the login gate
	// gets the username without a password hash.
	Existing bool
}

// Normalize trims surrounding space from every field and lowercases the
// username and email domain part, which DNS and mail treat as case-insensitive.
func (in *TesterInput) Normalize() {
	in.Username = strings.ToLower(strings.TrimSpace(in.Username))
	in.FullName = strings.TrimSpace(in.FullName)
	in.Email = strings.TrimSpace(in.Email)
	if at := strings.LastIndexByte(in.Email, '@'); at >= 0 {
		in.Email = in.Email[:at] + strings.ToLower(in.Email[at:])
	}
}

// ValidateUsername checks the DNS label rules a username follows, because it
// becomes part of the tester's gateway name.
func ValidateUsername(username string) error {
	switch {
	case username == "":
		return FieldError("username", "Username is missing. Enter 3 to 32 lowercase letters, digits or hyphens.")
	case len(username) < UsernameMinLen || len(username) > UsernameMaxLen:
		return FieldError("username", "Username must be 3 to 32 characters long; %q has %d.",
			clip(username, 40), utf8.RuneCountInString(username))
	case username[0] < 'a' || username[0] > 'z':
		return FieldError("username", "Username must start with a lowercase letter.")
	case username[len(username)-1] == '-':
		return FieldError("username", "Username must not end with a hyphen.")
	case len(username) >= 4 && username[2:4] == "--":
		return FieldError("username", "Username must not have hyphens in both its third and fourth places; "+
			"DNS reserves that form for internationalized names.")
	}
	for _, r := range username {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return FieldError("username",
				"Username may contain only lowercase letters a-z, digits and hyphens; %q is not allowed.",
				string(r))
		}
	}
	return nil
}

// OrphanUsername reports whether a project's username can be cleaned up as
// an orphan: a valid username, or a stand-in that a grid backend made for
// contracts it cannot trace to a username, whose third and fourth places
// are hyphens and which no tester can have.
func OrphanUsername(username string) bool {
	if ValidateUsername(username) == nil {
		return true
	}
	if len(username) < 5 || len(username) > UsernameMaxLen || username[2:4] != "--" {
		return false
	}
	for _, r := range username[:2] + username[4:] {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// ValidateFullName checks a new account's full name: one line of valid
// UTF-8 without control characters or bidirectional formatting characters,
// which could make the name, and the text after it on a page, read as
// something else.
func ValidateFullName(name string) error {
	switch {
	case name == "":
		return FieldError("full_name", "Full name is missing. A new account needs the tester's full name.")
	case len(name) > FullNameMaxLen:
		return FieldError("full_name", "Full name is too long: at most %d bytes.", FullNameMaxLen)
	case !utf8.ValidString(name):
		return FieldError("full_name", "Full name is not valid UTF-8 text.")
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return FieldError("full_name", "Full name must be one line of text without control characters.")
		}
		if isBidiControl(r) {
			return FieldError("full_name", "Full name must not contain bidirectional formatting characters (U+%04X).", r)
		}
	}
	return nil
}

// isBidiControl reports whether r is one of the Unicode characters that
// override or isolate the direction of the text around them: U+202A to
// U+202E and U+2066 to U+2069.
func isBidiControl(r rune) bool {
	return r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069'
}

// ValidateEmail checks a new account's email address: one plain address with
// a domain that has a dot, no display name, and only visible characters.
func ValidateEmail(email string) error {
	switch {
	case email == "":
		return FieldError("email", "Email is missing. A new account needs an address for the welcome email.")
	case len(email) > EmailMaxLen:
		return FieldError("email", "Email is too long: at most %d bytes.", EmailMaxLen)
	case !utf8.ValidString(email):
		return FieldError("email", "Email is not valid UTF-8 text.")
	}
	for _, r := range email {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return FieldError("email", "Email must not contain spaces, control or formatting characters (U+%04X).", r)
		}
	}
	addr, err := mail.ParseAddress(email)
	at := strings.LastIndexByte(email, '@')
	if err != nil || addr.Address != email || addr.Name != "" || at < 1 ||
		!strings.Contains(email[at+1:], ".") || strings.ContainsAny(email, " \t\r\n<>") {
		return FieldError("email", "Email %q is not a valid address; enter it as name@example.org.", clip(email, 60))
	}
	return nil
}

// ValidateNodeID checks a node id: a positive whole number that fits the
// grid's 32-bit ids, without leading zeros, so that each node has one
// spelling and its reservations one key.
func ValidateNodeID(nodeID string) error {
	if nodeID == "" {
		return FieldError("node_id", "Node is missing. Enter the id of the grid node, such as 1.")
	}
	n, err := strconv.ParseUint(nodeID, 10, 32)
	if err != nil || n == 0 || nodeID[0] == '0' {
		return FieldError("node_id",
			"Node %q is not a node id; enter a whole number from 1 to 4294967295 without leading zeros.",
			clip(nodeID, 20))
	}
	return nil
}

// clip shortens s for quoting in a message.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
