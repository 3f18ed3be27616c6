// Command kubecheck is the schema check of kitshop's Kubernetes manifests, offline:
// kubectl validates against a cluster's OpenAPI document, and the tests have no
// cluster. It reads a YAML stream (the output of kubectl kustomize) on stdin and
// decodes every document strictly into the Kubernetes API's own Go types, so an
// unknown or misspelt field, a wrong type, an unknown kind or apiVersion, or an
// invalid name or label is an error. It prints one line per object.
//
// With -to-json it only converts a YAML stream into a JSON array, for tests that
// inspect YAML (docker-compose config) with the standard library.
//
// It is a module of its own so that the Kubernetes API packages stay out of kitshop's
// go.mod.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	toJSON := flag.Bool("to-json", false, "convert the YAML stream on stdin to a JSON array and exit")
	flag.Parse()
	var err error
	if *toJSON {
		err = convert(os.Stdin, os.Stdout)
	} else {
		err = check(os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
		os.Exit(1)
	}
}

// documents splits a YAML stream into its non-empty documents.
func documents(r io.Reader) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func convert(r io.Reader, w io.Writer) error {
	docs, err := documents(r)
	if err != nil {
		return err
	}
	out := make([]json.RawMessage, 0, len(docs))
	for i, doc := range docs {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, j)
	}
	return json.NewEncoder(w).Encode(out)
}

func check(r io.Reader, w io.Writer) error {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	docs, err := documents(r)
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		return errors.New("no manifests on stdin")
	}
	var problems []string
	for i, doc := range docs {
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		id := fmt.Sprintf("%s/%s %s", gvk.GroupVersion(), gvk.Kind, m.GetName())
		bad := metaProblems(m)
		for _, msg := range bad {
			problems = append(problems, id+": "+msg)
		}
		if len(bad) == 0 {
			fmt.Fprintln(w, "ok", id)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	fmt.Fprintf(w, "%d objects valid\n", len(docs))
	return nil
}

// metaProblems checks what the API server would refuse in names and labels.
func metaProblems(m metav1Object) []string {
	var out []string
	if m.GetName() == "" {
		out = append(out, "no metadata.name")
	}
	for _, msg := range validation.IsDNS1123Subdomain(m.GetName()) {
		out = append(out, "name: "+msg)
	}
	for k, v := range m.GetLabels() {
		for _, msg := range validation.IsQualifiedName(k) {
			out = append(out, "label "+k+": "+msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			out = append(out, "label "+k+" value: "+msg)
		}
	}
	return out
}

type metav1Object interface {
	GetName() string
	GetLabels() map[string]string
}

// stripComments drops comment-only lines, so a document of comments counts as empty.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
