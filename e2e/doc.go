// Package e2e holds the browser tests. They build the deployer binary, start
// it on 127.0.0.1 with the simulated grid and a fresh database, and drive its
// pages in headless Chromium through the DevTools protocol, checking what
// the pages show an admin. The package has no code outside its tests.
package e2e
