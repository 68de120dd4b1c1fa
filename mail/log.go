// Package mail delivers the outbox: a sender that only logs, used when no
// SMTP server is configured, and an SMTP sender.
package mail

import (
	"context"
	"log/slog"

	"deployer/onboard"
)

// LogSender records each message in the log instead of sending it; the
// outbox page shows the text. It is safe for concurrent use.
type LogSender struct {
	log *slog.Logger
}

var _ onboard.Mailer = (*LogSender)(nil)

// NewLogSender returns a sender that logs.
func NewLogSender(log *slog.Logger) *LogSender { return &LogSender{log: log} }

// Send logs the message's recipient and subject; the body stays in the
// outbox.
func (s *LogSender) Send(ctx context.Context, m onboard.Message) error {
	s.log.Info("Welcome email kept in the outbox; no SMTP server is configured",
		"message_id", m.ID, "tester", m.Tester, "subject", m.Subject)
	return nil
}
