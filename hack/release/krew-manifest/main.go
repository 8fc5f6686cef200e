// krew-manifest fills the release's version, download URIs and sha256 sums into the
// kubectl-actortoken krew manifest, keeping everything else its author wrote (comments too).
//
//	krew-manifest -manifest plugins/actortoken.yaml -version v0.2.0 \
//	  -base-url https://github.com/OWNER/REPO/releases/download/v0.2.0 DIST_DIR
//
// Each spec.platforms entry's selector.matchLabels (os, arch: Go's names, as krew uses them)
// names its archive in DIST_DIR: kubectl-actortoken_<os>_<arch>.tar.gz. A platform without an
// archive, or an archive no platform names, is an error: the manifest and the release's
// build matrix must agree. The manifest is rewritten in place.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

const archivePrefix = "kubectl-actortoken_"

// field returns the value node of key in a mapping node, or nil.
func field(node *yaml.Node, key string) *yaml.Node {
	if node == nil || node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i+1]
		}
	}
	return nil
}

// set sets key to a string value in a mapping node, adding the key if it is missing.
func set(node *yaml.Node, key, value string) {
	if v := field(node, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!str", value, 0
		return
	}
	node.Content = append(node.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

func sha256File(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func fill(manifestPath, version, baseURL, dist string) error {
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", manifestPath, err)
	}
	if len(doc.Content) != 1 {
		return fmt.Errorf("%s: expected one YAML document", manifestPath)
	}
	root := doc.Content[0]
	if kind := field(root, "kind"); kind == nil || kind.Value != "Plugin" {
		return fmt.Errorf("%s: not a krew Plugin manifest (kind: Plugin)", manifestPath)
	}
	spec := field(root, "spec")
	platforms := field(spec, "platforms")
	if platforms == nil || platforms.Kind != yaml.SequenceNode || len(platforms.Content) == 0 {
		return fmt.Errorf("%s: spec.platforms is missing or empty", manifestPath)
	}
	set(spec, "version", version)

	archives, err := filepath.Glob(filepath.Join(dist, archivePrefix+"*.tar.gz"))
	if err != nil {
		return err
	}
	unused := map[string]bool{}
	for _, a := range archives {
		unused[filepath.Base(a)] = true
	}
	var problems []string
	for i, p := range platforms.Content {
		labels := field(field(p, "selector"), "matchLabels")
		osNode, archNode := field(labels, "os"), field(labels, "arch")
		if osNode == nil || archNode == nil {
			problems = append(problems, fmt.Sprintf("spec.platforms[%d]: selector.matchLabels needs os and arch", i))
			continue
		}
		name := fmt.Sprintf("%s%s_%s.tar.gz", archivePrefix, osNode.Value, archNode.Value)
		sum, err := sha256File(filepath.Join(dist, name))
		if errors.Is(err, os.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("spec.platforms[%d] (%s/%s): no %s in %s", i, osNode.Value, archNode.Value, name, dist))
			continue
		} else if err != nil {
			return err
		}
		delete(unused, name)
		set(p, "uri", strings.TrimSuffix(baseURL, "/")+"/"+name)
		set(p, "sha256", sum)
	}
	leftover := make([]string, 0, len(unused))
	for name := range unused {
		leftover = append(leftover, name)
	}
	sort.Strings(leftover)
	for _, name := range leftover {
		problems = append(problems, fmt.Sprintf("%s: no platform in the manifest names it", name))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}

	var out bytes.Buffer
	encoder := yaml.NewEncoder(&out)
	encoder.SetIndent(2)
	if err := encoder.Encode(&doc); err != nil {
		return err
	}
	return os.WriteFile(manifestPath, out.Bytes(), 0o644)
}

func main() {
	manifest := flag.String("manifest", "plugins/actortoken.yaml", "the krew manifest to fill in (rewritten in place)")
	version := flag.String("version", "", "the release tag, e.g. v0.2.0")
	baseURL := flag.String("base-url", "", "where the release's archives are downloaded from")
	flag.Parse()
	if *version == "" || *baseURL == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: krew-manifest -manifest FILE -version vX.Y.Z -base-url URL DIST_DIR")
		os.Exit(2)
	}
	if err := fill(*manifest, *version, *baseURL, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "krew-manifest:", err)
		os.Exit(1)
	}
}
