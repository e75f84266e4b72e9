# shopcast: `make run` starts the server on its defaults, `make test` checks everything.

GO       ?= go
FUZZTIME ?= 30s

.PHONY: all run build test test-browser deps vet lint fmt-check bench fuzz clean

all: build

## run: start shopcast on the embedded defaults (HTTP :8080, RTMP :1935)
run:
	$(GO) run ./cmd/shopcast

## build: write the binary to bin/shopcast
build:
	$(GO) build -o bin/shopcast ./cmd/shopcast

## test: install missing test tools, then vet, check formatting, lint (staticcheck) and run every test with -race
test: deps vet fmt-check lint
	$(GO) test -race -count=1 ./...

## deps: install what the end-to-end tests need beyond Go when missing and root: ffmpeg (the OBS
## stand-in), chromium (player tests), nginx-light and varnish (CDN edge tests), nodejs (SDK tests),
## GStreamer (a second RTSP publisher and HLS player), make
DEB_PACKAGES = ffmpeg chromium nginx-light varnish nodejs make \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && \
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y $$missing; \
		else \
			echo "make: missing$$missing; run 'make deps' as root" >&2; \
		fi; \
	fi
	@# Debian's nodejs comes without npm (NodeSource's has it): install Debian's npm only then.
	@if ! command -v npm >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y npm; \
	fi
	@# The player and playlist-validator tests load Shaka and hls-parser from node_modules.
	@if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
		npm ci --no-audit --no-fund --loglevel=error; \
	fi

## lint: staticcheck, pinned in go.mod as a tool
lint:
	$(GO) tool staticcheck ./...

vet:
	$(GO) vet ./...

## fmt-check: fail on files gofmt would change
fmt-check:
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:" >&2; echo "$$unformatted" >&2; exit 1; \
	fi

## test-browser: only the headless Chromium test of the watch and studio pages (make test runs it too)
test-browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y chromium; }
	$(GO) test -count=1 -v -run TestBrowser ./e2e/

## bench: run every benchmark, no tests (but the one that measures pulse.json through Varnish)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/shopcast-bench -run latency,viewers,cues,ingest,reconnect -duration 60s
	$(GO) run ./cmd/shopcast-bench -run ramp,streams,idle
	$(GO) run ./cmd/shopcast-bench -run ramp -steps 1000 -window 60s
	$(GO) run ./cmd/shopcast-bench -run ramp -lowrate
	$(GO) run ./cmd/shopcast-bench -run record,vod
	$(GO) run ./cmd/shopcast-bench -run audience
	$(GO) test -count=1 -v -run TestPulseThroughVarnish ./e2e/audience
	$(GO) run ./cmd/shopcast-bench -run ladder -duration 30s
	$(GO) run ./cmd/shopcast-bench -run multitrack
	$(GO) run ./cmd/shopcast-bench -run cluster
	$(GO) run ./cmd/shopcast-bench -run cluster-failover -failovers 5
	$(GO) run ./cmd/shopcast-bench -run cluster-cues

## fuzz: run each Fuzz target for FUZZTIME (default 30s)
fuzz:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		dir=$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz $$dir $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

clean:
	rm -rf bin
