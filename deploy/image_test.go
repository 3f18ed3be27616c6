package deploy_test

import (
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// distrolessStatic is the size of gcr.io/distroless/static-debian12:nonroot as
// published (its one layer: CA certificates, tzdata, /etc/passwd; about 2 MB). It is
// not measured here: there is no Docker engine to pull it.
const distrolessStatic = 2 << 20

// TestImage checks the Dockerfile's shape, then builds every service's binary the way
// the Dockerfile does (there is no Docker engine here) and reports each image's size:
// the distroless base plus the service and the health check binary, the image's only
// other layers.
func TestImage(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(dockerfile)
	for _, want := range []string{
		`FROM gcr.io/distroless/static-debian12:nonroot`,
		`CGO_ENABLED=0`,
		`-trimpath -ldflags "-s -w"`,
		`"./${SERVICE}/cmd/${SERVICE}"`,
		`./deploy/healthcheck`,
		`USER 65532:65532`,
		`HEALTHCHECK`,
		`org.opencontainers.image.version="${VERSION}"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	if m := regexp.MustCompile(`(?m)^FROM golang:\$\{GO_VERSION\}`).FindString(text); m == "" {
		t.Error("the build stage is not golang:${GO_VERSION}")
	}
	if !regexp.MustCompile(`(?m)^ARG GO_VERSION=\d+\.\d+\.\d+$`).MatchString(text) {
		t.Error("GO_VERSION is not pinned to a patch release")
	}

	out := t.TempDir()
	env := []string{"CGO_ENABLED=0", "GOOS=linux"}
	build := func(name, pkg string) int64 {
		bin := filepath.Join(out, name)
		run(t, root(t), nil, env, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
		assertStatic(t, bin)
		info, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		return info.Size()
	}
	health := build("healthcheck", "./deploy/healthcheck")
	t.Logf("healthcheck binary %.1f MiB", mib(health))
	for _, svc := range sortedServices() {
		size := build(svc, "./"+svc+"/cmd/"+svc)
		t.Logf("image kitshop/%-12s ≈ %5.1f MiB (binary %.1f MiB + healthcheck %.1f MiB + distroless static %.1f MiB)",
			svc, mib(size+health+distrolessStatic), mib(size), mib(health), mib(distrolessStatic))
	}
}

// assertStatic fails unless bin is an ELF executable without a dynamic loader, which
// is what runs on distroless/static (no libc there).
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked", filepath.Base(bin))
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func sortedServices() []string {
	return []string{"user", "inventory", "order", "payment", "notification", "gateway"}
}
