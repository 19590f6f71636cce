package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// configFlagName is the flag (and, through envName, NANOHOOK_CONFIG) that
// names a command's configuration file.
const configFlagName = "config"

// configFile is the value of a --config flag: the path of a TOML file
// whose keys are the command's flag names, and the keys the command skips
// because they belong to a sibling command (one file configures both serve
// and migrate).
type configFile struct {
	path   string
	others []string
}

func (c *configFile) String() string { return c.path }

func (c *configFile) Set(path string) error {
	c.path = path
	return nil
}

// addConfigFlag gives fs a --config flag, which parseFlags then reads.
// others are keys a file may hold that this command ignores.
func addConfigFlag(fs *flag.FlagSet, others ...string) {
	fs.Var(&configFile{others: others}, configFlagName,
		"TOML `file` of settings, keyed by flag name (delivery-timeout = \"15s\"); the command line and environment override it")
}

// readConfig returns the settings of the file that fs's --config names
// (given on the command line, else in NANOHOOK_CONFIG) as flag values by
// flag name: nil when fs has no --config or none is given. A key that
// names no flag of fs, or a value that is not a string, number or boolean,
// is an error naming the file and the key.
func readConfig(fs *flag.FlagSet, onCommandLine map[string]bool, getenv func(string) string) (map[string]string, string, error) {
	f := fs.Lookup(configFlagName)
	if f == nil {
		return nil, "", nil
	}
	cf := f.Value.(*configFile)
	path := cf.path
	if !onCommandLine[configFlagName] {
		path = getenv(envName(configFlagName))
	}
	if path == "" {
		return nil, "", nil
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, path, fmt.Errorf("config file %s: %w", path, err)
	}
	var unknown []string
	values := make(map[string]string, len(raw))
	for key, v := range raw {
		if key == configFlagName || fs.Lookup(key) == nil {
			if !slices.Contains(cf.others, key) {
				unknown = append(unknown, strconv.Quote(key))
			}
			continue
		}
		if _, isDuration := durationOf(fs.Lookup(key)); isDuration {
			switch v.(type) {
			case int64, float64:
				// TOML has no duration type: 15 is a number, "15s" the duration.
				return nil, path, fmt.Errorf(`config file %s: %s = %v: want a duration such as "15s" (a quoted number and unit)`, path, key, v)
			}
		}
		s, err := configValue(v)
		if err != nil {
			return nil, path, fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
		values[key] = s
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, path, fmt.Errorf("config file %s: unknown key %s (keys are the flag names of %s -h)",
			path, strings.Join(unknown, ", "), fs.Name())
	}
	return values, path, nil
}

// configValue turns a TOML value into the text a flag parses. Lists are
// refused rather than guessed at: the flags that take several values
// (retry-schedule) take them as one comma-separated string, as on the
// command line.
func configValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case []any:
		return "", fmt.Errorf(`must be one value, not a list (write a list as one string: "5s,5m")`)
	case map[string]any:
		return "", fmt.Errorf("must be a value, not a table (keys are flag names, at the top level)")
	}
	return "", fmt.Errorf("must be a string, number or boolean, not %T", v)
}
