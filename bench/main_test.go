package bench

import (
	"cmp"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	resultsDir  = flag.String("results", "", "folder for profiles and logs of the runs; empty keeps none")
	deployerBin = flag.String("deployer", "", "deployer binary to measure; empty builds one")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// raiseFileLimit raises the soft limit of open files to the hard limit, for
// the thousands of streams of the fan-out benchmark. Setting it explicitly
// also makes the servers that the benchmarks start inherit the raised limit.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open file limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open file limit to %d: %w", lim.Max, err)
	}
	if lim.Cur < 4096 {
		return fmt.Errorf("the open file limit is %d; the fan-out benchmark needs 4096", lim.Cur)
	}
	return nil
}

// buildDir holds the binaries that the benchmarks built, removed at exit.
var buildDir string

// binaries builds the deployer and the echo server once per process.
var binaries = sync.OnceValues(func() (paths [2]string, err error) {
	dir, err := os.MkdirTemp("", "deployer-bench-")
	if err != nil {
		return paths, err
	}
	buildDir = dir
	paths = [2]string{*deployerBin, filepath.Join(dir, "sseecho")}
	targets := [][2]string{{paths[1], "deployer/bench/cmd/sseecho"}}
	if paths[0] == "" {
		paths[0] = filepath.Join(dir, "deployer")
		targets = append(targets, [2]string{paths[0], "deployer"})
	}
	for _, t := range targets {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", t[0], t[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return paths, fmt.Errorf("build %s: %w\n%s", t[1], err, out)
		}
	}
	return paths, nil
})

func deployerPath(b *testing.B) string {
	paths, err := binaries()
	if err != nil {
		b.Fatal(err)
	}
	return paths[0]
}

func echoPath(b *testing.B) string {
	paths, err := binaries()
	if err != nil {
		b.Fatal(err)
	}
	return paths[1]
}

// resultPath returns the path of a result file, or "" when results are not
// kept. Names carry the benchmark's name so that runs do not mix.
func resultPath(b *testing.B, suffix string) string {
	if *resultsDir == "" {
		return ""
	}
	if err := os.MkdirAll(*resultsDir, 0o755); err != nil {
		b.Fatal(err)
	}
	name := filepath.Base(b.Name())
	if dir := filepath.Dir(b.Name()); dir != "." {
		name = filepath.Base(dir) + "-" + name
	}
	return filepath.Join(*resultsDir, sanitize(name)+"."+suffix)
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			out[i] = '_'
		}
	}
	return string(out)
}

// startCPUProfile profiles this process into the results until the
// returned function is called. Each run overwrites the last, so the file
// holds the last run of the benchmark.
func startCPUProfile(b *testing.B) func() {
	path := resultPath(b, "cpu.pprof")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Logf("CPU profile not taken: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// writeProfile saves a named runtime profile (heap, goroutine) of this
// process into the results.
func writeProfile(b *testing.B, name string) {
	path := resultPath(b, name+".pprof")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// writeResult saves text, such as a server's log, into the results.
func writeResult(b *testing.B, suffix string, data []byte) {
	if path := resultPath(b, suffix); path != "" {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// percentile returns the nearest-rank q-quantile of samples, 0 for none.
// It sorts samples.
func percentile[T cmp.Ordered](samples []T, q float64) T {
	if len(samples) == 0 {
		var zero T
		return zero
	}
	slices.Sort(samples)
	i := int(math.Ceil(q*float64(len(samples)))) - 1
	return samples[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportLatency reports the p50, p99 and maximum of samples in
// milliseconds, each metric named after prefix.
func reportLatency(b *testing.B, prefix string, samples []time.Duration) {
	b.ReportMetric(ms(percentile(samples, 0.50)), prefix+"-p50-ms")
	b.ReportMetric(ms(percentile(samples, 0.99)), prefix+"-p99-ms")
	b.ReportMetric(ms(percentile(samples, 1)), prefix+"-max-ms")
}
