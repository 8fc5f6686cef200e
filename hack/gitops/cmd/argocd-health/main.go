// Command argocd-health runs an Argo CD resource health script (Lua) on Kubernetes objects in
// the environment Argo CD gives scripts from `argocd-cm`, and prints what Argo CD would take
// from it: one JSON object per line,
//
//	{"kind":"…","namespace":"…","name":"…","status":"Healthy","message":"…"}
//
// Usage:
//
//	argocd-health -script FILE.lua [-use-open-libs] [OBJECTS…]
//	argocd-health -argocd-cm ARGOCD-CM.yaml [OBJECTS…]
//
// With -argocd-cm the script and its useOpenLibs flag are looked up per object, by the keys
// Argo CD reads: resource.customizations.health.<group>_<kind> and
// resource.customizations.useOpenLibs.<group>_<kind>.
//
// The environment follows Argo CD's util/lua (v3.6): a gopher-lua state; unless useOpenLibs
// is true only the package, base and table libraries are open (no string, math, io or
// global os), and require("os") yields only os.time and os.date; the live object is the
// global `obj` (its JSON as nested tables, integers as numbers), `actionParams` an empty
// table; the script has one second; its return value, a table, is JSON-encoded and read as
// {status, message}, where a status outside Healthy, Progressing, Degraded, Suspended,
// Missing and Unknown becomes Unknown, "Lua returned an invalid health status".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"

	"actor-token-operator/hack/gitops/internal/objects"
)

// A script and whether Argo CD would run it with the standard libraries open.
type script struct {
	source      string
	useOpenLibs bool
}

func main() {
	scriptPath := flag.String("script", "", "the health script (Lua)")
	useOpenLibs := flag.Bool("use-open-libs", false, "run -script with the standard Lua libraries open (argocd-cm opt-in)")
	configMap := flag.String("argocd-cm", "", "an argocd-cm ConfigMap (YAML) to take the scripts from")
	flag.Parse()
	if (*scriptPath == "") == (*configMap == "") {
		objects.Fail(tool, 2, "give exactly one of -script and -argocd-cm")
	}

	lookup := func(*unstructured.Unstructured) (script, error) { return script{}, nil }
	if *scriptPath != "" {
		src, err := os.ReadFile(*scriptPath)
		if err != nil {
			objects.Fail(tool, 2, "%v", err)
		}
		s := script{source: string(src), useOpenLibs: *useOpenLibs}
		lookup = func(*unstructured.Unstructured) (script, error) { return s, nil }
	} else {
		data, err := readConfigMap(*configMap)
		if err != nil {
			objects.Fail(tool, 2, "%s: %v", *configMap, err)
		}
		lookup = func(obj *unstructured.Unstructured) (script, error) { return scriptFor(data, obj) }
	}

	objects.Judge(tool, flag.Args(), func(obj *unstructured.Unstructured) (objects.Verdict, error) {
		s, err := lookup(obj)
		if err != nil {
			return objects.Verdict{}, err
		}
		h, err := run(obj, s)
		if err != nil || h == nil {
			// No table (nil) means "no opinion": Argo CD falls back to its default.
			return objects.Verdict{}, err
		}
		return *h, nil
	})
}

const tool = "argocd-health"

func readConfigMap(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		return nil, err
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
		return nil, fmt.Errorf("not the argocd-cm ConfigMap (kind %q, name %q)", cm.Kind, cm.Metadata.Name)
	}
	return cm.Data, nil
}

// scriptFor finds an object's health script by its group and kind, as Argo CD's settings do.
func scriptFor(data map[string]string, obj *unstructured.Unstructured) (script, error) {
	gvk := obj.GroupVersionKind()
	key := gvk.Kind
	if gvk.Group != "" {
		key = gvk.Group + "_" + gvk.Kind
	}
	src, ok := data["resource.customizations.health."+key]
	if !ok || src == "" {
		return script{}, fmt.Errorf("argocd-cm has no resource.customizations.health.%s", key)
	}
	s := script{source: src}
	if v, ok := data["resource.customizations.useOpenLibs."+key]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return script{}, fmt.Errorf("resource.customizations.useOpenLibs.%s: %w", key, err)
		}
		s.useOpenLibs = b
	}
	return s, nil
}

var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// run executes the script on obj and returns its verdict (nil if it returned nil).
func run(obj *unstructured.Unstructured, s script) (*objects.Verdict, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: !s.useOpenLibs})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	L.PreloadModule(lua.OsLibName, safeOs)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("actionParams", L.NewTable())
	L.SetGlobal("obj", toLua(L, obj.Object))

	fn, err := L.LoadString(s.source)
	if err != nil {
		return nil, err
	}
	L.Push(fn)
	if err := L.PCall(0, lua.MultRet, nil); err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return nil, err
	}

	ret := L.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return nil, nil
	case lua.LTTable:
	default:
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	var h objects.Verdict
	if err := json.Unmarshal(encoded, &h); err != nil {
		// An empty table encodes as [], which Argo CD reads as an empty status.
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Value == "array" {
			return &objects.Verdict{}, nil
		}
		return nil, err
	}
	if !validStatuses[h.Status] {
		return &objects.Verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return &h, nil
}

// safeOs is what require("os") yields to a script: gopher-lua's os.time and os.date only.
func safeOs(L *lua.LState) int {
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	lua.OpenOs(scratch)
	full := scratch.GetGlobal(lua.OsLibName).(*lua.LTable)
	mod := L.NewTable()
	for _, name := range []string{"time", "date"} {
		mod.RawSetString(name, L.NewFunction(full.RawGetString(name).(*lua.LFunction).GFunction))
	}
	L.Push(mod)
	return 1
}

// toLua converts unstructured content to Lua values: maps and slices to tables, numbers to
// numbers, JSON null to nil (so the key is absent).
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(L, item))
		}
		return t
	default:
		return lua.LNil
	}
}
