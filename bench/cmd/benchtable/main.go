// Command benchtable summarizes the output of repeated `go test -bench`
// runs as a Markdown table: for each benchmark and metric, the median over
// the runs and the lowest and highest value. It exits with status 1 when
// the output reports a failure, so that a broken benchmark is not taken for
// a slow one.
//
// Usage:
//
//	benchtable FILE
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// procsSuffix is the -GOMAXPROCS suffix that go test adds to names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// series is the values of one metric of one benchmark, in run order.
type series struct {
	bench, unit string
	values      []float64
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtable FILE")
		os.Exit(2)
	}
	all, failed, err := parse(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("| benchmark | metric | median | min | max | runs |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, s := range all {
		sorted := slices.Sorted(slices.Values(s.values))
		fmt.Printf("| %s | %s | %s | %s | %s | %d |\n", s.bench, s.unit,
			format(median(sorted)), format(sorted[0]), format(sorted[len(sorted)-1]), len(sorted))
	}
	if failed {
		fmt.Fprintln(os.Stderr, "benchtable: the output reports a failure; see the lines with FAIL")
		os.Exit(1)
	}
}

// parse reads benchmark result lines and reports whether any line contains
// FAIL. Series keep the order in which they first appear.
func parse(path string) ([]*series, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	var all []*series
	index := map[string]*series{}
	failed := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			failed = true
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(fields[0], "Benchmark"), "")
		// fields[1] is the iteration count; value and unit pairs follow.
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, false, fmt.Errorf("%s: value %q: %w", fields[0], fields[i], err)
			}
			unit := fields[i+1]
			if unit == "ns/op" {
				continue
			}
			key := name + " " + unit
			s := index[key]
			if s == nil {
				s = &series{bench: name, unit: unit}
				index[key] = s
				all = append(all, s)
			}
			s.values = append(s.values, v)
		}
	}
	return all, failed, sc.Err()
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// format writes v with three significant digits, or as a whole number from
// 1000 up.
func format(v float64) string {
	if v >= 1000 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
