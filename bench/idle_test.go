package bench

import (
	"os"
	"testing"
	"time"
)

// idleSettle is how long the started server idles before it is measured.
const idleSettle = 3 * time.Second

// BenchmarkIdle starts the deployer binary on the simulated grid, lets it
// idle, and reports its resident memory, its goroutines and the binary's
// size. The goroutines are counted from the stack dump that SIGQUIT makes
// the Go runtime print, which also ends the process.
func BenchmarkIdle(b *testing.B) {
	path := deployerPath(b)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	p := startDeployer(b)
	time.Sleep(idleSettle)
	rss := p.rssKiB(b)
	goroutines := p.goroutines(b)
	writeResult(b, "goroutines.txt", p.log())

	b.ReportMetric(float64(rss)/1024, "rss-MiB")
	b.ReportMetric(float64(goroutines), "goroutines")
	b.ReportMetric(float64(info.Size())/(1<<20), "binary-MiB")
}
