// Package smtptest runs a real SMTP server on 127.0.0.1 for tests, built on
// github.com/emersion/go-smtp, that keeps the messages it receives.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one received message.
type Message struct {
	From string
	To   []string
	Data string
}

// Options sets up a server. Zero values give a plain server without login.
type Options struct {
	// User and Password, when set, are the only login the server accepts,
	// through AUTH PLAIN.
	User, Password string
	// TLS offers STARTTLS with a self-signed certificate for 127.0.0.1.
	TLS bool
	// Implicit speaks TLS from the first byte instead of offering STARTTLS.
	Implicit bool
	// Addr is the address to listen on; empty picks a free port.
	Addr string
}

// Server is a running SMTP server. It is safe for concurrent use.
type Server struct {
	Addr string
	Host string
	Port int
	// Pool trusts the server's certificate when the server uses TLS.
	Pool *x509.CertPool

	opts   Options
	server *smtp.Server
	ln     net.Listener
	mu     sync.Mutex
	msgs   []Message
	auths  int
}

// Start starts a server and stops it when the test ends.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{opts: o, Addr: ln.Addr().String(), Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	s.server = smtp.NewServer(backend{s})
	s.server.Domain = "mail.test"
	s.server.ReadTimeout, s.server.WriteTimeout = 10*time.Second, 10*time.Second
	s.server.AllowInsecureAuth = !o.TLS && !o.Implicit
	if o.TLS || o.Implicit {
		cert, pool := selfSigned(tb)
		s.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.Pool = pool
	}
	if o.Implicit {
		ln = tls.NewListener(ln, s.server.TLSConfig)
	}
	s.ln = ln
	go s.server.Serve(ln)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server. It closes the listener itself too, because the
// server learns of it only once Serve runs.
func (s *Server) Close() {
	s.server.Close()
	s.ln.Close()
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Logins returns how many logins succeeded.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s      *Server
	authed bool
	msg    Message
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.opts.User || pass != ss.s.opts.Password {
			return errors.New("invalid username or password")
		}
		ss.authed = true
		ss.s.mu.Lock()
		ss.s.auths++
		ss.s.mu.Unlock()
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.User != "" && !ss.authed {
		return errAuthRequired
	}
	ss.msg = Message{From: from}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.msg.Data = string(b)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.msg)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.msg = Message{} }
func (ss *session) Logout() error { return nil }

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
