// Command sseecho serves bench.EchoServer, the baseline of the deployer's
// stream benchmarks, on a loopback port. It prints the address it listens
// on and serves until it is stopped.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"deployer/bench"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen on %s: %v", *addr, err)
	}
	fmt.Fprintf(os.Stdout, "listening on http://%s/\n", ln.Addr())
	log.Fatal(http.Serve(ln, bench.NewEchoServer()))
}
