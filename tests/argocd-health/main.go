// argocd-health runs an Argo CD resource health check (health.lua) over the cases of its
// health_test.yaml the way Argo CD does: the script runs in gopher-lua with only the package, base
// and table libraries open (Argo CD's application controller runs health scripts with
// useOpenLibs=false; its safe os library is left out, so a script that needs it fails here) and the
// JSON module preloaded, under a one-second deadline, with the global `obj` set to the object as a
// Lua table; the table it returns is encoded to JSON and read as {status, message}; a status that is
// not one of Argo CD's is reported as Unknown "Lua returned an invalid health status". Each case's
// result is compared with its healthStatus, field by field.
//
// Usage: argocd-health [-json] DIR
// DIR holds health.lua, health_test.yaml (tests: [{inputPath, healthStatus: {status, message}}]) and
// the inputs. Prints one line per case (with -json, one JSON object per case) and exits 1 if any case
// differs, 2 if the cases cannot be read.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// HealthStatus is Argo CD's (gitops-engine's) health.HealthStatus, as far as scripts produce it.
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

type testFile struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

// result is one case's outcome, as printed with -json.
type result struct {
	Case  string        `json:"case"`
	Pass  bool          `json:"pass"`
	Want  HealthStatus  `json:"want"`
	Got   *HealthStatus `json:"got,omitempty"`
	Error string        `json:"error,omitempty"`
}

const invalidHealthStatus = "Lua returned an invalid health status"

var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// decodeValue is how Argo CD turns an unstructured object into Lua values (util/lua/lua.go).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// health runs script against obj as Argo CD's ExecuteHealthLua does.
func health(obj map[string]any, script string) (*HealthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	luajson.Preload(l)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTTable:
		encoded, err := luajson.Encode(ret)
		if err != nil {
			return nil, err
		}
		hs := &HealthStatus{}
		if err := json.Unmarshal(encoded, hs); err != nil {
			return nil, err
		}
		if !validStatus[hs.Status] {
			return &HealthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
		}
		return hs, nil
	case lua.LTNil:
		return &HealthStatus{}, nil
	}
	return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
}

func run(dir string, asJSON bool) (int, error) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return 0, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return 0, err
	}
	var tests testFile
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		return 0, fmt.Errorf("health_test.yaml: %w", err)
	}
	if len(tests.Tests) == 0 {
		return 0, fmt.Errorf("health_test.yaml has no tests")
	}
	failed := 0
	for _, t := range tests.Tests {
		r := result{Case: t.InputPath, Want: t.HealthStatus}
		input, err := os.ReadFile(filepath.Join(dir, t.InputPath))
		obj := map[string]any{}
		if err == nil {
			err = yaml.Unmarshal(input, &obj)
		}
		if err == nil {
			r.Got, err = health(obj, string(script))
		}
		if err != nil {
			r.Error = err.Error()
		}
		r.Pass = err == nil && *r.Got == r.Want
		if !r.Pass {
			failed++
		}
		if asJSON {
			line, _ := json.Marshal(r)
			fmt.Println(string(line))
		} else if r.Pass {
			fmt.Printf("ok   %s: %s %q\n", r.Case, r.Got.Status, r.Got.Message)
		} else if r.Error != "" {
			fmt.Printf("FAIL %s: %s\n", r.Case, r.Error)
		} else {
			fmt.Printf("FAIL %s: want %s %q, got %s %q\n", r.Case, r.Want.Status, r.Want.Message, r.Got.Status, r.Got.Message)
		}
	}
	return failed, nil
}

func main() {
	asJSON := flag.Bool("json", false, "one JSON object per case")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: argocd-health [-json] DIR (holding health.lua and health_test.yaml)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	failed, err := run(flag.Arg(0), *asJSON)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(2)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
