package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main is a service's func main: it runs run with the command-line arguments and a
// context cancelled by SIGINT or SIGTERM (which starts the graceful shutdown), and
// exits 1 with the error when run fails.
func Main(service string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
		os.Exit(1)
	}
}
