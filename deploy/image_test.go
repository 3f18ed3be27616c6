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
// not measured here: this test needs no Docker engine, and no registry answers here.
const distrolessStatic = 2 << 20

// TestImage checks the Dockerfile's shape, then builds every service's binary the way
// the Dockerfile does (without Docker; make compose-test builds the images) and reports
// each image's size: the distroless base plus the service and the health check binary,
// the image's only other layers.
func TestImage(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(dockerfile)
	for _, want := range []string{
		`ARG BUILDER_IMAGE=golang:${GO_VERSION}-bookworm`,
		`ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot`,
		`FROM ${BUILDER_IMAGE} AS build`,
		`FROM ${RUNTIME_IMAGE}`,
		`CGO_ENABLED=0`,
		`-trimpath -ldflags "-s -w"`,
		`./deploy/healthcheck`,
		`./cmd/kitshop`,
		`USER 65532:65532`,
		`HEALTHCHECK`,
		`org.opencontainers.image.version="${VERSION}"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	for _, svc := range sortedServices() {
		if !strings.Contains(text, "./"+svc+"/cmd/"+svc) {
			t.Errorf("the build stage does not compile ./%s/cmd/%s", svc, svc)
		}
	}
	// One compile for every image: the build stage must not depend on SERVICE.
	stage := text[strings.Index(text, "AS build"):]
	stage = stage[:strings.Index(stage, "\nFROM ")]
	if strings.Contains(stage, "SERVICE") {
		t.Error("the build stage depends on SERVICE, so each image compiles everything again")
	}
	m := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\d+\.\d+\.\d+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("GO_VERSION is not pinned to a patch release")
	}
	compose, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"BUILDER_IMAGE: ${KITSHOP_GO_IMAGE:-golang:" + m[1] + "-bookworm}",
		"RUNTIME_IMAGE: ${KITSHOP_RUNTIME_IMAGE:-gcr.io/distroless/static-debian12:nonroot}",
	} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("docker-compose.yml lacks %q, the Dockerfile's default", want)
		}
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
