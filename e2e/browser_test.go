package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Deadlines for waits in the page. They are generous because a busy CI
// machine with two cores runs the browser, the deployer and the race
// detector at once. A passing run waits only as long as the page needs.
const (
	// actionTimeout bounds one DevTools call, such as a click or a read.
	actionTimeout = 20 * time.Second
	// pageTimeout bounds a wait for something the page shows after a
	// request or a navigation.
	pageTimeout = 30 * time.Second
	// flowTimeout bounds a wait for an onboarding to finish.
	flowTimeout = 90 * time.Second
	// loginTimeout bounds the login, whose bcrypt check alone took 6s on a
	// loaded machine with the deployer built for the race detector.
	loginTimeout = 60 * time.Second
	// pollInterval is how often a wait reads the page again.
	pollInterval = 50 * time.Millisecond
)

// testBrowser is one headless Chromium with a fresh profile, closed when the
// test ends.
type testBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// newBrowser starts Chromium with flags that suit a root user on a machine
// without network access. base is the deployer's URL, for permissions.
func newBrowser(t *testing.T, base string) *testBrowser {
	t.Helper()
	requireBrowser(t)
	output := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Loopback needs no proxy, and no other address may be reached.
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1280, 1024),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output, without its D-Bus complaints:\n%s", withoutDBus(output.String()))
		}
	})

	// Start the browser with a context that has no deadline, because the
	// first call binds the browser's life to its context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, withoutDBus(output.String()))
	}
	return &testBrowser{t: t, ctx: ctx, base: base}
}

// withoutDBus drops the lines in which Chromium complains that the machine
// has no D-Bus, which it does at every start in a container.
func withoutDBus(output string) string {
	var kept []string
	for _, line := range strings.Split(output, "\n") {
		if !strings.Contains(line, "dbus/") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// grantClipboard lets the deployer's pages read and write the clipboard
// without a prompt, so that a test can read back what Copy wrote. cdproto
// v0.160.1 has no Browser.grantPermissions, so each permission is set
// through Browser.setPermission.
func (b *testBrowser) grantClipboard() {
	b.t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted,
			Origin:     b.base,
		})
		if err != nil {
			b.t.Fatalf("grant the %s permission to %s: %v", name, b.base, err)
		}
	}
}

// tab is one page of the browser. It records what an admin would notice
// beyond the page itself: console errors, exceptions and Content Security
// Policy violations, JavaScript dialogs, and the requests the page sends.
type tab struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	problems []string
	dialogs  []string
	requests []sentRequest
	closed   bool
	// expectedDialog is part of the message of a dialog the test expects
	// and accepts, such as a confirmation; empty means none is expected.
	expectedDialog string
}

// sentRequest is one request the page sent, with the time the test saw it.
type sentRequest struct {
	Method, URL string
	Type        network.ResourceType
	At          time.Time
}

// newTab opens a tab. When the test ends, the test fails for every console
// error, exception or dialog the tab recorded, and a failed test saves a
// screenshot of each tab still open.
func (b *testBrowser) newTab(name string) *tab {
	b.t.Helper()
	tb := &tab{t: b.t, name: name}
	tb.ctx, tb.cancel = chromedp.NewContext(b.ctx, chromedp.WithListener(tb.record))
	if err := chromedp.Do(tb.ctx); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	// A tab without focus may not use the clipboard, and a second tab would
	// take the focus from the first.
	if _, err := chromedp.Call(tb.ctx, emulation.SetFocusEmulationEnabled,
		emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		b.t.Fatalf("tab %s: emulate focus: %v", name, err)
	}
	b.t.Cleanup(tb.finish)
	return tb
}

// record runs in the tab's message loop, so it only stores each event. It
// dismisses a dialog from another goroutine.
func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			tb.problems = append(tb.problems, "console."+string(ev.Type)+": "+consoleArgs(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		tb.problems = append(tb.problems, "exception: "+exceptionText(ev.ExceptionDetails))
	case *log.EventEntryAdded:
		// The browser's own messages, such as CSP violations and failed loads.
		if ev.Entry.Level == log.EntryLevelError {
			tb.problems = append(tb.problems, fmt.Sprintf("%s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *page.EventJavascriptDialogOpening:
		expected := tb.expectedDialog != "" && strings.Contains(ev.Message, tb.expectedDialog)
		if expected {
			tb.expectedDialog = ""
		} else {
			tb.dialogs = append(tb.dialogs, fmt.Sprintf("%s dialog: %q", ev.Type, ev.Message))
		}
		go chromedp.Call(tb.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: expected})
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, sentRequest{
			Method: ev.Request.Method, URL: ev.Request.URL, Type: ev.Type, At: time.Now(),
		})
	}
}

func consoleArgs(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		switch {
		case a.Description != "":
			parts = append(parts, a.Description)
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "no details"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		text += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s at %s:%d", text, d.URL, d.LineNumber+1)
}

// finish checks what the tab recorded and closes it.
func (tb *tab) finish() {
	if tb.t.Failed() && !tb.isClosed() {
		tb.saveScreenshot("failure-"+tb.name, "")
	}
	tb.close()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("tab %s: %s", tb.name, p)
	}
	for _, d := range tb.dialogs {
		tb.t.Errorf("tab %s: a JavaScript dialog opened: %s", tb.name, d)
	}
}

// close closes the tab, as an admin closing the page would.
func (tb *tab) close() {
	tb.mu.Lock()
	tb.closed = true
	tb.mu.Unlock()
	tb.cancel()
}

func (tb *tab) isClosed() bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.closed
}

// acceptDialog makes the tab accept the next dialog whose message contains
// part, as an admin confirming an action would. Any other dialog still
// fails the test.
func (tb *tab) acceptDialog(part string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.expectedDialog = part
}

// openedDialogs returns the dialogs that opened without being expected.
func (tb *tab) openedDialogs() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.dialogs)
}

// takeProblems returns the problems recorded so far and clears them, for a
// test that causes one on purpose.
func (tb *tab) takeProblems() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	p := tb.problems
	tb.problems = nil
	return p
}

// requestsTo returns the requests whose URL path contains part.
func (tb *tab) requestsTo(part string) []sentRequest {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []sentRequest
	for _, r := range tb.requests {
		if strings.Contains(r.URL, part) {
			out = append(out, r)
		}
	}
	return out
}

// settleNetwork sends a probe request from the page and waits until the
// recorder has seen it, so that a request the page started before is
// recorded too.
func (tb *tab) settleNetwork(base string) {
	tb.t.Helper()
	tb.mu.Lock()
	probe := fmt.Sprintf("%s/healthz?probe=%d", base, len(tb.requests))
	tb.mu.Unlock()
	eval[bool](tb, fmt.Sprintf(`fetch(%q).then(() => true)`, probe))
	deadline := time.Now().Add(pageTimeout)
	for len(tb.requestsTo(probe)) == 0 {
		if time.Now().After(deadline) {
			tb.t.Fatalf("tab %s: the probe request %s was not recorded within %s", tb.name, probe, pageTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// do runs actions with the action deadline and fails the test on an error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("tab %s: %s: %v", tb.name, what, err)
	}
}

// navigate opens url and waits for the page to load.
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do("open "+url, chromedp.Navigate(url))
}

// click clicks the first element that matches the CSS selector, once htmx
// has settled, as a person's click would.
func (tb *tab) click(selector string) {
	tb.t.Helper()
	tb.waitSettled()
	tb.do("click "+selector, chromedp.Click(chromedp.CSS(selector)))
}

// waitSettled waits until htmx has no request in flight and has wired up
// the content it swapped in. htmx adds the listeners of new content about
// 20ms after the swap, so a click in between would do nothing.
func (tb *tab) waitSettled() {
	tb.t.Helper()
	tb.waitFor("htmx settled", pageTimeout,
		`!document.querySelector(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")`)
}

// eval evaluates a JavaScript expression in the page and decodes its value;
// a promise is awaited.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := tryEval[T](tb, expr)
	if err != nil {
		tb.t.Fatalf("tab %s: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

func tryEval[T any](tb *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// text returns the text content of the first element that matches the CSS
// selector, with runs of white space collapsed, or "" when none matches.
func (tb *tab) text(selector string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? "").replace(/\s+/g, " ").trim()`, selector))
}

// count returns how many elements match the CSS selector.
func (tb *tab) count(selector string) int {
	tb.t.Helper()
	return eval[int](tb, fmt.Sprintf(`document.querySelectorAll(%q).length`, selector))
}

// waitFor polls a JavaScript expression until it is true, and fails the test
// when it is not true within timeout. The page may navigate meanwhile; an
// expression that fails to evaluate counts as false.
func (tb *tab) waitFor(what string, timeout time.Duration, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := tryEval[bool](tb, expr)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("the expression is still false")
			}
			tb.t.Fatalf("tab %s: %s: not seen within %s: %v", tb.name, what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// waitText waits until the first element that matches the CSS selector has
// text that contains want.
func (tb *tab) waitText(selector, want string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("%s shows %q", selector, want), timeout, fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? "").replace(/\s+/g, " ").includes(%q)`, selector, want))
}

// saveScreenshot saves a PNG of the element that matches the CSS selector,
// or of the whole page when selector is empty, under the artifacts folder.
// A failure to save is logged, not fatal: screenshots are for people.
func (tb *tab) saveScreenshot(name, selector string) {
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	var png []byte
	var err error
	if selector == "" {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(selector)))
	}
	if err != nil {
		tb.t.Logf("tab %s: screenshot %s: %v", tb.name, name, err)
		return
	}
	file := filepath.Join(artifactsDir, artifactName(tb.t.Name()+"-"+name)+".png")
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	tb.t.Logf("screenshot saved: %s", file)
}

// artifactName turns a test name into a file name.
func artifactName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// login logs in as the bootstrap admin through the login form and waits for
// the testers page.
func (tb *tab) login(base string) {
	tb.t.Helper()
	tb.navigate(base + "/login")
	tb.do("fill in the login form",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), adminPassword),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
	)
	tb.waitFor("the testers page after login", loginTimeout,
		fmt.Sprintf(`location.href === %q && document.readyState === "complete" && !!document.getElementById("capacity")`, base+"/"))
}
