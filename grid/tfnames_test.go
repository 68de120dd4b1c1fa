package grid

import (
	"strings"
	"testing"
	"time"

	"deployer/onboard"
)

func TestToolNameRules(t *testing.T) {
	cases := []struct {
		username string
		want     string // "" when the name is hashed
	}{
		{"alice", "deployeralice"},
		{"bob2", "deployerbob2"},
		{"abcdefghijklmnopqrst", "deployerabcdefghijklmnopqrst"},
		{"abcdefghijklmnopqrstu", ""},
		{"ab2b10a6f200000000000", ""},
		{"abcdefghijklmnopqrstuv", ""},
		{"mary-ann", ""},
		{"a-b", ""},
		{"x" + strings.Repeat("-y", 15) + "z", ""},
	}
	seen := map[string]string{}
	for _, c := range cases {
		t.Run(c.username, func(t *testing.T) {
			if err := onboard.ValidateUsername(c.username); err != nil {
				t.Fatalf("test username %q is not valid: %v", c.username, err)
			}
			name := ToolName(onboard.ProjectName(c.username))
			if !isToolName(name) {
				t.Errorf("ToolName = %q, which breaks the tool naming", name)
			}
			if len(name)+len("network") > 36 {
				t.Errorf("ToolName = %q: with the network suffix it exceeds 36 characters", name)
			}
			if c.want != "" && name != c.want {
				t.Errorf("ToolName = %q, want %q", name, c.want)
			}
			if c.want == "" && len(name) != tfNameMax {
				t.Errorf("hashed ToolName = %q has %d characters, want %d", name, len(name), tfNameMax)
			}
			if other, ok := seen[name]; ok {
				t.Errorf("ToolName %q is shared by %q and %q", name, other, c.username)
			}
			seen[name] = c.username
		})
	}
}

func TestPlainAndHashedNamesNeverMeet(t *testing.T) {
	// A username made of another's hashed name, letters and all, still
	// gets a name of its own.
	hashed := ToolName(onboard.ProjectName("a-b"))
	crafted := strings.TrimPrefix(hashed, tfNamePrefix)
	if err := onboard.ValidateUsername(crafted); err != nil {
		t.Fatalf("crafted username %q is not valid: %v", crafted, err)
	}
	if got := ToolName(onboard.ProjectName(crafted)); got == hashed {
		t.Errorf("username %q gets the tool name %q of a-b", crafted, got)
	}
}

func TestToolNameRejectsForeignProject(t *testing.T) {
	for _, project := range []string{"", "myvm", "deployer-"} {
		if got := ToolName(project); got != "" {
			t.Errorf("ToolName(%q) = %q, want empty", project, got)
		}
	}
}

func TestProjectOfToolNameRoundTrip(t *testing.T) {
	for _, username := range []string{"alice", "mary-ann", "abcdefghijklmnopqrstuvwxyz012345"} {
		project := onboard.ProjectName(username)
		name := ToolName(project)
		if got := projectOfToolName(name, map[string]string{name: project}); got != project {
			t.Errorf("known %q: project = %q, want %q", name, got, project)
		}
		// Without the memory of the project, the name still maps to a
		// project that cancels the same contracts.
		fallback := projectOfToolName(name, nil)
		if got := ToolName(fallback); got != name {
			t.Errorf("unknown %q maps to %q, whose tool name is %q", name, fallback, got)
		}
		if !onboard.OrphanUsername(onboard.ProjectTester(fallback)) {
			t.Errorf("unknown %q maps to %q, which orphan cleanup does not take", name, fallback)
		}
	}
}

func TestToolOutputParsing(t *testing.T) {
	raw := "\x1b[90m12:06PM\x1b[0m \x1b[32mINF\x1b[0m deploying network\n" +
		"\x1b[90m12:07PM\x1b[0m \x1b[32mINF\x1b[0m vm mycelium ip: 544:b74f:ceef:cc7e:ff0f:6b18:921f:8031\n" +
		"\x1b[90m12:07PM\x1b[0m \x1b[31mFTL\x1b[0m error=\"failed to deploy gateway on node 14\"\n"
	out := toolOutput(stripColour(raw))
	if got := out.value("vm mycelium ip"); got != "544:b74f:ceef:cc7e:ff0f:6b18:921f:8031" {
		t.Errorf("mycelium ip = %q", got)
	}
	if got := out.lastError(); got != `error="failed to deploy gateway on node 14"` {
		t.Errorf("lastError = %q", got)
	}
	addrs := vmAddresses{IPv4: "185.206.122.33/24", Mycelium: "544::1"}
	if got := addrs.best(); got != "185.206.122.33" {
		t.Errorf("best address = %q, want the public IPv4 without its prefix", got)
	}
}

func TestNodeStatusSlots(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		name              string
		total, used       uint64
		wantTotal, wantFr int
	}{
		{"64 GiB reserves 10%", 64 * gib, 24 * gib, 14, 10},
		{"8 GiB reserves the 2 GiB floor", 8 * gib, 2 * gib, 1, 1},
		{"used over total", 16 * gib, 20 * gib, 3, 0},
		{"empty node", 0, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n ProxyNode
			n.Status, n.Healthy = "up", true
			n.Capacity.Total.MRU, n.Capacity.Used.MRU = c.total, c.used
			st := NodeStatus(n, "7", 0, time.Time{})
			if st.TotalSlots != c.wantTotal {
				t.Errorf("total slots = %d, want %d", st.TotalSlots, c.wantTotal)
			}
			if st.FreeSlots != c.wantFr {
				t.Errorf("free slots = %d, want %d", st.FreeSlots, c.wantFr)
			}
		})
	}
}
