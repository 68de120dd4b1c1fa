package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCancelShowsCancelingUntilUndone(t *testing.T) {
	requireBrowser(t)
	// Slow steps keep the undo on screen for a few seconds.
	s, tb := startAdminTab(t, serverOptions{SimDelay: 2 * time.Second})

	id := tb.startOnboarding("lena", "Lena Example", "lena@example.org")
	panel := panelSelector(id)
	tb.waitStage(id, "provisioning", "running", flowTimeout)

	// The page logs the panel's cancel button at every change, so that an
	// enabled Cancel that shows up between two polls is seen too.
	button := panel + " .panel-result button.danger"
	eval[bool](tb, fmt.Sprintf(`(() => {
		window.cancelButtons = [];
		const note = () => {
			const b = document.querySelector(%q);
			let state = "none";
			if (b) {
				state = (b.disabled ? "disabled " : "enabled ") + b.textContent.trim();
			}
			if (window.cancelButtons.at(-1) !== state) window.cancelButtons.push(state);
		};
		new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
		note();
		return true;
	})()`, button))

	tb.acceptDialog("Cancel this onboarding and undo what it created?")
	tb.click(button)
	tb.waitText(button, "Canceling…", pageTimeout)
	if !eval[bool](tb, fmt.Sprintf(`document.querySelector(%q).disabled`, button)) {
		t.Error("the Canceling button is enabled")
	}
	tb.waitPanelStatus(id, "canceled", flowTimeout)

	seen := eval[[]string](tb, `window.cancelButtons`)
	canceling := slices.Index(seen, "disabled Canceling…")
	if canceling < 0 {
		t.Fatalf("the panel never showed a disabled Canceling button: %q", seen)
	}
	for _, state := range seen[canceling:] {
		if strings.HasPrefix(state, "enabled") {
			t.Errorf("after Canceling the panel offered %q again: %q", state, seen)
		}
	}
	if o := s.onboarding(t, id); o.Status != "canceled" {
		t.Errorf("API onboarding is %s, want canceled", o.Status)
	}
}
