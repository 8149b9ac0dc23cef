package configs

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultLoads(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 1 || c.Listeners[0].Address != "127.0.0.1:2525" || c.Listeners[0].LoopbackSender != "default" {
		t.Errorf("default listeners = %+v", c.Listeners)
	}
	if c.Senders["default"] == nil || !c.Queue.Durable || c.HTTP.Address != "127.0.0.1:8025" {
		t.Errorf("default config = %+v", c)
	}
	if c.Limits.MaxMessageSize != 25<<20 {
		t.Errorf("max_message_size = %d", c.Limits.MaxMessageSize)
	}
	if c.Hostname == "" {
		t.Error("hostname not derived")
	}
}

// The example documents the defaults: loading it gives the same config.
func TestExampleMatchesDefault(t *testing.T) {
	ex, err := Load("drover.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Load("")
	ex.lines, def.lines = nil, nil
	if !reflect.DeepEqual(ex, def) {
		t.Errorf("example differs from default:\nexample %+v\ndefault %+v", ex, def)
	}
}

// Every option of the schema appears in the example file.
func TestExampleDocumentsEveryOption(t *testing.T) {
	data, err := os.ReadFile("drover.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			if !strings.Contains(text, tag+":") {
				t.Errorf("option %s%s is not documented in drover.example.yaml", path, tag)
			}
			walk(f.Type, path+tag+".")
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "log_level: info\nqueue:\n  retry_intervall: 5m\n", "line 3: field retry_intervall not found"},
		{"unknown shaping key", "shaping:\n  default:\n    max_conections: 5\n", "line 3: field max_conections not found"},
		{"bad level", "hostname: a.example\nlog_level: loud\n", "line 2: log_level"},
		{"bad duration", "queue:\n  delay_notice: soon\n", "line 2"},
		{"bad shaping", "shaping:\n  default:\n    max_connections: 0\n", "line 3: shaping.default.max_connections"},
		{"bad rule", "shaping:\n  rules:\n    - {name: x, action: slow, factor: 2, duration: 1m, code: 421}\n", "shaping.rules[0]"},
		{"bad pool", "pools:\n  p: [not-an-ip]\n", "line 2: pools.p[0]"},
		{"bad size", "limits:\n  max_message_size: huge\n", "line 2"},
		{"bad listener", "listeners:\n  - address: nowhere\n    mode: plain\n", "line 2: listeners[0].address"},
		{"unknown sender", "listeners:\n  - address: 127.0.0.1:25\n    mode: plain\n    loopback_sender: bob\n", "line 4: listeners[0].loopback_sender: no sender named \"bob\""},
		{"login without hash", "senders:\n  a:\n    login: a\n    from_domains: [a.example]\n", "senders.a.password_hash"},
		{"bad route", "routes:\n  \"*.test\": \"127.0.0.1:99999\"\n", "line 2: routes.*.test"},
		{"bad tls", "shaping:\n  domains:\n    a.example:\n      tls: maybe\n", "shaping.domains.a.example.tls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	c, err := Parse([]byte("queue:\n  delay_notice: 1h\nlimits:\n  max_message_size: 512KiB\nroutes:\n  \"*\": \"[10.0.0.1]:2526\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue.DelayNotice.Hours() != 1 || !c.Queue.Durable || c.Limits.MaxMessageSize != 512<<10 || c.Routes["*"] != "[10.0.0.1]:2526" {
		t.Errorf("config = %+v", c)
	}
}
