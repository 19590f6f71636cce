package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadMigrations(t *testing.T) {
	file := func(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }
	ms, err := ReadMigrations(fstest.MapFS{
		"m/0010_ten.sql": file("TEN"),
		"m/0002_two.sql": file("TWO"),
		"m/0001_one.sql": file("ONE"),
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+"="+m.SQL)
	}
	if want := "0001_one.sql=ONE 0002_two.sql=TWO 0010_ten.sql=TEN"; strings.Join(got, " ") != want {
		t.Errorf("migrations %v, want %s (numeric order)", got, want)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"no number":      {"m/0001_one.sql": file(""), "m/init.sql": file("")},
		"zero":           {"m/0000_zero.sql": file("")},
		"shared version": {"m/0003_a.sql": file(""), "m/003_b.sql": file("")},
	} {
		if _, err := ReadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
