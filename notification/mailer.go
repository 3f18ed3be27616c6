package notification

import (
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// Email is one plain-text message to one recipient.
type Email struct {
	To      string
	Subject string
	Body    string
}

// Mailer sends emails.
type Mailer interface {
	Send(ctx context.Context, e Email) error
}

// RecordOnly is the Mailer used when no SMTP server is configured: it sends nothing;
// the email is only recorded, and visible through GET /v1/notifications.
type RecordOnly struct{}

// Send does nothing.
func (RecordOnly) Send(context.Context, Email) error { return nil }

// SMTP sends through an SMTP server without authentication (a local relay), using
// STARTTLS when the server offers it.
type SMTP struct {
	Addr    string        // host:port
	From    string        // sender address
	Timeout time.Duration // bound of one send when ctx has no earlier deadline
}

// Send delivers e, within ctx's deadline or Timeout.
func (m SMTP) Send(ctx context.Context, e Email) error {
	deadline := time.Now().Add(m.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	_ = conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(m.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return fmt.Errorf("smtp: starttls: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(e.To); err != nil {
		return fmt.Errorf("smtp: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if _, err := w.Write(message(m.From, e, time.Now())); err != nil {
		return fmt.Errorf("smtp: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: end of data: %w", err)
	}
	return c.Quit()
}

// message is e in RFC 5322 form with CRLF line ends. The recipient and subject come
// from validated event data, with no line breaks; the subject is Q-encoded if needed.
func message(from string, e Email, now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", e.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", e.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(e.Body, "\n", "\r\n"))
	return []byte(b.String())
}
