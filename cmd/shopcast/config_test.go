package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/server"
)

// envMap is an environment for loadConfig.
type envMap map[string]string

func (e envMap) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shopcast.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `{
		"http": "127.0.0.1:9001",
		"rtmp": "127.0.0.1:9002",
		"target_duration": "4s",
		"window_segments": 12,
		"publish_auth": true,
		"publish_keys": {"s3cret": "shop", "other": "shop2"}
	}`)

	tests := []struct {
		name  string
		args  []string
		env   envMap
		check func(t *testing.T, c Config)
	}{
		{"defaults", nil, nil, func(t *testing.T, c Config) {
			// defaults.json and server.Defaults (what embedders and tests
			// start from) agree.
			want := Config{Config: server.Defaults(), LogFormat: "text", LogLevel: "info"}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v\nwant %+v", c, want)
			}
		}},
		{"file over defaults", []string{"-config", file}, nil, func(t *testing.T, c Config) {
			if c.HTTP != "127.0.0.1:9001" || c.TargetDuration != 4*time.Second || c.WindowSegments != 12 ||
				!c.PublishAuth || c.PublishKeys["s3cret"] != "shop" || len(c.PublishKeys) != 2 {
				t.Errorf("%+v", c)
			}
			if c.RTSP != ":8554" || c.PartTarget != 333*time.Millisecond {
				t.Errorf("keys absent from the file lost their defaults: %+v", c)
			}
		}},
		{"file from SHOPCAST_CONFIG", nil, envMap{"SHOPCAST_CONFIG": file}, func(t *testing.T, c Config) {
			if c.HTTP != "127.0.0.1:9001" {
				t.Errorf("http %q", c.HTTP)
			}
		}},
		{"env over file", []string{"-config", file}, envMap{
			"SHOPCAST_HTTP": "127.0.0.1:9101", "SHOPCAST_TARGET_DURATION": "3s",
			"SHOPCAST_PUBLISH_KEYS": "k1=a, k2=b", "SHOPCAST_LOG_LEVEL": "debug",
		}, func(t *testing.T, c Config) {
			if c.HTTP != "127.0.0.1:9101" || c.TargetDuration != 3*time.Second || c.LogLevel != "debug" {
				t.Errorf("%+v", c)
			}
			if c.RTMP != "127.0.0.1:9002" || c.WindowSegments != 12 {
				t.Errorf("file keys lost: %+v", c)
			}
			// The environment's keys replace the file's, they do not merge.
			if want := map[string]string{"k1": "a", "k2": "b"}; !maps.Equal(c.PublishKeys, want) {
				t.Errorf("publish_keys %v, want %v", c.PublishKeys, want)
			}
		}},
		{"flags over env and file", []string{
			"-config", file, "-http", "127.0.0.1:9201", "-target_duration=6s", "-window_segments", "20",
			"-publish_auth=false", "-log_format", "json",
		}, envMap{"SHOPCAST_HTTP": "127.0.0.1:9101", "SHOPCAST_TARGET_DURATION": "3s", "SHOPCAST_PUBLISH_AUTH": "true"},
			func(t *testing.T, c Config) {
				if c.HTTP != "127.0.0.1:9201" || c.TargetDuration != 6*time.Second ||
					c.WindowSegments != 20 || c.PublishAuth || c.LogFormat != "json" {
					t.Errorf("%+v", c)
				}
				if c.RTMP != "127.0.0.1:9002" {
					t.Errorf("rtmp %q", c.RTMP)
				}
			}},
		{"bool flag without value", []string{"-publish_auth"}, envMap{"SHOPCAST_PUBLISH_KEYS": "k=shop"},
			func(t *testing.T, c Config) {
				if !c.PublishAuth {
					t.Error("publish_auth off")
				}
			}},
		{"env over defaults", nil, envMap{
			"SHOPCAST_RTMP": ":1936", "SHOPCAST_RTSP": ":8555", "SHOPCAST_CORS_ORIGIN": "https://shop.example",
			"SHOPCAST_PART_TARGET": "200ms", "SHOPCAST_GRACE_PERIOD": "1m", "SHOPCAST_ENDED_LINGER": "5s",
			"SHOPCAST_MAX_STREAMS": "7", "SHOPCAST_MAX_BLOCKED_REQUESTS": "99", "SHOPCAST_RTMP_READ_TIMEOUT": "3s",
			"SHOPCAST_SHUTDOWN_TIMEOUT": "20s", "SHOPCAST_LOG_FORMAT": "json",
		}, func(t *testing.T, c Config) {
			if c.RTMP != ":1936" || c.RTSP != ":8555" || c.CORSOrigin != "https://shop.example" ||
				c.PartTarget != 200*time.Millisecond || c.GracePeriod != time.Minute || c.EndedLinger != 5*time.Second ||
				c.MaxStreams != 7 || c.MaxBlockedRequests != 99 || c.RTMPReadTimeout != 3*time.Second ||
				c.ShutdownTimeout != 20*time.Second || c.LogFormat != "json" {
				t.Errorf("%+v", c)
			}
		}},
		{"secrets and cameras from the file", []string{"-config", writeFile(t, `{
			"cue_token": "t0ken", "play_secret": "0123456789abcdef0123",
			"rtsp_pull": {"cam1": "rtsp://admin:pw@10.0.0.9:554/h264", "cam2": "rtsps://cam2.example/live"},
			"rtsp_read_timeout": "4s"}`)}, nil,
			func(t *testing.T, c Config) {
				want := map[string]string{"cam1": "rtsp://admin:pw@10.0.0.9:554/h264", "cam2": "rtsps://cam2.example/live"}
				if c.CueToken != "t0ken" || c.PlaySecret != "0123456789abcdef0123" || !maps.Equal(c.RTSPPull, want) ||
					c.RTSPReadTimeout != 4*time.Second || c.RTMPReadTimeout != 10*time.Second {
					t.Errorf("%+v", c)
				}
			}},
		{"secrets and cameras from the environment", nil, envMap{
			"SHOPCAST_CUE_TOKEN": "t0ken", "SHOPCAST_PLAY_SECRET": "0123456789abcdef0123",
			"SHOPCAST_RTSP_PULL":         "cam1=rtsp://admin:pw@10.0.0.9/h264?x=1, cam2=rtsp://cam2/live",
			"SHOPCAST_RTSP_READ_TIMEOUT": "7s",
		}, func(t *testing.T, c Config) {
			want := map[string]string{"cam1": "rtsp://admin:pw@10.0.0.9/h264?x=1", "cam2": "rtsp://cam2/live"}
			if c.CueToken != "t0ken" || c.PlaySecret != "0123456789abcdef0123" || !maps.Equal(c.RTSPPull, want) ||
				c.RTSPReadTimeout != 7*time.Second {
				t.Errorf("%+v", c)
			}
		}},
		{"rtsp_read_timeout flag", []string{"-rtsp_read_timeout", "3s"}, nil, func(t *testing.T, c Config) {
			if c.RTSPReadTimeout != 3*time.Second || c.RTMPReadTimeout != 10*time.Second {
				t.Errorf("%+v", c)
			}
		}},
		{"cluster from the file and the environment", []string{"-config", writeFile(t, `{
			"cluster_node": "n1", "cluster_route_listen": ":7222",
			"cluster_routes": ["nats://10.0.0.2:6222", "nats://10.0.0.3:6222"], "cluster_password": "pw"}`)},
			envMap{"SHOPCAST_CLUSTER_USER": "shop", "SHOPCAST_CLUSTER_ADVERTISE": "http://10.0.0.1:8080"},
			func(t *testing.T, c Config) {
				if c.ClusterNode != "n1" || c.ClusterRouteListen != ":7222" || c.ClusterUser != "shop" ||
					c.ClusterPassword != "pw" || c.ClusterAdvertise != "http://10.0.0.1:8080" ||
					!slices.Equal(c.ClusterRoutes, []string{"nats://10.0.0.2:6222", "nats://10.0.0.3:6222"}) {
					t.Errorf("%+v", c)
				}
			}},
		{"cluster routes from a flag", []string{"-cluster_node", "n2", "-cluster_routes", "nats://a:6222, nats://b:6222"}, nil,
			func(t *testing.T, c Config) {
				if !slices.Equal(c.ClusterRoutes, []string{"nats://a:6222", "nats://b:6222"}) || c.ClusterNATSListen != "127.0.0.1:4222" {
					t.Errorf("%+v", c)
				}
			}},
		{"flag over defaults", []string{"-tls_cert", "c.pem", "-tls_key", "k.pem", "-rtsp", ":9554"}, nil,
			func(t *testing.T, c Config) {
				if c.TLSCert != "c.pem" || c.TLSKey != "k.pem" || c.RTSP != ":9554" {
					t.Errorf("%+v", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := loadConfig(tt.args, tt.env.lookup, &stderr)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			tt.check(t, c)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  envMap
		file string
		want string // in the error
	}{
		{"unknown flag", []string{"-nope"}, nil, "", "nope"},
		{"publish_keys is not a flag", []string{"-publish_keys", "k=n"}, nil, "", "publish_keys"},
		{"stray argument", []string{"extra"}, nil, "", "extra"},
		{"bad duration flag", []string{"-target_duration", "2"}, nil, "", "-target_duration"},
		{"bad int env", nil, envMap{"SHOPCAST_MAX_STREAMS": "many"}, "", "SHOPCAST_MAX_STREAMS"},
		{"bad bool env", nil, envMap{"SHOPCAST_PUBLISH_AUTH": "maybe"}, "", "SHOPCAST_PUBLISH_AUTH"},
		{"bad keys env", nil, envMap{"SHOPCAST_PUBLISH_KEYS": "k1=a,k2"}, "", "entry 2"},
		{"missing file", []string{"-config", "/nonexistent/shopcast.json"}, nil, "", "config file"},
		{"unknown file key", nil, nil, `{"htpp": ":80"}`, `unknown key "htpp"`},
		{"bad file json", nil, nil, `{"http": `, "config file"},
		{"null file value", nil, nil, `{"http": null}`, "http"},
		{"bad file keys", nil, nil, `{"publish_keys": {"k": 1}}`, "publish_keys"},
		{"object for a string", nil, nil, `{"http": {"a": 1}}`, "http"},
		{"log_format", []string{"-log_format", "xml"}, nil, "", "log_format"},
		{"log_level", []string{"-log_level", "loud"}, nil, "", "log_level"},
		{"tls half set", []string{"-tls_cert", "c.pem"}, nil, "", "tls_key"},
		{"auth without keys", []string{"-publish_auth"}, nil, "", "publish_keys is empty"},
		{"part over target", []string{"-part_target", "3s"}, nil, "", "part_target"},
		{"short window", []string{"-window_segments", "3"}, nil, "", "window_segments"},
		{"zero timeout", []string{"-rtmp_read_timeout", "0s"}, nil, "", "rtmp_read_timeout"},
		{"empty address", []string{"-http", ""}, nil, "", "http"},
		{"zero rtsp timeout", []string{"-rtsp_read_timeout", "0s"}, nil, "", "rtsp_read_timeout"},
		{"rtsp_pull is not a flag", []string{"-rtsp_pull", "cam=rtsp://cam/x"}, nil, "", "rtsp_pull"},
		{"bad pull name", nil, envMap{"SHOPCAST_RTSP_PULL": "../cam=rtsp://cam/x"}, "", "rtsp_pull"},
		{"ladder not an array", nil, nil, `{"ladder": {"name": "480p"}}`, "ladder"},
		{"ladder unknown field", nil, nil, `{"ladder": [{"name": "480p", "height": 480, "video_bitrate": "1M", "fps": 30}]}`, `unknown field "fps"`},
		{"ladder bad rung", []string{"-ladder", `[{"name": "480p", "height": 480}]`}, nil, "", "video_bitrate"},
		{"ladder bad name env", nil, envMap{"SHOPCAST_LADDER": `[{"name": "HD!", "height": 720, "video_bitrate": "2M"}]`}, "", `name "HD!"`},
		{"ladder restart order", []string{"-ladder_restart_min", "5s", "-ladder_restart_max", "1s"}, nil, "", "ladder_restart_max"},
		{"poster interval", []string{"-poster_interval", "100ms"}, nil, "", "poster_interval"},
		{"ladder over max_variants", []string{"-max_variants", "1", "-ladder", `[{"name": "a", "height": 480, "video_bitrate": "1M"}, {"name": "b", "height": 360, "video_bitrate": "500k"}]`}, nil, "", "more than max_variants"},
		{"pull not rtsp", nil, nil, `{"rtsp_pull": {"cam": "http://cam/x"}}`, "rtsp:// or rtsps://"},
		{"pull without host", nil, nil, `{"rtsp_pull": {"cam": "rtsp:///x"}}`, "no host"},
		{"pull entry not NAME=URL", nil, envMap{"SHOPCAST_RTSP_PULL": "cam"}, "", "entry 1"},
		{"pull repeated name", nil, envMap{"SHOPCAST_RTSP_PULL": "cam=rtsp://a/x,cam=rtsp://b/x"}, "", "repeats"},
		{"bad pull json", nil, nil, `{"rtsp_pull": {"cam": 1}}`, "rtsp_pull"},
		{"cluster_password is not a flag", []string{"-cluster_password", "x"}, nil, "", "cluster_password"},
		{"cluster route not nats", []string{"-cluster_node", "n1", "-cluster_routes", "http://a:6222"}, nil, "", "cluster_routes"},
		{"cluster user without password", []string{"-cluster_node", "n1", "-cluster_user", "u"}, nil, "", "cluster_password"},
		{"cluster advertise not http", []string{"-cluster_node", "n1", "-cluster_advertise", "10.0.0.1:8080"}, nil, "", "cluster_advertise"},
		{"cluster routes json", []string{"-cluster_node", "n1"}, nil, `{"cluster_routes": [1]}`, "cluster_routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, tt.file)}, args...)
			}
			var stderr bytes.Buffer
			_, err := loadConfig(args, tt.env.lookup, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) && !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("error %q (stderr %q) does not mention %q", err, stderr.String(), tt.want)
			}
		})
	}
}

// TestConfigSecretsNeverShown checks that no error, log line or help text
// carries a secret stream key.
func TestConfigSecretsNeverShown(t *testing.T) {
	const secret = "sk_live_9f8e7d"
	var out bytes.Buffer
	for _, env := range []envMap{
		{"SHOPCAST_PUBLISH_KEYS": secret + "=shop," + secret + "=shop2"}, // repeated key
		{"SHOPCAST_PUBLISH_KEYS": secret},                                // no name
		{"SHOPCAST_PUBLISH_KEYS": secret + "=", "SHOPCAST_PUBLISH_AUTH": "true"},
	} {
		_, err := loadConfig(nil, env.lookup, &out)
		if err == nil {
			t.Fatalf("%v: no error", env)
		}
		out.WriteString(err.Error())
	}
	c, err := loadConfig(nil, envMap{"SHOPCAST_PUBLISH_KEYS": secret + "=shop", "SHOPCAST_PUBLISH_AUTH": "1"}.lookup, &out)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", c)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "config", c)
	if _, err := loadConfig([]string{"-h"}, envMap{"SHOPCAST_PUBLISH_KEYS": secret + "=shop"}.lookup, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	// A camera's password: in the log line of the config, and in the
	// errors of a URL that is refused or does not parse.
	const camPass = "campw-7b6a5c"
	for _, pull := range []string{"cam=ftp://admin:" + camPass + "@10.0.0.9/x", "cam=rtsp://admin:" + camPass + "@[::1/x"} {
		if _, err := loadConfig(nil, envMap{"SHOPCAST_RTSP_PULL": pull}.lookup, &out); err == nil {
			t.Errorf("%s: no error", pull)
		} else {
			out.WriteString(err.Error())
		}
	}
	// NATS credentials: the password and token, and a password in a URL.
	const natsPass = "natspw-1a2b3c"
	c, err = loadConfig(nil, envMap{"SHOPCAST_CLUSTER_NODE": "n1", "SHOPCAST_CLUSTER_USER": "u",
		"SHOPCAST_CLUSTER_PASSWORD": natsPass, "SHOPCAST_CLUSTER_ROUTES": "nats://u:" + natsPass + "@10.0.0.2:6222"}.lookup, &out)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", c)
	c, err = loadConfig(nil, envMap{"SHOPCAST_CLUSTER_NODE": "n1", "SHOPCAST_CLUSTER_TOKEN": natsPass,
		"SHOPCAST_CLUSTER_NATS_URL": "nats://x:" + natsPass + "@10.0.0.2:4222"}.lookup, &out)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "config", c)
	if _, err := loadConfig(nil, envMap{"SHOPCAST_CLUSTER_NODE": "n1", "SHOPCAST_CLUSTER_NATS_URL": "http://x:" + natsPass + "@h"}.lookup, &out); err == nil {
		t.Error("an http:// NATS URL was accepted")
	} else {
		out.WriteString(err.Error())
	}
	c, err = loadConfig(nil, envMap{"SHOPCAST_RTSP_PULL": "cam=rtsp://admin:" + camPass + "@10.0.0.9/x"}.lookup, &out)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", c)
	if !strings.Contains(out.String(), "cam=rtsp://admin:xxxxx@10.0.0.9/x") {
		t.Errorf("the log does not show the camera URL without its password:\n%s", out.String())
	}
	for _, s := range []string{secret, camPass, natsPass} {
		if strings.Contains(out.String(), s) {
			t.Errorf("secret %q shown in:\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), "1 keys") {
		t.Errorf("the log does not count the keys:\n%s", out.String())
	}
}

// TestConfigHelp checks that -h documents every key with its flag,
// environment variable and default.
func TestConfigHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := loadConfig([]string{"-h"}, envMap{}.lookup, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	help := stderr.String()
	defaults := readDefaults(t)
	for _, k := range keys {
		if !strings.Contains(help, k.env()) {
			t.Errorf("help lacks %s", k.env())
		}
		if !k.noFlag && !strings.Contains(help, "-"+k.name+" ") && !strings.Contains(help, "-"+k.name+"   ") {
			t.Errorf("help lacks -%s", k.name)
		}
		if !strings.Contains(help, "default "+defaults[k.name]) {
			t.Errorf("help lacks the default %s of %s", defaults[k.name], k.name)
		}
	}
	if !strings.Contains(help, "-config FILE") {
		t.Error("help lacks -config")
	}
	if !strings.Contains(help, "A cluster of three nodes") || !strings.Contains(help, "-cluster_routes nats://") {
		t.Error("help lacks the three-node set-up")
	}
}

// readDefaults returns every key's default as help and README show it.
func readDefaults(t *testing.T) map[string]string {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(defaultsJSON, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		v, ok := raw[k.name]
		if !ok {
			t.Errorf("defaults.json lacks %s", k.name)
			continue
		}
		switch v := v.(type) {
		case string:
			out[k.name] = v
			if v == "" {
				out[k.name] = `""`
			}
		case map[string]any:
			out[k.name] = "none"
		default:
			b, _ := json.Marshal(v)
			out[k.name] = string(b)
		}
	}
	if len(raw) != len(keys) {
		t.Errorf("defaults.json has %d keys, the key table %d", len(raw), len(keys))
	}
	return out
}

// TestReadmeConfigTable checks that README.md's config table has a row for
// every key with its environment variable, flag and default.
func TestReadmeConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defaults := readDefaults(t)
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := regexp.MustCompile("^\\| `([a-z_]+)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}
	for _, k := range keys {
		row, ok := rows[k.name]
		if !ok {
			t.Errorf("README has no row for %s", k.name)
			continue
		}
		flagCell := "`-" + k.name + "`"
		if k.noFlag {
			flagCell = "none"
		}
		for _, want := range []string{"`" + k.env() + "`", flagCell, "`" + defaults[k.name] + "`"} {
			if defaults[k.name] == "none" && want == "`none`" {
				want = "none"
			}
			if !strings.Contains(row, want) {
				t.Errorf("README row of %s lacks %s: %s", k.name, want, row)
			}
		}
	}
	if len(rows) != len(keys) {
		t.Errorf("README has %d config rows, there are %d keys", len(rows), len(keys))
	}
}
