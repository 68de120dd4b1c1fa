package onboard

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// passwordAlphabet leaves out look-alike characters (0 O 1 l I) because an
// admin may read the one-time password out to the tester.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// OneTimePasswordLen is the length of a generated password: about 117 bits.
const OneTimePasswordLen = 20

// bcryptCost is the work factor of stored password hashes.
const bcryptCost = 12

// NewOneTimePassword returns a random password from crypto/rand.
func NewOneTimePassword() (string, error) {
	b := make([]byte, OneTimePasswordLen)
	n := byte(len(passwordAlphabet))
	limit := 256 - 256%int(n) // reject bytes past the last whole multiple, to keep the draw uniform
	for i := 0; i < len(b); {
		var one [1]byte
		if _, err := rand.Read(one[:]); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		if int(one[0]) >= limit {
			continue
		}
		b[i] = passwordAlphabet[one[0]%n]
		i++
	}
	return string(b), nil
}

// Registration is the outcome of create-or-register.
type Registration struct {
	Tester *Tester
	// Created is true when the call created the account.
	Created bool
	// OneTimePassword is the new account's first password. It is set only in
	// the call that created the account and is stored nowhere.
	OneTimePassword string
}

// newAccount validates a new account's fields and returns the tester with a
// fresh one-time password. It returns EInvalid naming the first bad field.
func (s *Service) newAccount(in TesterInput) (*Tester, string, error) {
	if err := ValidateFullName(in.FullName); err != nil {
		return nil, "", err
	}
	if err := ValidateEmail(in.Email); err != nil {
		return nil, "", err
	}
	now := s.now()
	t := &Tester{
		Username:     in.Username,
		FullName:     in.FullName,
		Email:        in.Email,
		Account:      AccountExisting,
		Deployment:   Deployment{State: DeploymentNone},
		InstallState: InstallNone,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if in.Existing {
		return t, "", nil
	}
	password, err := NewOneTimePassword()
	if err != nil {
		return nil, "", err
	}
	t.PasswordHash, err = bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return nil, "", fmt.Errorf("hash one-time password: %w", err)
	}
	t.Account = AccountCreated
	return t, password, nil
}

// checkKnownTester checks the full name and email given for a username that
// is already known. Either may be empty, and one that is given must be
// valid and match the stored one. Another person under a known username is
// more likely a mistaken username than new details, so the deployer rejects
// it instead of changing the tester. It returns EInvalid or EConflict naming
// the field.
func checkKnownTester(in TesterInput, t *Tester) error {
	if in.FullName != "" {
		if err := ValidateFullName(in.FullName); err != nil {
			return err
		}
		if !sameWords(in.FullName, t.FullName) {
			return knownTesterDiffers(t, "full_name", "full name")
		}
	}
	if in.Email != "" {
		if err := ValidateEmail(in.Email); err != nil {
			return err
		}
		if !strings.EqualFold(in.Email, t.Email) {
			return knownTesterDiffers(t, "email", "email")
		}
	}
	return nil
}

// sameWords reports whether a and b have the same words, ignoring case and
// the spaces between them.
func sameWords(a, b string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " "))
}

// knownTesterDiffers returns the conflict for a field whose value differs
// from the stored tester's, naming whom the username belongs to.
func knownTesterDiffers(t *Tester, field, label string) *Error {
	return &Error{Code: EConflict, Field: field, Message: fmt.Sprintf("Username %s belongs to %s <%s>, "+
		"and the %s given differs. Leave full name and email empty to onboard that tester, "+
		"or choose another username for a new one.", t.Username, t.FullName, t.Email, label)}
}

// CreateOrRegister registers a known tester as it is, or adds a new username:
// as a created account with a one-time password, returned once, or, with
// in.Existing, as an existing account that keeps its own password. A new
// username needs a full name and an email. It returns EInvalid
// naming the field for bad input, and stores nothing then.
func (s *Service) CreateOrRegister(ctx context.Context, in TesterInput) (reg Registration, err error) {
	in.Normalize()
	defer func() { s.audit(ctx, "tester.register", in.Username, "", err, registrationDetail(reg)) }()
	if err := ValidateUsername(in.Username); err != nil {
		return Registration{}, err
	}

	existing, err := s.store.FindTester(ctx, in.Username)
	if err == nil {
		if err := checkKnownTester(in, existing); err != nil {
			return Registration{}, err
		}
		return Registration{Tester: existing}, nil
	}
	if ErrorCode(err) != ENotFound {
		return Registration{}, err
	}

	t, password, err := s.newAccount(in)
	if err != nil {
		return Registration{}, err
	}
	created, err := s.store.CreateTester(ctx, t)
	if err != nil {
		return Registration{}, err
	}
	if !created {
		// Another request created it between the lookup and the insert.
		existing, err := s.store.FindTester(ctx, in.Username)
		return Registration{Tester: existing}, err
	}
	s.log.Info("Account created", "tester", t.Username)
	return Registration{Tester: t, Created: true, OneTimePassword: password}, nil
}

func registrationDetail(reg Registration) string {
	switch {
	case reg.Tester == nil:
		return ""
	case reg.Created && reg.Tester.Account == AccountExisting:
		return "existing account registered"
	case reg.Created:
		return "account created"
	default:
		return "known tester registered again"
	}
}

// PasswordReset is the outcome of ResetPassword.
type PasswordReset struct {
	// Password is the new one-time password, stored nowhere.
	Password string
	// GateWarning says, when it is not empty, that the login gate on the
	// tester's VM still holds the old password, and what to do.
	GateWarning string
}

// gateTimeout bounds writing the login gate after a password reset.
const gateTimeout = 2 * time.Minute

// ResetPassword gives the tester a new one-time password and returns it.
// When the tester has a deployment, the login gate on the VM gets the new
// hash at once, so that the old password stops working; if that fails, the
// new password is still stored and returned with a warning. It returns
// ENotFound for an unknown tester, EInvalid for an existing account, whose
// password the deployer does not own, and EConflict while a step runs.
func (s *Service) ResetPassword(ctx context.Context, username string) (reset PasswordReset, err error) {
	defer func() { s.audit(ctx, "tester.reset_password", username, "", err, reset.GateWarning) }()
	t, err := s.store.FindTester(ctx, username)
	if err != nil {
		return reset, err
	}
	if t.Account == AccountExisting {
		return reset, Errorf(EInvalid, "%s has an existing account whose password the deployer does not manage.", username)
	}
	unlock, err := s.lockTester(username, "A step")
	if err != nil {
		return reset, err
	}
	defer unlock()

	password, err := NewOneTimePassword()
	if err != nil {
		return reset, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return reset, fmt.Errorf("hash one-time password: %w", err)
	}
	if err := s.store.SetPasswordHash(ctx, username, hash, s.now()); err != nil {
		return reset, err
	}
	reset.Password = password
	s.log.Info("Password reset", "tester", username)

	if t.Deployment.State != DeploymentActive {
		return reset, nil
	}
	gateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gateTimeout)
	defer cancel()
	req := InstallRequest{Username: username, NodeID: t.Deployment.NodeID, Gateway: t.Deployment.Gateway,
		VMAddress: t.Deployment.VMAddress, PasswordHash: hash}
	if err := s.installer.SetLoginGate(gateCtx, req); err != nil {
		s.log.Warn("Login gate not updated after a password reset", "tester", username, "error", err)
		reset.GateWarning = fmt.Sprintf("The login gate on the VM could not be updated (%v), so the old password "+
			"still opens the cockpit. Press Install again to write the new one.", err)
	}
	return reset, nil
}

// DeleteTester removes a tester's account and history. It returns EConflict
// while the tester holds a deployment or has an onboarding or step running,
// because deleting then would leave contracts that no tester records.
func (s *Service) DeleteTester(ctx context.Context, username string) (err error) {
	defer func() { s.audit(ctx, "tester.delete", username, "", err, "") }()
	unlock, err := s.lockTester(username, "A step")
	if err != nil {
		return err
	}
	defer unlock()
	t, err := s.store.FindTester(ctx, username)
	if err != nil {
		return err
	}
	if t.HoldsContracts() {
		return Errorf(EConflict, "%s still has a deployment on node %s. Press Teardown first, then delete.",
			username, t.Deployment.NodeID)
	}
	if active, err := s.store.ActiveOnboarding(ctx, username); err == nil {
		return Errorf(EConflict, "Onboarding %s is running for %s. Cancel it first, then delete.", active.ID, username)
	}
	if err := s.store.DeleteTester(ctx, username); err != nil {
		return err
	}
	s.log.Info("Tester deleted", "tester", username)
	return nil
}

// Tester returns one tester. It returns ENotFound for an unknown username.
func (s *Service) Tester(ctx context.Context, username string) (*Tester, error) {
	return s.store.FindTester(ctx, username)
}

// TesterPage is one page of a tester search.
type TesterPage struct {
	Testers []*Tester
	Text    string
	Page    int // from 1
	Pages   int
	Total   int
}

// TesterPageSize is the number of testers on one page of the list.
const TesterPageSize = 50

// SearchTesters returns the page of testers whose username, full name or
// email contains text, newest first. A page past the last gives the last.
func (s *Service) SearchTesters(ctx context.Context, text string, page int) (TesterPage, error) {
	text = strings.TrimSpace(text)
	if len(text) > 100 {
		return TesterPage{}, FieldError("q", "Search text is too long: at most 100 bytes.")
	}
	page = max(page, 1)
	testers, total, err := s.store.SearchTesters(ctx, text, (page-1)*TesterPageSize, TesterPageSize)
	if err != nil {
		return TesterPage{}, err
	}
	pages := max((total+TesterPageSize-1)/TesterPageSize, 1)
	if page > pages {
		page = pages
		if testers, total, err = s.store.SearchTesters(ctx, text, (page-1)*TesterPageSize, TesterPageSize); err != nil {
			return TesterPage{}, err
		}
	}
	return TesterPage{Testers: testers, Text: text, Page: page, Pages: pages, Total: total}, nil
}

// Testers returns every tester, ordered by username.
func (s *Service) Testers(ctx context.Context) ([]*Tester, error) {
	return s.store.ListTesters(ctx)
}

// TesterLog returns the newest log lines of the tester's steps and stages.
func (s *Service) TesterLog(ctx context.Context, username string, limit int) ([]LogLine, error) {
	return s.store.TesterLog(ctx, username, limit)
}
