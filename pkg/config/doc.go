// Package config owns all of weir's configuration: every key, its type, its
// default, how its value is written and how it is validated. Nothing else in
// weir reads configuration keys by name; packages receive a *Config and ask
// for a declared *Option (cfg.Duration(config.HeartbeatInterval)).
//
// The keys, file forms and value syntax are Apache Flink's, so that a Flink
// user's config.yaml and -D flags work unchanged:
//
//   - A config file is YAML whose keys are flat and dotted
//     (taskmanager.numberOfTaskSlots: 2), nested (taskmanager: {numberOfTaskSlots: 2})
//     or a mix of both; every form flattens to dotted keys (ParseYAML).
//   - -D key=value overrides apply on top of the file (Load), and a job's
//     config: section applies on top of the cluster's configuration (With).
//     An empty value (-D key=) resets a key to its default.
//   - Durations are written as 500ms, 10 s, 2 min, 1 h, 3 d, 100 milliseconds or
//     Go's 1m30s; a bare number is milliseconds (ParseDuration). Memory sizes
//     as 32kb, 32 KiB, 32k, 1 gb; a bare number is bytes and k means 1024
//     (ParseMemorySize). Ports as a number, a range 9249-9260, or 0 for any
//     free port. Booleans and enums are case-insensitive.
//   - Older (deprecated) key names are accepted as fallbacks of the current
//     name; the current name wins when both are set in the same layer.
//   - A daemon or the CLI finds its file as Flink finds FLINK_CONF_DIR's
//     (ConfigFile): --config, else $WEIR_CONF_DIR/config.yaml, else
//     /etc/weir/config.yaml if present, else none. A file named
//     flink-conf.yaml is read in Flink 1.x's flat line form (ParseFlinkConf).
//   - Flink keys that mean nothing to weir (JVM options, REST, web UI, class
//     loading, JVM memory components, ...: notApplicable, a reason per
//     prefix) are reported in one warning per source as not applicable, not
//     as unknown keys, so that a Flink distribution's config.yaml loads
//     without noise or false typo suggestions.
//   - Every option has a scope (Option.Scope): a cluster option belongs to
//     the daemons' configuration and WithJob refuses it in a job's config:,
//     naming the key and the config.yaml it belongs in.
//
// Invariants:
//
//   - Every option is declared exactly once, in options.go, and Options()
//     lists them all; docs/configuration.md is generated from that list and a
//     test fails when it is out of date.
//   - A *Config is validated when it is built (New, Load, FromMap, With): a
//     daemon fails at start and a job at submission, never later. Its getters
//     therefore never fail on input; they panic only on programmer error (the
//     getter does not match the option's type, or the option is not declared
//     here).
//   - A *Config is immutable once built and safe for concurrent reads; With
//     returns a new Config.
//   - An unknown key is not an error: it is kept (so it still travels with
//     ToMap) and reported as a warning for the caller to log, because a typo
//     should not stop a cluster but must not go unnoticed either.
//   - A document flattens to at most 10,000 keys of at most 1,024 bytes each:
//     YAML aliases would otherwise let a few hundred bytes expand to
//     millions of keys (a "billion laughs"), which a job file's config:
//     section must not be able to do to the JobManager.
//   - Errors name the key, the value and what was expected:
//     invalid value "abc" for key "heartbeat.interval": want a duration like 500ms, 10 s or 2 min
package config
