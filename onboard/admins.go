package onboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// BootstrapAdmin is the admin created on first start.
const BootstrapAdmin = "admin"

// Admin password lengths in bytes. bcrypt reads at most 72 bytes, so a
// longer password is rejected rather than cut.
const (
	MinAdminPasswordLen = 12
	MaxAdminPasswordLen = 72
)

// ErrLoginBlocked is the cause of the error Login returns while a client
// address or account is blocked after too many failed logins.
var ErrLoginBlocked = errors.New("too many failed logins")

// Admin is an operator who may log in.
type Admin struct {
	Username     string
	PasswordHash []byte
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Session is a logged-in admin. Only the SHA-256 of its id is stored, so a
// copy of the database does not let anyone in.
type Session struct {
	IDHash     string
	Admin      string
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// AdminStore keeps admins and their sessions. Implementations are safe for
// concurrent use; lookups return ENotFound for a missing row.
type AdminStore interface {
	// CreateAdmin inserts an admin and reports whether it did; false means
	// the username is taken.
	CreateAdmin(ctx context.Context, a Admin) (bool, error)
	FindAdmin(ctx context.Context, username string) (*Admin, error)
	ListAdmins(ctx context.Context) ([]Admin, error)
	// SetAdminPassword stores a new hash and ends the admin's sessions.
	SetAdminPassword(ctx context.Context, username string, hash []byte, now time.Time) error
	CreateSession(ctx context.Context, s Session) error
	FindSession(ctx context.Context, idHash string) (*Session, error)
	TouchSession(ctx context.Context, idHash string, now time.Time) error
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteIdleSessions removes sessions last seen before the cutoff.
	DeleteIdleSessions(ctx context.Context, before time.Time) error
}

// A client address is blocked for loginWindow after loginMaxFailures failed
// logins within that window, and an account after accountMaxFailures. The
// account's limit is higher, so that one address guessing at an account
// cannot lock its admin out; it still caps guesses spread over many
// addresses.
const (
	loginMaxFailures   = 10
	accountMaxFailures = 50
	loginWindow        = 15 * time.Minute
)

// Auth logs admins in and out and checks sessions. It is safe for
// concurrent use.
type Auth struct {
	store   AdminStore
	idle    time.Duration
	cost    int
	log     *slog.Logger
	now     func() time.Time
	limiter *loginLimiter
	// dummyHash is compared against when the username is unknown, so that a
	// login takes as long whether or not the admin exists. It is made on
	// first use, to keep startup fast.
	dummyOnce sync.Once
	dummyHash []byte
}

// AuthOptions tunes Auth.
type AuthOptions struct {
	// Idle ends a session after that long without use.
	Idle time.Duration
	// BcryptCost is the work factor of admin password hashes; 0 means 12.
	BcryptCost int
	// Now returns the current time; nil means time.Now. Tests set it to move
	// sessions past the idle limit.
	Now func() time.Time
}

// NewAuth returns an Auth over the admin store.
func NewAuth(store AdminStore, opts AuthOptions, log *slog.Logger) *Auth {
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcryptCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Auth{
		store: store, idle: opts.Idle, cost: opts.BcryptCost, log: log, now: opts.Now,
		limiter: newLoginLimiter(loginMaxFailures, accountMaxFailures, loginWindow),
	}
}

func (a *Auth) dummy() []byte {
	a.dummyOnce.Do(func() {
		a.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a real password"), a.cost)
	})
	return a.dummyHash
}

func (a *Auth) hash(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), a.cost)
}

// Bootstrap makes sure the admin "admin" exists. With a password it sets
// that password, every start; without one it creates the admin with a
// generated password when no admin exists yet, and returns that password so
// that the caller can print it once. It returns "" otherwise.
func (a *Auth) Bootstrap(ctx context.Context, password string) (generated string, err error) {
	now := a.now().UTC()
	if password != "" {
		if len(password) < MinAdminPasswordLen {
			return "", fmt.Errorf("DEPLOYER_ADMIN_PASSWORD is too short: use at least %d characters", MinAdminPasswordLen)
		}
		return "", a.setOrCreate(ctx, BootstrapAdmin, password, now)
	}
	admins, err := a.store.ListAdmins(ctx)
	if err != nil || len(admins) > 0 {
		return "", err
	}
	generated, err = NewOneTimePassword()
	if err != nil {
		return "", err
	}
	return generated, a.setOrCreate(ctx, BootstrapAdmin, generated, now)
}

func (a *Auth) setOrCreate(ctx context.Context, username, password string, now time.Time) error {
	existing, err := a.store.FindAdmin(ctx, username)
	if err == nil && bcrypt.CompareHashAndPassword(existing.PasswordHash, []byte(password)) == nil {
		return nil
	}
	hash, herr := a.hash(password)
	if herr != nil {
		return herr
	}
	switch {
	case err == nil:
		return a.store.SetAdminPassword(ctx, username, hash, now)
	case ErrorCode(err) == ENotFound:
		_, err = a.store.CreateAdmin(ctx, Admin{Username: username, PasswordHash: hash, CreatedAt: now, UpdatedAt: now})
		return err
	default:
		return err
	}
}

// AddAdmin creates an admin. It returns EInvalid for a bad username or a
// short password and EConflict for a taken username.
func (a *Auth) AddAdmin(ctx context.Context, username, password string) error {
	if err := ValidateUsername(username); err != nil {
		return FieldError("username", "Admin %s", lowerFirst(ErrorMessage(err)))
	}
	if err := validateAdminPassword(password); err != nil {
		return err
	}
	hash, err := a.hash(password)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	ok, err := a.store.CreateAdmin(ctx, Admin{Username: username, PasswordHash: hash, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(EConflict, "Admin %s already exists.", username)
	}
	a.log.Info("Admin added", "admin", username)
	return nil
}

// ChangePassword sets a new password after checking the current one, and
// ends every session of the admin. It returns EInvalid naming the field for
// a wrong current password or a bad new one, and EUnauthorized while the
// admin is blocked after too many failed logins.
func (a *Auth) ChangePassword(ctx context.Context, username, current, next string) error {
	admin, err := a.store.FindAdmin(ctx, username)
	if err != nil {
		return err
	}
	// A wrong current password counts as a failed login, so that a stolen
	// session cannot be used to guess the password.
	if wait := a.limiter.blocked(a.now(), "user:"+username); wait > 0 {
		return &Error{Code: EUnauthorized, Err: ErrLoginBlocked,
			Message: fmt.Sprintf("Too many wrong passwords. Try again in %s.", formatDuration(wait.Round(time.Second)))}
	}
	if bcrypt.CompareHashAndPassword(admin.PasswordHash, []byte(current)) != nil {
		a.limiter.fail(a.now(), "user:"+username)
		return FieldError("current_password", "Current password is wrong.")
	}
	if err := validateAdminPassword(next); err != nil {
		return err
	}
	hash, err := a.hash(next)
	if err != nil {
		return err
	}
	return a.store.SetAdminPassword(ctx, username, hash, a.now().UTC())
}

// ResetPassword sets an admin's password without the current one, for an
// operator with access to the database, and ends every session of the
// admin. It returns ENotFound for an unknown admin and EInvalid for a bad
// password.
func (a *Auth) ResetPassword(ctx context.Context, username, password string) error {
	if _, err := a.store.FindAdmin(ctx, username); err != nil {
		return err
	}
	if err := validateAdminPassword(password); err != nil {
		return err
	}
	hash, err := a.hash(password)
	if err != nil {
		return err
	}
	if err := a.store.SetAdminPassword(ctx, username, hash, a.now().UTC()); err != nil {
		return err
	}
	a.log.Info("Admin password reset", "admin", username)
	return nil
}

func validateAdminPassword(p string) error {
	if len(p) < MinAdminPasswordLen || len(p) > MaxAdminPasswordLen {
		return FieldError("password", "Password must be %d to %d bytes long.", MinAdminPasswordLen, MaxAdminPasswordLen)
	}
	return nil
}

// Login checks the credentials and returns a new session id. Attempts are
// limited per client address and per username. It returns EInvalid for a
// username or password longer than any admin's, and EUnauthorized for wrong
// credentials or, wrapping ErrLoginBlocked, too many failed attempts.
func (a *Auth) Login(ctx context.Context, username, password, clientAddr string) (string, error) {
	if len(username) > UsernameMaxLen {
		return "", FieldError("username", "Username is too long: admin usernames have at most %d characters.",
			UsernameMaxLen)
	}
	if len(password) > MaxAdminPasswordLen {
		return "", FieldError("password", "Password is too long: admin passwords have at most %d bytes.",
			MaxAdminPasswordLen)
	}
	if wait := a.limiter.blocked(a.now(), "addr:"+clientAddr, "user:"+username); wait > 0 {
		return "", &Error{Code: EUnauthorized, Err: ErrLoginBlocked,
			Message: fmt.Sprintf("Too many failed logins. Try again in %s.", formatDuration(wait.Round(time.Second)))}
	}
	admin, err := a.store.FindAdmin(ctx, username)
	var hash []byte
	if err == nil {
		hash = admin.PasswordHash
	} else if ErrorCode(err) != ENotFound {
		return "", err
	} else {
		hash = a.dummy()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || err != nil {
		tripped := a.limiter.fail(a.now(), "addr:"+clientAddr, "user:"+username)
		a.log.Warn("Login failed", "admin", username, "client", clientAddr)
		for _, key := range tripped {
			kind, value, _ := strings.Cut(key, ":")
			a.log.Warn("Logins blocked after repeated failures", "blocked_by", kind, "value", value,
				"failures", loginMaxFailures, "duration", loginWindow.String())
		}
		return "", Errorf(EUnauthorized, "Wrong username or password.")
	}
	a.limiter.reset("user:" + username)

	id, err := newSessionID()
	if err != nil {
		return "", err
	}
	now := a.now().UTC()
	if err := a.store.CreateSession(ctx, Session{IDHash: HashSessionID(id), Admin: username, CreatedAt: now, LastSeenAt: now}); err != nil {
		return "", err
	}
	a.log.Info("Admin logged in", "admin", username, "client", clientAddr)
	return id, nil
}

// Session returns the session with the given id. It returns EUnauthorized
// for an unknown or idle-expired session, which it then deletes.
func (a *Auth) Session(ctx context.Context, id string) (*Session, error) {
	if id == "" || len(id) > 100 {
		return nil, Errorf(EUnauthorized, "Log in to continue.")
	}
	hash := HashSessionID(id)
	s, err := a.store.FindSession(ctx, hash)
	if ErrorCode(err) == ENotFound {
		return nil, Errorf(EUnauthorized, "Your session ended. Log in again.")
	}
	if err != nil {
		return nil, err
	}
	now := a.now().UTC()
	if now.Sub(s.LastSeenAt) > a.idle {
		a.store.DeleteSession(ctx, hash)
		return nil, Errorf(EUnauthorized, "Your session expired after %s without use. Log in again.", formatDuration(a.idle))
	}
	// Touch at most once a minute, to keep page loads from writing each
	// time, and at least twice per idle period, so that a session in use
	// does not expire. A session can therefore end up to that interval
	// earlier than idle after its last use.
	if now.Sub(s.LastSeenAt) > min(time.Minute, a.idle/2) {
		if err := a.store.TouchSession(ctx, hash, now); err != nil {
			a.log.Warn("Session not touched", "admin", s.Admin, "error", err)
		}
	}
	return s, nil
}

// SessionActive reports whether the session with the stored id hash still
// exists and has not gone idle. A read that fails counts as active, so that
// a passing database error does not end streams.
func (a *Auth) SessionActive(ctx context.Context, idHash string) bool {
	s, err := a.store.FindSession(ctx, idHash)
	if ErrorCode(err) == ENotFound {
		return false
	}
	if err != nil {
		return true
	}
	return a.now().UTC().Sub(s.LastSeenAt) <= a.idle
}

// Logout ends the session; an unknown id is not an error.
func (a *Auth) Logout(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	return a.store.DeleteSession(ctx, HashSessionID(id))
}

// PruneSessions deletes sessions idle past the limit.
func (a *Auth) PruneSessions(ctx context.Context) error {
	return a.store.DeleteIdleSessions(ctx, a.now().UTC().Add(-a.idle))
}

// HashSessionID returns the stored form of a session id.
func HashSessionID(id string) string {
	sum := sha256.Sum256([]byte("session:" + id))
	return hex.EncodeToString(sum[:])
}

// CSRFToken returns the session's CSRF token. It is derived from the session
// id, so it changes at every login and needs no storage, and it cannot be
// turned back into the id.
func CSRFToken(sessionID string) string {
	sum := sha256.Sum256([]byte("csrf:" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// EqualSecret compares two secrets in constant time.
func EqualSecret(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func newSessionID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]|0x20) + s[1:]
}

// loginLimiter blocks a key after its maximum of failures within window:
// maxAddr for "addr:" keys, maxUser for "user:" keys.
type loginLimiter struct {
	mu      sync.Mutex
	maxAddr int
	maxUser int
	window  time.Duration
	fails   map[string][]time.Time
}

func newLoginLimiter(maxAddr, maxUser int, window time.Duration) *loginLimiter {
	return &loginLimiter{maxAddr: maxAddr, maxUser: maxUser, window: window, fails: map[string][]time.Time{}}
}

func (l *loginLimiter) max(key string) int {
	if strings.HasPrefix(key, "user:") {
		return l.maxUser
	}
	return l.maxAddr
}

// blocked returns how long the first blocked key stays blocked, or 0.
func (l *loginLimiter) blocked(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		recent := l.prune(now, k)
		if len(recent) >= l.max(k) {
			return recent[0].Add(l.window).Sub(now)
		}
	}
	return 0
}

// fail records a failure for each key and returns the keys that this
// failure blocked.
func (l *loginLimiter) fail(now time.Time, keys ...string) (tripped []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		l.fails[k] = append(l.prune(now, k), now)
		if len(l.fails[k]) == l.max(k) {
			tripped = append(tripped, k)
		}
	}
	// Keep the map bounded when many addresses fail once.
	if len(l.fails) > 10000 {
		for k := range l.fails {
			if len(l.prune(now, k)) == 0 {
				delete(l.fails, k)
			}
		}
	}
	return tripped
}

func (l *loginLimiter) reset(key string) {
	l.mu.Lock()
	delete(l.fails, key)
	l.mu.Unlock()
}

func (l *loginLimiter) prune(now time.Time, key string) []time.Time {
	times := l.fails[key]
	i := 0
	for i < len(times) && now.Sub(times[i]) > l.window {
		i++
	}
	times = times[i:]
	if len(times) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = times
	}
	return times
}

// Admins returns every admin, without password hashes.
func (a *Auth) Admins(ctx context.Context) ([]Admin, error) { return a.store.ListAdmins(ctx) }
