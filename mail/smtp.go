package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	"deployer/onboard"

	gomail "github.com/wneessen/go-mail"
)

// SMTP TLS modes.
const (
	TLSNone     = "none"     // plain text; only for a server on the same host or network
	TLSStartTLS = "starttls" // STARTTLS is required, usually on port 587
	TLSImplicit = "tls"      // TLS from the first byte, usually on port 465
)

// DefaultSMTPTimeout bounds connecting and each SMTP command.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig is the SMTP server that delivers welcome emails.
type SMTPConfig struct {
	Host     string
	Port     int
	User     string // empty sends without authentication
	Password string
	From     string // the sender address, with an optional display name
	TLS      string // TLSNone, TLSStartTLS or TLSImplicit
	// TLSConfig replaces the default TLS settings, which verify the
	// server's certificate against the system's roots for Host.
	TLSConfig *tls.Config
	Timeout   time.Duration
}

// SMTPSender delivers messages through an SMTP server, with one connection
// per message. The outbox retries failed deliveries. It is safe for
// concurrent use.
type SMTPSender struct {
	cfg  SMTPConfig
	from *netmail.Address
}

var _ onboard.Mailer = (*SMTPSender)(nil)

// NewSMTPSender returns a sender. It returns an error naming the setting
// when the host, port, sender address or TLS mode is invalid.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	if cfg.Host == "" {
		return nil, errors.New("DEPLOYER_SMTP_HOST is empty")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("DEPLOYER_SMTP_PORT %d is not a port; use 587 for starttls or 465 for tls", cfg.Port)
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("DEPLOYER_SMTP_FROM %q is not an email address, such as Deployer <deployer@example.org>",
			cfg.From)
	}
	switch cfg.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("DEPLOYER_SMTP_TLS %q is unknown; use none, starttls or tls", cfg.TLS)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	return &SMTPSender{cfg: cfg, from: from}, nil
}

// Description returns where messages go, for the outbox page: the server,
// the TLS mode, the login and the sender, never the password.
func (s *SMTPSender) Description() string {
	login := "without login"
	if s.cfg.User != "" {
		login = "as " + s.cfg.User
	}
	return fmt.Sprintf("SMTP %s:%d (%s), %s, from %s", s.cfg.Host, s.cfg.Port, s.cfg.TLS, login, s.from.Address)
}

// Send delivers one message. The error never contains the password.
func (s *SMTPSender) Send(ctx context.Context, m onboard.Message) error {
	msg := gomail.NewMsg()
	if err := msg.FromFormat(s.from.Name, s.from.Address); err != nil {
		return fmt.Errorf("sender %s: %w", s.from.Address, err)
	}
	if err := msg.AddToFormat(m.ToName, m.To); err != nil {
		return fmt.Errorf("recipient %q is invalid: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	msg.SetDate()
	msg.SetMessageID()

	client, err := s.client()
	if err != nil {
		return err
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return s.clean(fmt.Errorf("deliver to %s through %s:%d: %w", m.To, s.cfg.Host, s.cfg.Port, err))
	}
	return nil
}

// Check connects, greets the server, starts TLS and logs in as configured,
// then quits without sending anything.
func (s *SMTPSender) Check(ctx context.Context) error {
	client, err := s.client()
	if err != nil {
		return err
	}
	if err := client.DialWithContext(ctx); err != nil {
		return s.clean(fmt.Errorf("connect to %s:%d: %w", s.cfg.Host, s.cfg.Port, err))
	}
	return s.clean(client.Close())
}

// client returns a go-mail client for one connection.
func (s *SMTPSender) client() (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(s.cfg.Port), gomail.WithTimeout(s.cfg.Timeout)}
	switch s.cfg.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	}
	if s.cfg.TLSConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(s.cfg.TLSConfig))
	}
	if s.cfg.User != "" {
		// Discovery picks the strongest mechanism the server offers, but
		// picks none over an unencrypted connection. So mode none, which
		// the operator chose, sends PLAIN, and the password, in clear text.
		auth := gomail.SMTPAuthAutoDiscover
		if s.cfg.TLS == TLSNone {
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(s.cfg.User), gomail.WithPassword(s.cfg.Password))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, s.clean(fmt.Errorf("set up the SMTP client for %s: %w", s.cfg.Host, err))
	}
	return client, nil
}

// clean returns err with the password cut out of its text, because the
// outbox stores the error and the log shows it.
func (s *SMTPSender) clean(err error) error {
	if err == nil || s.cfg.Password == "" || !strings.Contains(err.Error(), s.cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.cfg.Password, "[redacted]"))
}
