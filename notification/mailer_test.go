package notification

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeSMTP accepts one session on 127.0.0.1 and returns what it was told.
func fakeSMTP(t *testing.T) (addr string, session <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var got strings.Builder
		r := bufio.NewReader(conn)
		reply := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
		reply("220 fake ESMTP")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				out <- got.String()
				return
			}
			got.WriteString(line)
			switch {
			case inData && line == ".\r\n":
				inData = false
				reply("250 queued")
			case inData:
			case strings.HasPrefix(line, "EHLO"):
				reply("250 fake")
			case strings.HasPrefix(line, "DATA"):
				inData = true
				reply("354 go on")
			case strings.HasPrefix(line, "QUIT"):
				reply("221 bye")
				out <- got.String()
				return
			default:
				reply("250 ok")
			}
		}
	}()
	return ln.Addr().String(), out
}

func TestSMTPSends(t *testing.T) {
	addr, session := fakeSMTP(t)
	m := SMTP{Addr: addr, From: "shop@kitshop.local", Timeout: 5 * time.Second}
	err := m.Send(context.Background(), Email{To: "alice@example.com", Subject: "Your order ö", Body: "line 1\nline 2\n"})
	if err != nil {
		t.Fatal(err)
	}
	got := <-session
	for _, want := range []string{
		"MAIL FROM:<shop@kitshop.local>", "RCPT TO:<alice@example.com>",
		"To: alice@example.com\r\n", "Subject: =?utf-8?q?Your_order_=C3=B6?=\r\n",
		"Content-Type: text/plain; charset=utf-8\r\n\r\nline 1\r\nline 2\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("session lacks %q:\n%s", want, got)
		}
	}
}

func TestSMTPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m := SMTP{Addr: addr, From: "shop@kitshop.local", Timeout: time.Second}
	if err := m.Send(context.Background(), Email{To: "a@b.c", Subject: "s", Body: "b"}); err == nil {
		t.Fatal("sent to a closed port")
	}
}
