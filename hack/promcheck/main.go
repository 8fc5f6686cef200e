// promcheck checks the chart's Prometheus rules and Grafana dashboard with Prometheus' own
// parsers, and names every metric they query, so that tests/monitoring.rs can compare those
// names with what the operator exports.
//
//	promcheck rules FILE...      as `promtool check rules` does: rulefmt's strict parse (unknown
//	                             fields, PromQL of every expr, label names, annotation and label
//	                             templates) and its duplicate-rule lint
//	promcheck dashboard FILE...  valid dashboard JSON; every target's and template variable's
//	                             PromQL parses, once Grafana's variables have sample values
//
// On success it prints {"queries": N, "metrics": [...]} (sorted, unique) and exits 0; on any
// problem it prints each one on stderr, naming the file and the query, and exits 1.
//
// Ours rather than promtool: promtool links Prometheus' service discovery for every cloud,
// and costs several times the build for the same rule-file check (see the README).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var promql = parser.NewParser(parser.Options{})

// report gathers problems and metric names across the files checked.
type report struct {
	problems []string
	metrics  map[string]bool
	queries  int
}

func (r *report) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// query parses one PromQL expression and records the metrics it selects. A selector must
// name its metric exactly: a regular expression on __name__, or no name at all, can't be
// checked against the operator's metrics, so it is a problem too.
func (r *report) query(where, expr string) {
	r.queries++
	ast, err := promql.ParseExpr(expr)
	if err != nil {
		r.problem("%s: %q: %v", where, expr, err)
		return
	}
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName {
				continue
			}
			if m.Type != labels.MatchEqual {
				r.problem("%s: %q: selects metrics by a pattern (%s); name each metric", where, expr, m)
				return nil
			}
			name = m.Value
		}
		if name == "" {
			r.problem("%s: %q: a selector names no metric", where, expr)
			return nil
		}
		r.metrics[name] = true
		return nil
	})
}

func checkRules(r *report, file string) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, promql, logger)
	for _, err := range errs {
		r.problem("%v", err)
	}
	if groups == nil {
		return
	}
	if len(groups.Groups) == 0 {
		r.problem("%s: no rule groups", file)
	}
	// promtool's duplicate-rules lint: two rules with one name and the same labels.
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for i, rule := range g.Rules {
			name := rule.Alert + rule.Record
			key := name + labels.FromMap(mergeMaps(g.Labels, rule.Labels)).String()
			if seen[key] {
				r.problem("%s: group %q: duplicate rule %s", file, g.Name, key)
			}
			seen[key] = true
			r.query(fmt.Sprintf("%s: group %q, rule %d (%s)", file, g.Name, i+1, name), rule.Expr)
		}
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Grafana's interval variables stand where PromQL wants a duration; any other variable
// stands inside a label matcher's string (or is a whole selector value), where a word does.
var (
	intervalVariable = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?`)
	otherVariable    = regexp.MustCompile(`\$\{[A-Za-z0-9_]+(:[a-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z0-9_]+\]\]`)
	labelValues      = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	queryResult      = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)
)

func withSampleValues(expr string) string {
	expr = intervalVariable.ReplaceAllString(expr, "5m")
	return otherVariable.ReplaceAllString(expr, "sample")
}

type panel struct {
	ID      *int     `json:"id"`
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type target struct {
	Expr  *string `json:"expr"`
	RefID string  `json:"refId"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func checkDashboard(r *report, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		r.problem("%v", err)
		return
	}
	var d dashboard
	decoder := json.NewDecoder(strings.NewReader(string(data)))
	if err := decoder.Decode(&d); err != nil {
		r.problem("%s: not dashboard JSON: %v", file, err)
		return
	}
	if decoder.More() {
		r.problem("%s: more than one JSON value", file)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		r.problem("%s: uid, title and schemaVersion are required", file)
	}
	ids := map[int]bool{}
	var walk func(panels []panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			where := fmt.Sprintf("%s: panel %q", file, p.Title)
			if p.ID == nil {
				r.problem("%s: no id", where)
			} else if ids[*p.ID] {
				r.problem("%s: id %d used twice", where, *p.ID)
			} else {
				ids[*p.ID] = true
			}
			walk(p.Panels)
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if len(p.Targets) == 0 {
				r.problem("%s: no query", where)
			}
			for _, t := range p.Targets {
				if t.Expr == nil {
					r.problem("%s, target %s: no expr", where, t.RefID)
					continue
				}
				r.query(fmt.Sprintf("%s, target %s", where, t.RefID), withSampleValues(*t.Expr))
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// The query is a string, or an object holding it in "query".
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				r.problem("%s: variable %q: query is neither a string nor {query}", file, v.Name)
				continue
			}
			q = obj.Query
		}
		where := fmt.Sprintf("%s: variable %q", file, v.Name)
		if m := labelValues.FindStringSubmatch(q); m != nil {
			r.query(where, withSampleValues(m[1]))
		} else if m := queryResult.FindStringSubmatch(q); m != nil {
			r.query(where, withSampleValues(m[1]))
		} else {
			r.problem("%s: %q: not label_values(selector, label) or query_result(expr)", where, q)
		}
	}
}

func main() {
	if len(os.Args) < 3 || (os.Args[1] != "rules" && os.Args[1] != "dashboard") {
		fmt.Fprintln(os.Stderr, "usage: promcheck rules|dashboard FILE...")
		os.Exit(2)
	}
	r := &report{metrics: map[string]bool{}}
	for _, file := range os.Args[2:] {
		if os.Args[1] == "rules" {
			checkRules(r, file)
		} else {
			checkDashboard(r, file)
		}
	}
	if len(r.problems) > 0 {
		for _, p := range r.problems {
			fmt.Fprintln(os.Stderr, p)
		}
		os.Exit(1)
	}
	metrics := make([]string, 0, len(r.metrics))
	for m := range r.metrics {
		metrics = append(metrics, m)
	}
	sort.Strings(metrics)
	out, _ := json.Marshal(map[string]any{"queries": r.queries, "metrics": metrics})
	fmt.Println(string(out))
}
