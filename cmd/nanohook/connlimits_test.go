package main

import (
	"strings"
	"testing"
)

// TestPlanConnections: the public listener gets what the open-file limit
// leaves after deliveries, the admin listener and the database, or
// --max-connections if less; too small a limit lowers it with a warning
// that names what to change.
func TestPlanConnections(t *testing.T) {
	t.Parallel()
	cfg := func(workers, maxConns int) serveConfig {
		return serveConfig{DeliveryWorkers: workers, MaxConnections: maxConns,
			MaxConnectionsPerIP: defaultMaxConnectionsPerIP, AdminMaxConnections: defaultAdminMaxConnections}
	}
	for _, tc := range []struct {
		name     string
		files    uint64
		cfg      serveConfig
		public   int
		reserved int
		warning  string
	}{
		{"20000 files, 256 workers", 20000, cfg(256, 0), 18208, 1792, ""},
		{"20000 files, 4096 workers", 20000, cfg(4096, 0), 14368, 5632, ""},
		{"2048 files, 64 workers", 2048, cfg(64, 0), 448, 1600, ""},
		{"explicit cap below what is left", 20000, cfg(4096, 1000), 1000, 5632, ""},
		{"explicit cap above what is left", 20000, cfg(4096, 50000), 14368, 5632, "--max-connections 50000 is more than"},
		{"1024 files, 4096 workers", 1024, cfg(4096, 0), 64, 5632, "the open-file limit (1024) is too small"},
		{"64 files", 64, cfg(16, 0), 16, 1552, "lower --delivery-workers"},
		{"unlimited files", 1 << 62, cfg(4096, 0), maxFileLimit - 5632, 5632, ""},
		{"unknown limit", 0, cfg(4096, 0), fallbackMaxConnections, 5632, ""},
		{"unknown limit, explicit cap", 0, cfg(4096, 300), 300, 5632, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, warnings := planConnections(tc.files, tc.cfg)
			if b.Public != tc.public || b.Reserved != tc.reserved || b.Admin != defaultAdminMaxConnections || b.PerIP != defaultMaxConnectionsPerIP {
				t.Errorf("budget %+v, want public %d, reserved %d", b, tc.public, tc.reserved)
			}
			switch {
			case tc.warning == "" && len(warnings) > 0:
				t.Errorf("warnings %q", warnings)
			case tc.warning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warning)):
				t.Errorf("warnings %q, want one containing %q", warnings, tc.warning)
			}
		})
	}
	// A literal config (tests, the demo) leaves the admin cap 0: the default.
	if b, _ := planConnections(20000, serveConfig{DeliveryWorkers: 32}); b.Admin != defaultAdminMaxConnections || b.PerIP != 0 {
		t.Errorf("zero config: %+v", b)
	}
}
